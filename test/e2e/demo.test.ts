// `make demo` (build/demo.sh): the README's "run the main job" on a machine without Flux.

import { expect, test } from "bun:test";
import { join } from "node:path";
import { formatIdset } from "../../src/flux/idset";
import { ROOT } from "./harness";

test("the demo shows a login granted, one denied with the real message, one denied with where its jobs run, check-user (the session's refusal where no prolog ran), a dry-run prolog and status", async () => {
  const p = Bun.spawn(["bash", join(ROOT, "build/demo.sh")], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(0);
  const me = "daemon";
  const uid = (await Bun.$`id -u daemon`.text()).trim();
  const other = "nobody";
  // granted: the account line for me is followed by exit 0, the one for the other user by the denial and exit 1
  expect(out).toMatch(new RegExp(`PAM_USER=${me} .* account uri=\\S+\\n\\(exit 0\\)`));
  expect(out).toContain(`Access denied: user ${other} has no active jobs on this node\n(exit 1)`);
  // no prolog ran here: the account step admits, session-open would not (no marker, or no lock dir at all)
  expect(out).toContain(`verdict:  DENIED: the account step admits (2 running job(s) of ${me} on rank 0), but session-open refuses the login: `);
  expect(out).toContain(`verdict:  DENIED: ${other} has no running job on rank 0`);
  // the jobs hold core 0 and this machine's last core
  const last = Number((await Bun.$`nproc --all`.text()).trim()) - 1;
  const cpus = formatIdset([0, last]);
  expect(out).toContain(`user-${uid}.slice SetUnitProperties runtime=true DeviceAllow= AllowedCPUs=${cpus} AllowedMemoryNodes=0 DevicePolicy=closed`);
  expect(out).toContain(`marker create /run/flux-pam/uid.${uid}.active`);
  expect(out).toContain("Access denied: user bin has no active jobs on this node\nbin has a running job on fluke[12-13] (ƒ2fiYRZKV), not on fluke7\n(exit 1)");
  expect(out).toContain(`${me} (uid ${uid}): DRIFT\n  drift:  running job without a marker: logins are refused\n`);
  expect(err).not.toContain("error");
});
