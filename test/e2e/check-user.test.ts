// flux-pam check-user: the admin's "why can't this user log in here?".

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

const dir = tempDir();
let broker: BrokerProcess;
let child: BrokerProcess;
const locks = join(dir.path, "locks");

beforeAll(async () => {
  mkdirSync(locks, { mode: 0o700 });
  broker = await startBrokerProcess({}, dir.path);
  child = await startBrokerProcess({ config: { access: { "allow-guest-user": false } } }, dir.path, "child");
});
afterAll(async () => {
  await broker.stop();
  await child.stop();
  dir.remove();
});

async function checkUser(s: Scenario, user: string, ...flags: string[]) {
  broker.setScenario(s);
  const r = await runBinary(["check-user", user, "--uri", broker.uri, ...flags], { FLUX_PAM_LOCK_DIR: locks });
  return r;
}

async function json(s: Scenario, user: string, ...flags: string[]) {
  const r = await checkUser(s, user, "--json", ...flags);
  return { code: r.code, report: JSON.parse(r.stdout) };
}

describe("flux-pam check-user", () => {
  test("a user with a running job here is admitted as owner, exit 0, with the job in F58", async () => {
    const { code, report } = await json({ rank: 2, owner: 64999, jobs: [{ id: "1227286904832", userid: 1, ranks: "0-3" }] }, "daemon");
    expect(code).toBe(0);
    expect(report).toMatchObject({ user: "daemon", uid: 1, admitted: true, as: "owner", rank: 2, owner: 64999 });
    expect(report.jobs).toEqual([{ id: "1227286904832", f58: "ƒZEr9Bmq", userid: 1, state: "RUN", ranks: "0-3", counts: true }]);
  });

  test("a job in CLEANUP is shown, and said not to admit", async () => {
    const r = await checkUser({ jobs: [{ id: "7", userid: 1, state: 32 }] }, "daemon");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("verdict:  DENIED: daemon has jobs on rank 0, but none in RUN");
    expect(r.stdout).toContain("ƒ8  CLEANUP  ranks 0  (does not admit: not RUN)");
  });

  test("the guest path says which condition failed", async () => {
    const { code, report } = await json(
      { rank: 1, owner: 3, jobs: [{ id: "99", userid: 3, ranks: "1-2", uri: `ssh://n0${child.socket}` }, { id: "100", userid: 3, ranks: "0-1" }] },
      "daemon",
      "--allow-guest-user",
    );
    expect(code).toBe(1);
    expect(report.guest).toEqual([
      { job: "ƒ2i", ok: false, why: `the instance at ${child.uri} does not set access.allow-guest-user = true` },
      { job: "ƒ2j", ok: false, why: "rank 1 is not the first rank of the job" },
    ]);
  });

  test("the node's containment state: lock dir, marker, config", async () => {
    writeFileSync(join(locks, "uid.1.active"), "", { mode: 0o600 });
    const { report } = await json({ config: { pam: { "manage-user-slice": true, "kill-slice-grace-time": "1m" } }, jobs: [{ id: "5", userid: 1 }] }, "daemon");
    expect(report.node).toMatchObject({ lockDir: locks, lockDirOk: true, marker: true });
    expect(report.config).toEqual({
      manageUserSlice: true,
      killUserSlice: false,
      killSliceGraceTime: 60,
      debug: false,
      constrainResources: false,
      allowGuestUser: false,
      allowRootOwner: false,
      privateMode: false,
    });
  });

  test("with pam.manage-user-slice on and no marker, the account step admits but session-open refuses: DENIED, exit 1, saying which step", async () => {
    rmSync(join(locks, "uid.1.active"), { force: true });
    const managed = { config: { pam: { "manage-user-slice": true } }, jobs: [{ id: "5", userid: 1 }] };
    const { code, report } = await json(managed, "daemon");
    expect(code).toBe(1);
    expect(report).toMatchObject({
      admitted: false,
      as: "owner",
      sessionRefused: "no active marker: containment is not set up (no prolog ran, or the last job ended)",
      reason: "the account step admits (1 running job(s) of daemon on rank 0), but session-open refuses the login: no active marker: containment is not set up (no prolog ran, or the last job ended)",
    });
    // the marker there: admitted
    writeFileSync(join(locks, "uid.1.active"), "", { mode: 0o600 });
    expect((await json(managed, "daemon")).code).toBe(0);
    // slice management off: no marker needed
    rmSync(join(locks, "uid.1.active"));
    expect((await json({ jobs: [{ id: "5", userid: 1 }] }, "daemon")).code).toBe(0);
  });

  test("a [pam] table session-open and the hooks refuse is said as such, not as a broker that could not be asked", async () => {
    const r = await checkUser({ config: { pam: { "kill-slice-grace-time": "bogus" } }, jobs: [{ id: "5", userid: 1 }] }, "daemon");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^verdict: {2}DENIED: the account step admits \(1 running job\(s\) of daemon on rank 0\), but session-open refuses the login: the broker's configuration is refused: .*kill-slice-grace-time.*$/m);
    expect(r.stdout).toMatch(/^config: {3}refused by session-open and the hooks: .*kill-slice-grace-time/m);
    expect(r.stdout).toContain("jobs here:\n");
  });

  test("jobs elsewhere in the instance: the same nodes a denied login is told, in text and JSON", async () => {
    const s: Scenario = {
      rank: 0,
      hosts: ["fluke7", "fluke12", "fluke13"],
      jobs: [
        { id: "1227286904832", userid: 1, ranks: "1-2" },
        { id: "1227286904833", userid: 2, ranks: "1" }, // someone else's
        { id: "1227286904834", userid: 1, ranks: "2", state: 32 }, // not running
      ],
    };
    const { code, report } = await json(s, "daemon");
    expect(code).toBe(1);
    expect(report.elsewhere).toEqual([{ id: "1227286904832", f58: "ƒZEr9Bmq", nodelist: "fluke[12-13]" }]);
    const text = await checkUser(s, "daemon");
    expect(text.stdout).toContain("\nelsewhere: fluke[12-13] (ƒZEr9Bmq)\n");
  });

  test("no jobs elsewhere: no elsewhere line", async () => {
    const text = await checkUser({ rank: 0, jobs: [] }, "daemon");
    expect(text.stdout).not.toContain("elsewhere");
  });

  test("an unknown user is reported as such, exit 1", async () => {
    const { code, report } = await json({}, "no-such-user-x");
    expect(code).toBe(1);
    expect(report.reason).toContain("no such user");
  });

  test("an unreachable broker is reported, exit 1", async () => {
    const r = await runBinary(["check-user", "daemon", "--uri", `local://${dir.path}/absent.sock`, "--timeout", "1s"], {});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("DENIED: denied: the broker could not be asked");
  });
});
