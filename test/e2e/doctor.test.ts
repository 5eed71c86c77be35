// flux-pam doctor --root: the compiled binary audits a node's files laid out in a temp dir.

import { afterAll, describe, expect, test } from "bun:test";
import { fakeTree, goodNode } from "../audit/fake-tree";
import { runBinary } from "./harness";

const good = fakeTree(goodNode());
const bad = fakeTree({
  ...goodNode(),
  "etc/pam.d/sshd": `@include common-auth
account  required    pam_unix.so
account  sufficient  pam_flux.so allow-guests
account  required    pam_deny.so
session  required    pam_limits.so
session  required    pam_flux.so
@include common-session
`,
  "etc/pam.d/common-session": "session required pam_unix.so\nsession optional pam_systemd.so\n",
  // the reference README's mistake: flux-core's housekeeping has no per-rank, and refuses the table
  "etc/flux/system/conf.d/perilog.toml": "[job-manager.housekeeping]\nper-rank = true\n",
  // a site file that sorts after ours: its [run] replaces ours whole
  "etc/flux/imp/conf.d/site.toml": '[run.epilog]\nallowed-users = [ "flux" ]\nallowed-environment = [ "FLUX_*" ]\npath = "/usr/libexec/flux/cmd/flux-run-epilog"\n',
  "run/flux-pam": { dir: true, mode: 0o777 },
  "var/lib/systemd/linger/alice": "",
  "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": { link: "../../flux-pam/flux-pam-gone" },
  "usr/lib/tmpfiles.d/flux-pam.conf": null,
});

afterAll(() => {
  good.remove();
  bad.remove();
});

