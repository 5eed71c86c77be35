// flux-pam status and reconcile on real systemd 252 (nspawn), with drift made on purpose: a marker
// removed while a job runs, a housekeeping that never ran, limits left from an ended job, a login
// scope and a stray process of a user whose last job ended. status names each one (exit 1),
// reconcile repairs each one, then status exits 0; a second reconcile writes nothing.
// Each test sets up the node it asserts on, and leaves it torn down.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ScenarioJob } from "../broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../e2e/harness";
import { ALICE, BIN, containedConfig, MARKER, OWNER, SLICE, SOCKDIR } from "./alice-node";
import { bootContainer, type Container, containerSkipReason } from "./container";

const skip = containerSkipReason();
if (skip) console.warn(`SKIPPED: status and reconcile on real systemd: ${skip}`);


interface Status {
  consistent: boolean;
  users: { uid: number; consistent: boolean; drift: string[]; notes: string[]; logins: { scope: string; processes: { pid: number }[] }[] }[];
}

describe.skipIf(skip !== undefined)("status and reconcile on real systemd", () => {
  let c: Container;
  let broker: BrokerProcess;
  const dir = tempDir();
  const uri = `local://${SOCKDIR}/broker.sock`;

  beforeAll(
    async () => {
      const socks = join(dir.path, "socks");
      mkdirSync(socks);
      chmodSync(socks, 0o755);
      broker = await startBrokerProcess({ owner: OWNER }, socks);
      c = await bootContainer({ binds: [{ host: socks, container: SOCKDIR }], cpus: "0-15" }); // (the jobs here hold CPUs this machine may not have)
    },
    { timeout: 20 * 60_000 },
  );
  afterAll(async () => {
    await c?.stop();
    await broker?.stop();
    dir.remove();
  });

  function node(jobs: ScenarioJob[]): void {
    broker.setScenario({
      rank: 0,
      owner: OWNER,
      config: containedConfig({}, { "allow-root-owner": true }),
      jobs,
      mapper: "auto",
    });
  }

  async function hook(name: "prolog" | "housekeeping", job: string) {
    const r = await c.exec([BIN, name], { env: { FLUX_URI: uri, FLUX_JOB_USERID: String(ALICE), FLUX_JOB_ID: job }, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`${name} ${job} exited ${r.code}: ${r.stderr}`);
  }

  async function status(): Promise<{ code: number; report: Status; alice: Status["users"][number] | undefined }> {
    const r = await c.exec([BIN, "status", "alice", "--json", "--uri", uri]);
    const report = JSON.parse(r.stdout) as Status;
    return { code: r.code, report, alice: report.users.find((u) => u.uid === ALICE) };
  }

  async function reconcile(...args: string[]) {
    return c.exec([BIN, "reconcile", "alice", "--uri", uri, ...args], { timeoutMs: 60_000 });
  }

  /** Polls until status says the node is consistent (a queued stop takes systemd a moment). */
  async function settlesConsistent(ms = 15_000): Promise<Status> {
    let last: Status | undefined;
    for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(100)) {
      const s = await status();
      last = s.report;
      if (s.code === 0) return s.report;
    }
    throw new Error(`status never became consistent: ${JSON.stringify(last)}`);
  }

  /** alice's slice holds foreign.service and nothing of flux-pam's: status notes it, reconcile leaves it running. */
  async function expectForeignLeftAlone() {
    const before = await status();
    expect(before.code).toBe(0);
    expect(before.alice?.drift).toEqual([]);
    expect(before.alice?.notes[0]).toMatch(/^user-1000\.slice holds nothing of flux-pam's .*: not managed here, left alone by reconcile: processes in user\.slice\/user-1000\.slice\/foreign\.service: \d+$/);
    const r = await reconcile();
    expect(r.stdout).toBe("alice (uid 1000): no running job here: left alone (user-1000.slice holds nothing of flux-pam's)\n");
    expect(r.code).toBe(0);
    expect((await c.exec(["systemctl", "is-active", "foreign.service"])).stdout.trim()).toBe("active");
  }

  /** The node as a last housekeeping leaves it: no job, nothing of alice's left. */
  async function cleanNode() {
    node([]);
    expect((await reconcile()).code).toBe(0);
    await settlesConsistent();
  }

  test("a marker removed while a job runs: named, then recreated", async () => {
    node([{ id: "101", userid: ALICE, cores: "0-1" }]);
    await hook("prolog", "101");
    await c.run(["rm", "-f", MARKER]);
    const before = await status();
    expect(before.code).toBe(1);
    expect(before.alice?.drift).toEqual(["running job without a marker: logins are refused"]);
    const r = await reconcile();
    expect(r.stdout).toBe("alice (uid 1000): 1 running job here (ƒ2k): repaired: marker created\n");
    expect(r.code).toBe(0);
    expect((await c.exec(["test", "-f", MARKER])).code).toBe(0);
    expect((await status()).code).toBe(0);
    await cleanNode();
  });

  test("a housekeeping that never ran: the job ended, the slice still set up; torn down", async () => {
    node([{ id: "201", userid: ALICE, cores: "0-1" }]);
    await hook("prolog", "201");
    node([{ id: "201", userid: ALICE, cores: "0-1", state: 64 }]);
    const before = await status();
    expect(before.code).toBe(1);
    expect(before.alice?.drift).toContain("marker without a running job");
    expect(before.alice?.drift).toContain("limits left from ended jobs: AllowedCPUs=0-1 AllowedMemoryNodes=0 DevicePolicy=closed");
    const r = await reconcile();
    expect(r.stdout).toStartWith("alice (uid 1000): no running job here: repaired: marker removed, runtime drop-ins removed, slice stop queued");
    expect((await c.exec(["test", "-e", MARKER])).code).not.toBe(0);
    await settlesConsistent();
  });

  test("limits left from an ended job beside a running one: wider than the jobs, then the union again; a second run writes nothing", async () => {
    node([{ id: "301", userid: ALICE, cores: "0-1" }]);
    await hook("prolog", "301");
    node([{ id: "301", userid: ALICE, cores: "0-1" }, { id: "302", userid: ALICE, cores: "4-5" }]);
    await hook("prolog", "302");
    node([{ id: "301", userid: ALICE, cores: "0-1", state: 64 }, { id: "302", userid: ALICE, cores: "4-5" }]);
    const before = await status();
    expect(before.alice?.drift).toEqual(["limits wider than the jobs: AllowedCPUs=0-1,4-5, jobs hold 4-5"]);
    const r = await reconcile();
    expect(r.stdout).toBe("alice (uid 1000): 1 running job here (ƒ6D): repaired: limits set to the jobs' union\n");
    expect((await c.run(["systemctl", "show", "-p", "AllowedCPUs", SLICE])).trim()).toBe("AllowedCPUs=4-5");
    expect((await status()).code).toBe(0);
    const again = await reconcile();
    expect(again.stdout).toBe("alice (uid 1000): 1 running job here (ƒ6D): consistent, nothing to do\n");
    await cleanNode();
  });

  test("limits held in systemd's memory only (their drop-ins gone): written again, not taken as in force", async () => {
    node([{ id: "801", userid: ALICE, cores: "0-1" }]);
    await hook("prolog", "801");
    const dropins = `/run/systemd/system.control/${SLICE}.d`;
    await c.run(["sh", "-c", `rm -f ${dropins}/*.conf`]);
    // The same limits as the job's union, in memory alone: the next daemon-reload would lift them.
    expect((await c.run(["systemctl", "show", "-p", "AllowedCPUs", "-p", "NeedDaemonReload", SLICE])).trim()).toBe("AllowedCPUs=0-1\nNeedDaemonReload=yes");
    // status says so (what reconcile repairs is drift)
    const before = await status();
    expect(before.code).toBe(1);
    expect(before.alice?.drift).toEqual(["systemd holds the slice's limits in memory only (no runtime drop-in of them): the next daemon-reload lifts them"]);
    const r = await reconcile();
    expect(r.stdout).toMatch(/^alice \(uid 1000\): 1 running job here \(ƒ\w+\): repaired: limits set to the jobs' union\n$/);
    expect(r.code).toBe(0);
    expect((await c.run(["systemctl", "show", "-p", "AllowedCPUs", "-p", "NeedDaemonReload", SLICE])).trim()).toBe("AllowedCPUs=0-1\nNeedDaemonReload=no");
    expect((await c.run(["sh", "-c", `ls ${dropins}`])).split("\n")).toContain("50-AllowedCPUs.conf");
    expect((await status()).code).toBe(0);
    await cleanNode();
  });

  test("a login scope of a user whose last job ended: named, then ended with the slice", async () => {
    node([{ id: "401", userid: ALICE, cores: "0" }]);
    await hook("prolog", "401");
    await c.run(["sh", "-c", `systemd-run --quiet --scope --unit=flux-pam-4242 --slice=${SLICE} --uid=${ALICE} sleep infinity >/dev/null 2>&1 &`]);
    let pid = 0;
    for (const end = Date.now() + 10_000; pid === 0 && Date.now() < end; await Bun.sleep(50)) {
      const s = await status();
      pid = s.alice?.logins.find((l) => l.scope === "flux-pam-4242.scope")?.processes[0]?.pid ?? 0;
    }
    expect(pid).toBeGreaterThan(0);
    node([{ id: "401", userid: ALICE, cores: "0", state: 64 }]);
    const before = await status();
    expect(before.alice?.drift).toContain(`login scope flux-pam-4242.scope without a running job: ${pid}`);
    const r = await reconcile();
    expect(r.stdout).toContain("processes signalled");
    expect(r.code).toBe(0);
    await settlesConsistent();
    expect((await c.exec(["kill", "-0", String(pid)])).code).not.toBe(0);
  });

  test("a stray process in the slice of a user whose last job ended: named, then ended", async () => {
    node([{ id: "501", userid: ALICE, cores: "0" }]);
    await hook("prolog", "501");
    await c.run(["systemd-run", "--quiet", `--uid=${ALICE}`, `--slice=${SLICE}`, "--unit=stray", "sleep", "infinity"]);
    node([{ id: "501", userid: ALICE, cores: "0", state: 64 }]);
    const before = await status();
    expect(before.code).toBe(1);
    expect(before.alice?.drift.some((d) => /^processes in user\.slice\/user-1000\.slice\/stray\.service without a running job: \d+$/.test(d))).toBe(true);
    expect((await reconcile()).code).toBe(0);
    await settlesConsistent();
    expect((await c.exec(["systemctl", "is-active", "stray.service"])).stdout.trim()).not.toBe("active");
  });

  test("a slice that holds nothing of flux-pam's (a process started there by hand, no job here ever): noted, left alone", async () => {
    node([]);
    await c.run(["systemd-run", "--quiet", `--uid=${ALICE}`, `--slice=${SLICE}`, "--unit=foreign", "sleep", "infinity"]);
    // an administrator's own runtime property of the slice: not a drop-in of flux-pam's limits
    await c.run(["systemctl", "set-property", "--runtime", SLICE, "TasksMax=200"]);
    try {
      await expectForeignLeftAlone();
      expect((await c.run(["systemctl", "show", "-p", "TasksMax", SLICE])).trim()).toBe("TasksMax=200");
    } finally {
      await c.run(["systemctl", "stop", "foreign.service"]);
      await c.run(["systemctl", "revert", SLICE]);
    }
    await cleanNode();
  });

  test("an administrator's limits in the slices' own files (/etc/systemd/system/user-.slice.d), no job here: noted as not flux-pam's, the slice left alone", async () => {
    node([]);
    const site = "/etc/systemd/system/user-.slice.d/90-site.conf";
    await c.run(["sh", "-c", `mkdir -p ${site.slice(0, site.lastIndexOf("/"))} && printf '[Slice]\\nAllowedCPUs=0\\nDevicePolicy=closed\\n' >${site} && systemctl daemon-reload`]);
    await c.run(["systemd-run", "--quiet", `--uid=${ALICE}`, `--slice=${SLICE}`, "--unit=foreign", "sleep", "infinity"]);
    try {
      expect((await c.run(["systemctl", "show", "-p", "AllowedCPUs", "-p", "DevicePolicy", "-p", "NeedDaemonReload", SLICE])).trim()).toBe("AllowedCPUs=0\nDevicePolicy=closed\nNeedDaemonReload=no");
      await expectForeignLeftAlone();
    } finally {
      await c.run(["systemctl", "stop", "foreign.service"]);
      await c.run(["sh", "-c", `rm -f ${site} && systemctl daemon-reload`]);
    }
    await cleanNode();
  });

  test("a lingering account without jobs here (its user manager up since linger was enabled): noted, its manager left running", async () => {
    node([]);
    await c.run(["loginctl", "enable-linger", "alice"]);
    try {
      let state = "";
      for (const end = Date.now() + 15_000; state !== "active" && Date.now() < end; await Bun.sleep(100)) state = (await c.exec(["systemctl", "is-active", `user@${ALICE}.service`])).stdout.trim();
      expect(state).toBe("active");
      const before = await status();
      expect(before.code).toBe(0);
      expect(before.alice?.notes[0]).toMatch(/holds nothing of flux-pam's .*: user@1000\.service active \(linger is enabled: a job of this user here would be refused\)$/);
      const r = await reconcile();
      expect(r.stdout).toBe("alice (uid 1000): no running job here: left alone (user-1000.slice holds nothing of flux-pam's)\n");
      expect((await c.exec(["systemctl", "is-active", `user@${ALICE}.service`])).stdout.trim()).toBe("active");
    } finally {
      await c.run(["loginctl", "disable-linger", "alice"]);
      await c.run(["systemctl", "stop", `user@${ALICE}.service`]);
    }
    await cleanNode();
  });

  test("a prolog that never ran: reconcile does what it would have done", async () => {
    node([{ id: "601", userid: ALICE, cores: "3" }]);
    const r = await reconcile();
    expect(r.stdout).toBe("alice (uid 1000): 1 running job here (ƒBN): repaired: marker created, limits set to the jobs' union, user@ start queued\n");
    expect((await status()).code).toBe(0);
    await cleanNode();
  });

  test("a site's scope-prefix= names the real scope, and status finds the login under it", async () => {
    node([{ id: "701", userid: ALICE, cores: "0" }]);
    await hook("prolog", "701");
    const pid = (await c.run(["bash", "-c", "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $!"])).trim();
    const r = await c.exec([BIN, "session-open", `uri=${uri}`, "scope-prefix=site-login"], { env: { PAM_USER: "alice", PAM_SERVICE: "sshd", FLUX_PAM_PID: pid } });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const cgroup = (await c.run(["cat", `/proc/${pid}/cgroup`])).split("\n").find((l) => l.startsWith("0::"));
    expect(cgroup).toBe(`0::/user.slice/${SLICE}/site-login-${pid}.scope`);
    const s = JSON.parse((await c.exec([BIN, "status", "alice", "--json", "--uri", uri, "--scope-prefix", "site-login"])).stdout) as Status;
    expect(s.users[0]!.logins.map((l) => [l.scope, l.processes.map((p) => p.pid)])).toEqual([[`site-login-${pid}.scope`, [Number(pid)]]]);
    await c.run(["kill", pid]);
    await cleanNode();
  });

  test("session-open racing a last-job housekeeping waits for the lock, then finds no marker: the login is refused", async () => {
    node([{ id: "801", userid: ALICE, cores: "0" }]);
    await hook("prolog", "801");
    // A stray that ignores SIGTERM keeps the housekeeping under the lock for the grace time (1 s).
    await c.run(["systemd-run", "--quiet", `--uid=${ALICE}`, `--slice=${SLICE}`, "--unit=stubborn", "bash", "-c", "trap '' TERM; while :; do sleep 0.2; done"]);
    const stray = (await c.run(["systemctl", "show", "-P", "MainPID", "stubborn"])).trim();
    expect(Number(stray)).toBeGreaterThan(0);
    node([{ id: "801", userid: ALICE, cores: "0", state: 64 }]);
    const pid = (await c.run(["bash", "-c", "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $!"])).trim();
    const teardown = c.exec([BIN, "housekeeping"], { env: { FLUX_URI: uri, FLUX_JOB_USERID: String(ALICE), FLUX_JOB_ID: "801" }, timeoutMs: 60_000 });
    // Once the housekeeping holds the lock (its marker is gone first thing), a login arrives.
    for (const end = Date.now() + 10_000; (await c.exec(["test", "-e", MARKER])).code === 0 && Date.now() < end; ) await Bun.sleep(10);
    const login = await c.exec([BIN, "session-open", `uri=${uri}`], { env: { PAM_USER: "alice", PAM_SERVICE: "sshd", FLUX_PAM_PID: pid } });
    // The login waited for the housekeeping's lock: by its answer the teardown had run to its end
    // under that lock, where the stray (deaf to TERM) is killed once the grace time is over and the
    // slice stopped. A login that had not waited would have answered with the stray still alive.
    expect((await c.exec(["test", "-e", `/proc/${stray}`])).code).not.toBe(0);
    const hk = await teardown;
    expect(hk.code).toBe(0);
    expect({ code: login.code, stdout: login.stdout }).toEqual({ code: 1, stdout: "Access denied: user alice has no active jobs on this node\n" });
    // The refused login never entered the slice.
    const cgroup = (await c.run(["cat", `/proc/${pid}/cgroup`])).split("\n").find((l) => l.startsWith("0::"));
    expect(cgroup).not.toContain(SLICE);
    await c.run(["kill", pid]);
    await settlesConsistent();
  });

  test("--dry-run says what it would do and changes nothing", async () => {
    node([{ id: "501", userid: ALICE, cores: "2" }]);
    const r = await reconcile("--dry-run");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${SLICE} SetUnitProperties`);
    expect(r.stdout).toContain(`marker create ${MARKER}`);
    expect(r.stdout).toContain("alice (uid 1000): 1 running job here (ƒ9e): the calls above would be made\n");
    expect((await c.exec(["test", "-e", MARKER])).code).not.toBe(0);
    // As a prolog that never ran leaves it: no marker, no limits.
    expect((await status()).alice?.drift).toEqual([
      "running job without a marker: logins are refused",
      "limits wider than the jobs: AllowedCPUs=(none), jobs hold 2",
      "limits wider than the jobs: AllowedMemoryNodes=(none), jobs hold 0",
      "limits wider than the jobs: DevicePolicy=auto, jobs hold closed",
    ]);
    await cleanNode();
  });
});
