// The hooks as a flux-core 0.88 system instance runs them, on real systemd 252 (nspawn): the IMP
// runs flux-run-prolog, which writes its environment to /run/flux-prolog@JOBID.env and starts
// flux-prolog@JOBID.service, which runs every entry of prolog.d (ours among them). The units and the
// runner here are made the same shape as flux-core's; the environment is exactly the IMP's.
// Checked: the hook works with that environment (no FLUX_PAM_*, no system bus address, a session
// bus of the broker's user that must not be used, cwd /, stdin /dev/null), its one line lands in
// the unit's journal under the job id the unit is named with, and check-user points there.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ScenarioJob } from "../broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../e2e/harness";
import { ALICE, containedConfig, OWNER, SOCKDIR } from "./alice-node";
import { bootContainer, type Container, containerSkipReason } from "./container";

const skip = containerSkipReason();
if (skip) console.warn(`SKIPPED: the hooks under flux-core's units on real systemd: ${skip}`);

const LIBEXEC = "/usr/libexec/flux";

/** What a job's hook unit gets in its EnvironmentFile: the IMP's environment, as printenv writes it. */
function impEnvironment(job: string): Record<string, string> {
  return {
    FLUX_JOB_ID: job,
    FLUX_JOB_USERID: String(ALICE),
    FLUX_URI: `local://${SOCKDIR}/broker.sock`,
    FLUX_OWNER_USERID: String(OWNER),
    HOME: "/root",
    USER: "root",
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    PWD: "/",
    // With [systemd] enable the broker runs with its user's session bus: never the one to use.
    XDG_RUNTIME_DIR: `/run/user/${OWNER}`,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=/run/user/${OWNER}/bus`,
  };
}

/** A oneshot unit per job that runs the runner for `hook`, with the env file flux-run-HOOK wrote. */
function unit(hook: "prolog" | "housekeeping"): string {
  return `[Unit]
Description=${hook} for Flux job %I (test)
CollectMode=inactive-or-failed

[Service]
Type=oneshot
EnvironmentFile=-/run/flux-${hook}@%I.env
ExecStart=${LIBEXEC}/test-run-scripts ${hook}
ExecStopPost=-rm -f /run/flux-${hook}@%I.env
`;
}

/** Runs every executable of LIBEXEC/HOOK.d and exits with the highest exit code, as flux-core's runner does. */
const RUNNER = `#!/bin/sh
rc=0
for f in ${LIBEXEC}/"$1".d/*; do
  test -f "$f" -a -x "$f" || continue
  "$f"; s=$?
  test $s -gt $rc && rc=$s
done
exit $rc
`;

describe.skipIf(skip !== undefined)("the hooks under flux-core's units, with the IMP's environment", () => {
  let c: Container;
  let broker: BrokerProcess;
  const dir = tempDir();

  const write = (path: string, text: string, mode = "0644") => c.run(["sh", "-c", 'printf %s "$1" > "$2" && chmod "$3" "$2"', "sh", text, path, mode]);

  beforeAll(
    async () => {
      const socks = join(dir.path, "socks");
      mkdirSync(socks);
      chmodSync(socks, 0o755);
      broker = await startBrokerProcess({ owner: OWNER }, socks);
      c = await bootContainer({ binds: [{ host: socks, container: SOCKDIR }], cpus: "0-15" }); // (the jobs here hold CPUs this machine may not have)
      await c.run(["mkdir", "-p", `${LIBEXEC}/prolog.d`, `${LIBEXEC}/housekeeping.d`]);
      await c.run(["ln", "-s", "/opt/flux-pam/flux-pam", `${LIBEXEC}/prolog.d/flux-pam-prolog`]);
      await c.run(["ln", "-s", "/opt/flux-pam/flux-pam", `${LIBEXEC}/housekeeping.d/flux-pam-housekeeping`]);
      await write(`${LIBEXEC}/test-run-scripts`, RUNNER, "0755");
      await write("/etc/systemd/system/flux-prolog@.service", unit("prolog"));
      await write("/etc/systemd/system/flux-housekeeping@.service", unit("housekeeping"));
      await c.run(["systemctl", "daemon-reload"]); // once, for the test's own units
    },
    { timeout: 20 * 60_000 },
  );
  afterAll(async () => {
    await c?.stop();
    await broker?.stop();
    dir.remove();
  });

  function node(jobs: ScenarioJob[], mapper: "auto" | "absent" = "auto"): void {
    broker.setScenario({
      rank: 0,
      owner: OWNER,
      config: containedConfig({}, { "allow-root-owner": true }),
      jobs,
      mapper,
    });
  }

  /**
   * What flux-run-HOOK does: write the env file, start the unit (named after the job, or
   * "unknown" when the job id is empty) and wait for it. Then the unit's journal, once it holds
   * `expect` (journald reads the unit's output stream on its own time).
   */
  async function runUnit(hook: "prolog" | "housekeeping", job: string, expect = "") {
    const name = `flux-${hook}@${job || "unknown"}.service`;
    const env = Object.entries(impEnvironment(job)).map(([k, v]) => `${k}=${v}\n`).join("");
    await write(`/run/flux-${hook}@${job || "unknown"}.env`, env, "0644");
    const start = await c.exec(["systemctl", "start", name], { timeoutMs: 60_000 });
    // -u as the admin reads it (systemd's own lines about the unit too); _SYSTEMD_UNIT= for what
    // the unit's processes wrote, the runner's and our hook's.
    let journal = "";
    for (const end = Date.now() + 10_000; Date.now() < end; await Bun.sleep(100)) {
      await c.exec(["journalctl", "--sync"]);
      journal = await c.run(["journalctl", "-q", "-o", "cat", "-u", name]);
      if (journal.includes(expect)) break;
    }
    const output = await c.run(["journalctl", "-q", "-o", "cat", `_SYSTEMD_UNIT=${name}`]);
    return { code: start.code, journal, output };
  }

  test("a prolog under flux-prolog@JOB.service constrains the slice and opens it, saying nothing", async () => {
    node([{ id: "1227286904832", userid: ALICE, cores: "1" }]);
    const r = await runUnit("prolog", "fZEr9Bmq", "Finished flux-prolog@fZEr9Bmq.service");
    expect({ code: r.code, output: r.output }).toEqual({ code: 0, output: "" });
    expect((await c.run(["systemctl", "show", "-p", "AllowedCPUs", "user-1000.slice"])).trim()).toBe("AllowedCPUs=1");
    expect((await c.exec(["test", "-f", "/run/flux-pam/uid.1000.active"])).code).toBe(0);
    // check-user, asking the real systemd: the limits in force; and linger's file.
    const cu = JSON.parse((await c.exec(["/opt/flux-pam/flux-pam", "check-user", "alice", "--json", "--uri", `local://${SOCKDIR}/broker.sock`])).stdout);
    expect(cu.node.systemd).toMatchObject({ slice: { AllowedCPUs: "1", AllowedMemoryNodes: "0", DevicePolicy: "closed", DeviceAllow: "" }, linger: false });
    expect(cu.node.systemd.lingerSource).toBe("file");
  });

  test("a failed prolog: its one line is in the unit's journal, tagged with the unit's job id; check-user points there", async () => {
    node([{ id: "1227286904832", userid: ALICE, cores: "1" }, { id: "1261646643200", userid: ALICE, cores: "2" }], "absent");
    const line =
      "flux-pam-prolog[fa9CPpv3]: exec.sdexec-constrain-resources is on but the resource mapping failed, so user-1000.slice cannot be constrained: sdexec-mapper.lookup: No service matching sdexec-mapper.lookup is registered (ENOSYS)\n";
    const r = await runUnit("prolog", "fa9CPpv3", line);
    expect(r.code).not.toBe(0);
    expect(r.journal).toContain(line);
    const report = JSON.parse(await c.exec(["/opt/flux-pam/flux-pam", "check-user", "alice", "--json", "--uri", `local://${SOCKDIR}/broker.sock`]).then((x) => x.stdout));
    expect(report.node.lastFailure).toMatchObject({ hook: "prolog", job: "fa9CPpv3", unit: "flux-prolog@fa9CPpv3.service" });
    expect(report.node.lastFailure.message).toStartWith("exec.sdexec-constrain-resources is on but the resource mapping failed");
    const text = await c.exec(["/opt/flux-pam/flux-pam", "check-user", "alice", "--uri", `local://${SOCKDIR}/broker.sock`]);
    expect(text.stdout).toMatch(/^failed: {3}prolog of fa9CPpv3 at \d{4}-\d\d-\d\dT[\d:.]+Z: exec\.sdexec.* \(journalctl -u flux-prolog@fa9CPpv3\.service\)$/m);
  });

  test("the last job's housekeeping under flux-housekeeping@JOB.service tears down and clears the failure record", async () => {
    node([{ id: "1227286904832", userid: ALICE, cores: "1", state: 64 }]);
    const r = await runUnit("housekeeping", "fZEr9Bmq", "Finished flux-housekeeping@fZEr9Bmq.service");
    expect({ code: r.code, output: r.output }).toEqual({ code: 0, output: "" });
    expect((await c.exec(["test", "-e", "/run/flux-pam/uid.1000.active"])).code).not.toBe(0);
    expect((await c.exec(["test", "-e", "/run/flux-pam/uid.1000.failed"])).code).not.toBe(0);
    // The slice's stop is queued, not waited for: systemd lifts the limits once it has freed the slice.
    let shown = "";
    for (const end = Date.now() + 10_000; Date.now() < end; await Bun.sleep(50)) {
      shown = (await c.run(["systemctl", "show", "-p", "AllowedCPUs", "user-1000.slice"])).trim();
      if (shown === "AllowedCPUs=") break;
    }
    expect(shown).toBe("AllowedCPUs=");
  });

  test("a user@ that failed to start: the next prolog under flux-prolog@JOB.service warns in the unit's journal and succeeds", async () => {
    const dropin = "/run/systemd/system/user@1000.service.d";
    await c.run(["mkdir", "-p", dropin]);
    await write(`${dropin}/fail.conf`, "[Service]\nExecStartPre=/bin/false\n");
    await c.run(["systemctl", "daemon-reload"]);
    const failed = async () => (await c.run(["systemctl", "show", "-P", "ActiveState,Job", "user@1000.service"])).trim() === "failed";
    try {
      node([{ id: "1227286904832", userid: ALICE, cores: "1" }]);
      expect((await runUnit("prolog", "fZEr9Bmq", "Finished flux-prolog@fZEr9Bmq.service")).code).toBe(0);
      let settled = false;
      for (const end = Date.now() + 10_000; !settled && Date.now() < end; await Bun.sleep(50)) settled = await failed();
      expect(settled).toBe(true);
      node([{ id: "1227286904832", userid: ALICE, cores: "1" }, { id: "1261646643200", userid: ALICE, cores: "2" }]);
      const line =
        "flux-pam-prolog[fa9CPpv3]: warning: user@1000.service is failed: an earlier start did not succeed (journalctl -u user@1000.service; slice containment still applies); starting it again\n";
      const r = await runUnit("prolog", "fa9CPpv3", line);
      expect(r.code).toBe(0);
      expect(r.journal).toContain(line);
      expect(r.journal).toContain("Finished flux-prolog@fa9CPpv3.service");
    } finally {
      await c.run(["rm", "-rf", dropin]);
      await c.run(["systemctl", "daemon-reload"]);
      await c.exec(["systemctl", "reset-failed", "user@1000.service"]);
      node([{ id: "1227286904832", userid: ALICE, cores: "1", state: 64 }, { id: "1261646643200", userid: ALICE, cores: "2", state: 64 }]);
      await runUnit("housekeeping", "fa9CPpv3", "flux-housekeeping@fa9CPpv3.service");
    }
  });

  test("FLUX_JOB_ID left empty by a runner that found no flux: the hook says so", async () => {
    node([]);
    const line = "flux-pam-prolog[?]: FLUX_JOB_ID is empty (flux-run-prolog and flux-run-housekeeping could not convert it: is flux on the IMP's PATH? flux-pam doctor)\n";
    const r = await runUnit("prolog", "", line);
    expect(r.code).not.toBe(0);
    expect(r.journal).toContain(line);
  });
});
