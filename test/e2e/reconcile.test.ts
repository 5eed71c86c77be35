// flux-pam reconcile USER through the compiled binary, against the test broker and a stand-in
// systemd (test/systemd/fake-systemd.ts): what a stalled or refusing manager must not make it do,
// and its budget against a lock held long. The repairs themselves, on real systemd:
// test/systemd/node-repair.test.ts.

import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { runBinary } from "./harness";
import { standInNode } from "./stand-in-node";

const JOB = { id: "1227286904832", userid: 1, ranks: "0" };
const managed = (over: object = {}): Scenario => ({ rank: 0, owner: 64999, config: { pam: { "manage-user-slice": true } }, ...over });
const node = standInNode(managed(), "flux-pam-reconcile-");
const { locks } = node;
const marker = join(locks, "uid.1.active");
/** The manager's methods that change something. */
const WRITES = ["SetUnitProperties", "StartUnit", "StopUnit", "KillUnit", "ResetFailedUnit", "Reload", "RevertUnitFiles", "StartTransientUnit"];

afterEach(() => {
  node.systemd.calls.length = 0;
  node.systemd.memberPlans.clear();
  node.systemd.units.clear();
  rmSync(marker, { force: true });
});

function reconcile(s: Scenario, ...args: string[]) {
  node.broker.setScenario(s);
  return runBinary(["reconcile", "daemon", "--uri", node.broker.uri, ...args], { FLUX_PAM_LOCK_DIR: locks, DBUS_SYSTEM_BUS_ADDRESS: node.systemd.address });
}

const writes = () => node.systemd.calls.filter((c) => WRITES.includes(c.member)).map((c) => c.member);

describe("flux-pam reconcile", () => {
  test("no job here, nothing of flux-pam's, and systemd refuses to say what the slice holds: left alone (no write), FAILED, exit 1", async () => {
    node.systemd.memberPlans.set("Get", "access-denied");
    const r = await reconcile(managed());
    expect(r.stdout).toBe(
      "daemon (uid 1): FAILED: systemd did not say what user-1.slice holds, and nothing else of flux-pam's is there: left alone, not torn down (Get user-1.slice: Permission denied (org.freedesktop.DBus.Error.AccessDenied))\n",
    );
    expect(r.code).toBe(1);
    expect(writes()).toEqual([]);
  });

  test("the control: with a marker of flux-pam's there, the same refusal does not stop the teardown (the marker goes first)", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    node.systemd.memberPlans.set("Get", "access-denied");
    const r = await reconcile(managed());
    expect(r.stdout).toStartWith("daemon (uid 1): ");
    expect(existsSync(marker)).toBe(false);
  });

  test("a write systemd refused is not reported as done", async () => {
    node.systemd.memberPlans.set("SetUnitProperties", "access-denied");
    const constrained = { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } };
    const r = await reconcile(managed({ config: constrained, mapper: "auto", jobs: [{ ...JOB, cores: "0" }] }));
    expect(r.stdout).toBe("daemon (uid 1): FAILED: SetUnitProperties user-1.slice: Permission denied (org.freedesktop.DBus.Error.AccessDenied)\n");
    expect(r.code).toBe(1);
    expect(existsSync(marker)).toBe(false);
  });

  test("a teardown that fails after the marker went says the marker is gone", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    node.systemd.memberPlans.set("StopUnit", "access-denied");
    const r = await reconcile(managed());
    expect(r.stdout).toStartWith("daemon (uid 1): FAILED: ");
    expect(r.stdout).toContain("StopUnit user-1.slice: Permission denied (org.freedesktop.DBus.Error.AccessDenied)");
    expect(r.stdout).toEndWith(" (done before: marker removed)\n");
    expect(r.code).toBe(1);
    expect(existsSync(marker)).toBe(false);
  });

  test("a user's lock held past the budget, then released: the user's own budget starts once the lock is held, and the repair goes on", async () => {
    // (another process holds uid 1's lock for 3 s: a hook's teardown waiting out its grace time)
    const holder = Bun.spawn(["flock", join(locks, "uid.1.lock"), "sleep", "3"], { stdout: "ignore", stderr: "inherit" });
    try {
      for (let i = 0; i < 200 && !existsSync(join(locks, "uid.1.lock")); i++) await Bun.sleep(10);
      await Bun.sleep(100);
      const r = await reconcile(managed({ jobs: [JOB] }), "--timeout", "2s");
      expect(r.stdout).toBe("daemon (uid 1): 1 running job here (ƒZEr9Bmq): repaired: marker created, user@ start queued\n");
      expect(r.code).toBe(0);
      expect(existsSync(marker)).toBe(true);
    } finally {
      holder.kill();
      await holder.exited;
    }
  });
});