describe("flux-pam doctor --root", () => {
  test("a node set up as README says: every finding ok, exit 0", async () => {
    const r = await runBinary(["doctor", "--root", good.path], {});
    expect(r.stdout).toBe(`flux-pam doctor: the tree under ${good.path} (live checks skipped)
ok      pam: /etc/pam.d/sshd: account sufficient pam_flux.so (line 5); session requisite pam_flux.so first (line 8), no pam_systemd.so
ok      sshd: /etc/ssh/sshd_config:2: UsePAM yes
ok      flux-config: /etc/flux/system/conf.d: pam.manage-user-slice = true, kill-user-slice = true, kill-slice-grace-time = 30s
ok      flux-config: /etc/flux/system/conf.d: perilog.so loaded, prolog per-rank; prolog and housekeeping run through /usr/libexec/flux/flux-imp run
ok      flux-config: exec.imp /usr/libexec/flux/flux-imp: setuid root
ok      flux-config: /etc/flux/system/conf.d: exec.service = "sdexec", sdexec-constrain-resources = true, systemd.enable = true
ok      flux-config: /etc/flux/system/conf.d: access.allow-root-owner = true: the hooks (run as root) are an owner of the instance
ok      imp: in force: [run.prolog], [run.housekeeping] from /etc/flux/imp/conf.d/imp.toml
ok      imp: /etc/flux/imp/conf.d/imp.toml: [run.prolog] lets flux run /usr/libexec/flux/cmd/flux-run-prolog with FLUX_JOB_ID, FLUX_JOB_USERID, FLUX_URI
ok      imp: /etc/flux/imp/conf.d/imp.toml: [run.housekeeping] lets flux run /usr/libexec/flux/cmd/flux-run-housekeeping with FLUX_JOB_ID, FLUX_JOB_USERID, FLUX_URI
ok      imp: /usr/bin/flux: flux-run-prolog and flux-run-housekeeping find flux on the IMP's PATH
ok      hooks: /usr/libexec/flux/prolog.d/flux-pam-prolog -> /usr/libexec/flux-pam/flux-pam
ok      hooks: /usr/libexec/flux/housekeeping.d/flux-pam-housekeeping -> /usr/libexec/flux-pam/flux-pam
ok      lock-dir: /run/flux-pam: not in the tree (a runtime directory: tmpfiles.d creates it at boot)
ok      tmpfiles: /usr/lib/tmpfiles.d/flux-pam.conf: d /run/flux-pam 0700 root root -
ok      cgroup: not checked: --root audits files only (the cgroup mount is the running node's)
ok      systemd: not checked: --root audits files only (systemd's version is asked over D-Bus on the running node)
ok      broker: not checked: --root audits files only (the broker is asked on the running node)
ok      linger: --root, no broker asked: every linger file counts: no user lingers (/var/lib/systemd/linger)
0 errors, 0 warnings
`);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  });

  test("a misconfigured node: each problem one line with its fix, exit 1", async () => {
    const r = await runBinary(["doctor", "--root", bad.path], {});
    expect(r.stdout).toBe(`flux-pam doctor: the tree under ${bad.path} (live checks skipped)
ERROR   pam: /etc/pam.d/sshd:3: pam_flux.so unknown option "allow-guests": every account call through this line fails (PAM_SYSTEM_ERR)
        fix: remove or correct it (the options are in pam_flux(8))
ERROR   pam: /etc/pam.d/sshd:6: pam_flux.so is not the first session module: pam_limits.so (/etc/pam.d/sshd:5) runs before it
        fix: move "session requisite pam_flux.so" above every other session line of /etc/pam.d/sshd
ERROR   pam: /etc/pam.d/sshd:6: session required pam_flux.so instead of requisite: when it fails, the other session modules still run before the login is refused
        fix: make it "session requisite pam_flux.so"
ERROR   pam: /etc/pam.d/common-session:2 (via /etc/pam.d/sshd:7): pam_systemd.so is in the session stack of /etc/pam.d/sshd with pam_flux.so: logind would move the login out of the job's slice and stop user@UID.service on logout
        fix: replace the include of /etc/pam.d/common-session in /etc/pam.d/sshd with the lines of it /etc/pam.d/sshd needs, without pam_systemd.so
ok      sshd: /etc/ssh/sshd_config:2: UsePAM yes
ERROR   flux-config: /etc/flux/system/conf.d: job-manager.housekeeping.per-rank is not a key of [job-manager.housekeeping] (it takes command, release-after, use-systemd-unit, exit-on-first-error): the broker refuses the table ("job-manager.housekeeping: 1 object item(s) left unpacked: per-rank") and the instance does not start
        fix: correct or remove it in [job-manager.housekeeping] (flux-config-pam(5))
ok      flux-config: /etc/flux/system/conf.d: pam.manage-user-slice = true, kill-user-slice = true, kill-slice-grace-time = 30s
ok      flux-config: /etc/flux/system/conf.d: perilog.so loaded, prolog per-rank; prolog and housekeeping run through /usr/libexec/flux/flux-imp run
ok      flux-config: exec.imp /usr/libexec/flux/flux-imp: setuid root
ok      flux-config: /etc/flux/system/conf.d: exec.service = "sdexec", sdexec-constrain-resources = true, systemd.enable = true
ok      flux-config: /etc/flux/system/conf.d: access.allow-root-owner = true: the hooks (run as root) are an owner of the instance
ERROR   imp: /etc/flux/imp/conf.d/imp.toml's [run] is replaced whole by /etc/flux/imp/conf.d/site.toml's: the IMP merges its conf.d one top-level table at a time, so [run.prolog], [run.housekeeping] of /etc/flux/imp/conf.d/imp.toml have no effect
        fix: keep every [run.*] table in one file: move them from /etc/flux/imp/conf.d/imp.toml into /etc/flux/imp/conf.d/site.toml (or the other way round)
ok      imp: in force: [run.epilog] from /etc/flux/imp/conf.d/site.toml
ERROR   imp: /etc/flux/imp/conf.d: no [run.prolog] in force: the IMP refuses flux-run-prolog ("run: prolog: no configuration found"), so every job's prolog fails
        fix: add [run.prolog] to the file that holds your other [run.*] tables (flux-config-pam(5))
ERROR   imp: /etc/flux/imp/conf.d: no [run.housekeeping] in force: the IMP refuses flux-run-housekeeping ("run: housekeeping: no configuration found"), so every job's housekeeping fails
        fix: add [run.housekeeping] to the file that holds your other [run.*] tables (flux-config-pam(5))
ok      hooks: /usr/libexec/flux/prolog.d/flux-pam-prolog -> /usr/libexec/flux-pam/flux-pam
ERROR   hooks: /usr/libexec/flux/housekeeping.d/flux-pam-housekeeping is a link to nothing: flux-pam housekeeping does not run
        fix: reinstall flux-pam (make install), or remove /usr/libexec/flux/housekeeping.d/flux-pam-housekeeping
ERROR   lock-dir: /run/flux-pam: lock directory is group/other writable (mode 0777): every prolog and every session refuses it
        fix: chmod 0700 /run/flux-pam
ERROR   tmpfiles: no flux-pam.conf in /etc/tmpfiles.d, /run/tmpfiles.d, /usr/local/lib/tmpfiles.d, /usr/lib/tmpfiles.d: /run/flux-pam is not created at boot, and a local user can create it first and block every prolog
        fix: install packaging/tmpfiles.d/flux-pam.conf as /usr/lib/tmpfiles.d/flux-pam.conf (make install does), then systemd-tmpfiles --create flux-pam.conf
ok      cgroup: not checked: --root audits files only (the cgroup mount is the running node's)
ok      systemd: not checked: --root audits files only (systemd's version is asked over D-Bus on the running node)
ok      broker: not checked: --root audits files only (the broker is asked on the running node)
WARNING linger: --root, no broker asked: every linger file counts: linger is enabled for alice (/var/lib/systemd/linger/alice): every prolog of alice's jobs on this node fails
        fix: remove /var/lib/systemd/linger/alice
11 errors, 1 warning
`);
    expect(r.code).toBe(1);
  });

  test("--json: the same findings as one object", async () => {
    const r = await runBinary(["doctor", "--root", bad.path, "--json"], {});
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ root: bad.path, live: false, errors: 11, warnings: 1 });
    expect(j.findings[0]).toEqual({
      area: "pam",
      severity: "error",
      what: '/etc/pam.d/sshd:3: pam_flux.so unknown option "allow-guests": every account call through this line fails (PAM_SYSTEM_ERR)',
      fix: "remove or correct it (the options are in pam_flux(8))",
    });
    expect(j.findings.at(-1).severity).toBe("warning");
  });

  test("a flux.service that is a symlink loop is one warning, and the audit goes on", async () => {
    const loop = fakeTree({ ...goodNode(), "usr/lib/systemd/system/flux.service": { link: "flux.service" } });
    try {
      const r = await runBinary(["doctor", "--root", loop.path], {});
      expect(r.stdout).toMatch(/^WARNING imp: flux\.service could not be read for the instance owner \(.*(symbolic links|ELOOP).*\): the owner is taken from the broker, else assumed "flux"$/m);
      expect(r.stdout).toContain("ok      tmpfiles: ");
      expect(r.code).toBe(0);
    } finally {
      loop.remove();
    }
  });

  test("--root that is not a directory is a usage error", async () => {
    const r = await runBinary(["doctor", "--root", `${good.path}/nope`], {});
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `flux-pam: --root ${good.path}/nope: not a directory\n` });
  });
});

