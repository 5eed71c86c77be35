// flux-pam status USER through the compiled binary, against the test broker and a stand-in systemd
// (test/systemd/fake-systemd.ts), or none at all: markers, jobs, the verdict, exit codes, the --json shape.
// The same on real systemd, with drift made on purpose and repaired: test/systemd/node-repair.test.ts.

import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { runBinary } from "./harness";
import { standInNode } from "./stand-in-node";

const JOB = { id: "1227286904832", userid: 1, ranks: "0" };
const managed = (over: object = {}): Scenario => ({ rank: 0, owner: 64999, config: { pam: { "manage-user-slice": true } }, ...over });
const node = standInNode(managed(), "flux-pam-status-");
const { dir, locks } = node;
const marker = join(locks, "uid.1.active");

async function status(s: Scenario, ...args: string[]) {
  return statusOn(`${node.systemd.address}`, s, ...args);
}

/** status on the bus at `address` ("unix:path=..."). */
async function statusOn(address: string, s: Scenario, ...args: string[]) {
  node.broker.setScenario(s);
  return runBinary(["status", "daemon", "--uri", node.broker.uri, "--timeout", "3s", ...args], {
    FLUX_PAM_LOCK_DIR: locks,
    DBUS_SYSTEM_BUS_ADDRESS: address,
  });
}

describe("flux-pam status", () => {
  test("a running job and its marker: consistent, exit 0", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    const r = await status(managed({ jobs: [JOB] }));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("daemon (uid 1): consistent\n");
    expect(r.stdout).toContain("  jobs:   ƒZEr9Bmq\n");
    expect(r.stdout).toContain("  marker: present\n");
  });

  test("a running job without its marker: drift in words, exit 1", async () => {
    rmSync(marker, { force: true });
    const r = await status(managed({ jobs: [JOB] }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("daemon (uid 1): DRIFT\n  drift:  running job without a marker: logins are refused\n");
  });

  test("a marker without a running job (the job in CLEANUP): drift", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    const r = await status(managed({ jobs: [{ ...JOB, state: 32 }] }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("  drift:  marker without a running job\n");
  });

  test("jobs holding CPUs this node cannot have (the prolog would refuse them): drift naming the mask", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    const constrained = { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } };
    const r = await status(managed({ config: constrained, mapper: "auto", jobs: [{ ...JOB, cores: "4000" }] }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("  drift:  the jobs' resources do not fit this node: AllowedCPUs=4000 names CPUs this node cannot have (possible: ");
  });

  test("--json: the documented shape", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    const r = await status(managed({ jobs: [JOB] }), "--json");
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j).sort()).toEqual(["constrainResources", "consistent", "manageUserSlice", "owner", "rank", "uri", "users", "version", "host"].sort());
    expect(j).toMatchObject({ version: 1, rank: 0, host: "node0", owner: 64999, manageUserSlice: true, constrainResources: false, consistent: true });
    expect(j.users).toHaveLength(1);
    const u = j.users[0];
    expect(Object.keys(u).sort()).toEqual(["consistent", "drift", "expected", "jobs", "limits", "linger", "logins", "marker", "name", "notes", "strays", "uid", "userService"].sort());
    const none = { AllowedCPUs: "", AllowedMemoryNodes: "", DevicePolicy: "auto", DeviceAllow: "" };
    expect(u).toMatchObject({ uid: 1, name: "daemon", consistent: true, drift: [], jobs: [{ id: "1227286904832", f58: "ƒZEr9Bmq", state: "RUN" }], marker: true, limits: none, expected: null, userService: "inactive" });
    expect(r.code).toBe(0);
  });

  test("without systemd nothing is judged consistent: the limits were not compared, and it says so, exit 1", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    const r = await statusOn(`unix:path=${dir.path}/no-bus`, managed({ jobs: [JOB] }));
    expect(r.code).toBe(1);
    expect(r.stdout).toStartWith(`flux-pam status: rank 0 (node0), ${node.broker.uri}: 1 user, not judged\nerror: systemd could not be asked: `);
    expect(r.stdout).toContain("  note:   systemd did not say what user-1.slice holds: its limits were not compared\n");
    const j = JSON.parse((await statusOn(`unix:path=${dir.path}/no-bus`, managed({ jobs: [JOB] }), "--json")).stdout);
    expect(j.consistent).toBe(false);
    expect(j.error).toStartWith("systemd could not be asked: ");
  });

  test("a running job whose slice holds no runtime drop-in of its limits (the next daemon-reload would lift them): drift", async () => {
    writeFileSync(marker, "", { mode: 0o600 });
    const constrained = { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } };
    // a limit in force, no drop-in of it under /run/systemd/system.control
    node.systemd.units.set("user-1.slice", { DevicePolicy: "closed" });
    const r = await status(managed({ config: constrained, mapper: "auto", jobs: [{ ...JOB, cores: "0" }] }));
    node.systemd.units.delete("user-1.slice");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("  drift:  systemd holds the slice's limits in memory only (no runtime drop-in of them): the next daemon-reload lifts them\n");
  });

  test("a failed hook is shown with the unit whose journal holds it", async () => {
    writeFileSync(join(locks, "uid.1.failed"), JSON.stringify({ hook: "prolog", job: "fZEr9Bmq", time: 1795660432, message: "boom" }), { mode: 0o600 });
    const r = await status(managed({ jobs: [JOB] }));
    expect(r.stdout).toContain("  note:   last failed hook: prolog of fZEr9Bmq: boom (journalctl -u flux-prolog@fZEr9Bmq.service)\n");
    rmSync(join(locks, "uid.1.failed"));
  });

  test("pam.manage-user-slice off: nothing contained, nothing drifts", async () => {
    rmSync(marker, { force: true });
    const r = await status({ rank: 0, owner: 64999, jobs: [JOB] });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("  note:   pam.manage-user-slice is off: nothing is contained on this node\n");
  });

  test("an unreachable broker: nothing judged, exit 1", async () => {
    const r = await runBinary(["status", "daemon", "--uri", `local://${dir.path}/absent.sock`, "--timeout", "1s"], { FLUX_PAM_LOCK_DIR: locks });
    expect(r.code).toBe(1);
    expect(r.stdout).toStartWith(`flux-pam status: local://${dir.path}/absent.sock: 1 user, not judged\nerror: the broker could not be asked: `);
  });

  test("usage errors exit 2", async () => {
    expect((await runBinary(["status", "a", "b"], {})).code).toBe(2);
    expect((await runBinary(["status", "--bogus"], {})).code).toBe(2);
    expect((await runBinary(["status", "no-such-user-x"], {})).code).toBe(2);
    // a uid past 32 bits, or with a leading zero, is no uid (getpwuid would take 4294968296 for 1000)
    for (const bad of ["4294968296", "01000"]) {
      const r = await runBinary(["status", bad], {});
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`flux-pam: status: "${bad}" is not a uid (0 to 4294967295, no leading zero)\n`);
      expect((await runBinary(["reconcile", bad], {})).code).toBe(2);
    }
  });
});