describe("flux-pam doctor on this machine (live checks)", () => {
  // The files are this test machine's own (whatever its /etc holds); what is under test is that
  // the live checks run through the binary: the broker asked, systemd looked for.
  test("the broker is asked (rank, owner, jobs, root's owner role, the mapper); an absent bus is said, not fatal", async () => {
    const { startBrokerProcess, tempDir } = await import("./harness");
    const dir = tempDir("flux-pam-doctor-live-");
    const broker = await startBrokerProcess(
      { rank: 4, owner: 0, config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } }, jobs: [{ id: "5", userid: 1, ranks: "4" }], mapper: "absent" },
      dir.path,
    );
    try {
      const r = await runBinary(["doctor", "--uri", broker.uri, "--timeout", "3s", "--json"], { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${dir.path}/no-bus` });
      const j = JSON.parse(r.stdout) as { live: boolean; findings: { area: string; severity: string; what: string }[] };
      expect(j.live).toBe(true);
      const broker_ = j.findings.filter((f) => f.area === "broker").map((f) => `${f.severity} ${f.what}`);
      expect(broker_).toContain(`ok ${broker.uri}: rank 4, instance owner root (uid 0), 1 running job here`);
      expect(broker_).toContain(`ok ${broker.uri}, config in force: the instance runs as root: the hooks are its owner`);
      expect(broker_).toContain("error sdexec-mapper does not answer (the sdexec-mapper module is not loaded) while exec.sdexec-constrain-resources is on: every prolog fails");
      expect(j.findings.find((f) => f.area === "systemd")!.what).toStartWith("the system bus is not reachable (");
      expect(r.code).toBe(1); // the mapper's absence is an error
    } finally {
      await broker.stop();
      dir.remove();
    }
  });
});
