// The drift status reports: each way a node can differ from what the running jobs call for.

import { describe, expect, test } from "bun:test";
import { type UserNodeState, compareLimit, fluxPamTraces, verdict } from "../../src/decide/drift";

const JOBS = { AllowedCPUs: "0-3", AllowedMemoryNodes: "0", DevicePolicy: "closed", DeviceAllow: "/dev/nvidia0 rw,/dev/nvidiactl rw" };
const NONE = { AllowedCPUs: "", AllowedMemoryNodes: "", DevicePolicy: "auto", DeviceAllow: "" };
const good: UserNodeState = {
  uid: 1000,
  jobs: 1,
  marker: true,
  constrain: true,
  killUserSlice: true,
  limits: JOBS,
  expected: JOBS,
  dropins: true,
  limitDropins: true,
  shares: true,
  failure: false,
  userService: "active",
  linger: false,
  scopes: [{ name: "flux-pam-77.scope", pids: [77] }],
  strays: [],
};
const idle: UserNodeState = { ...good, jobs: 0, marker: false, limits: NONE, expected: undefined, dropins: false, limitDropins: false, shares: false, userService: "inactive", scopes: [] };

describe("verdict()", () => {
  test("a user held to exactly their jobs, and one fully torn down, are consistent", () => {
    expect(verdict(good)).toEqual({ drift: [], notes: [] });
    expect(verdict(idle)).toEqual({ drift: [], notes: [] });
  });

  test("a running job without a marker; a marker without a running job", () => {
    expect(verdict({ ...good, marker: false }).drift).toEqual(["running job without a marker: logins are refused"]);
    expect(verdict({ ...idle, marker: true }).drift).toEqual(["marker without a running job"]);
  });

  test("limits wider, narrower or other than the jobs, named with both values", () => {
    expect(verdict({ ...good, limits: { ...JOBS, AllowedCPUs: "0-7" } }).drift).toEqual(["limits wider than the jobs: AllowedCPUs=0-7, jobs hold 0-3"]);
    expect(verdict({ ...good, limits: { ...JOBS, AllowedCPUs: "0-1" } }).drift).toEqual(["limits narrower than the jobs: AllowedCPUs=0-1, jobs hold 0-3"]);
    expect(verdict({ ...good, limits: { ...JOBS, AllowedCPUs: "4-7" } }).drift).toEqual(["limits differ from the jobs: AllowedCPUs=4-7, jobs hold 0-3"]);
    expect(verdict({ ...good, limits: NONE }).drift).toEqual([
      "limits wider than the jobs: AllowedCPUs=(none), jobs hold 0-3",
      "limits wider than the jobs: AllowedMemoryNodes=(none), jobs hold 0",
      "limits wider than the jobs: DevicePolicy=auto, jobs hold closed",
      "limits narrower than the jobs: DeviceAllow=(none), jobs hold /dev/nvidia0 rw,/dev/nvidiactl rw",
    ]);
  });

  test("the same sets spelled differently are the same", () => {
    expect(compareLimit("AllowedCPUs", "0-1 4-5", "0-1,4-5")).toBe("same");
    expect(compareLimit("DeviceAllow", "/dev/nvidiactl rw,/dev/nvidia0 rw", "/dev/nvidia0 rw,/dev/nvidiactl rw")).toBe("same");
    expect(compareLimit("DeviceAllow", "/dev/nvidia0 rw,/dev/nvidia1 rw", "/dev/nvidia0 rw")).toBe("wider");
    // what each entry grants, not how it is spelled: the order of r, w, m, a path given twice
    expect(compareLimit("DeviceAllow", "/dev/nvidia0 rw", "/dev/nvidia0 wr")).toBe("same");
    expect(compareLimit("DeviceAllow", "/dev/nvidia0 rw", "/dev/nvidia0 r,/dev/nvidia0 w")).toBe("same");
    expect(compareLimit("DeviceAllow", "/dev/nvidia0 rwm", "/dev/nvidia0 rw")).toBe("wider");
    expect(compareLimit("DeviceAllow", "/dev/nvidia0 r", "/dev/nvidia0 rw")).toBe("narrower");
    expect(compareLimit("DevicePolicy", "strict", "closed")).toBe("narrower");
  });

  test("constraints off: the limits are not compared", () => {
    expect(verdict({ ...good, constrain: false, limits: NONE, expected: undefined }).drift).toEqual([]);
  });

  test("a mapper that cannot map the jobs is drift that names why", () => {
    expect(verdict({ ...good, expected: undefined, expectedError: "sdexec-mapper.lookup: ENOSYS" }).drift).toEqual(["the jobs' resources cannot be mapped: sdexec-mapper.lookup: ENOSYS"]);
  });

  test("what an ended job's teardown should have removed", () => {
    const v = verdict({
      ...idle,
      limits: { ...NONE, AllowedCPUs: "0-3", DevicePolicy: "closed" },
      dropins: true,
      limitDropins: true,
      userService: "active",
      scopes: [{ name: "flux-pam-77.scope", pids: [77, 78] }, { name: "flux-pam-79.scope", pids: [] }],
    });
    expect(v.drift).toEqual([
      "limits left from ended jobs: AllowedCPUs=0-3 DevicePolicy=closed",
      "runtime drop-ins of its limits left: /run/systemd/system.control/user-1000.slice.d",
      "login scope flux-pam-77.scope without a running job: 77 78",
      "user@1000.service is active without a running job",
    ]);
  });

  test("an administrator's own runtime drop-in (TasksMax) beside a trace of flux-pam's is not drift: the teardown leaves it", () => {
    expect(verdict({ ...idle, marker: true, dropins: true, limitDropins: false }).drift).toEqual(["marker without a running job"]);
  });

  test("stray processes: drift without a job (kill-user-slice ends them), a note while the slice holds them", () => {
    const strays = [{ cgroup: "user.slice/user-1000.slice/session-3.scope", pids: [500] }];
    // (left by a teardown cut short: its failure recorded, or its drop-ins still there)
    expect(verdict({ ...idle, failure: true, strays }).drift).toEqual(["processes in user.slice/user-1000.slice/session-3.scope without a running job: 500"]);
    expect(verdict({ ...idle, dropins: true, limitDropins: true, strays }).drift).toContain("processes in user.slice/user-1000.slice/session-3.scope without a running job: 500");
    expect(verdict({ ...good, strays })).toEqual({
      drift: [],
      notes: ["processes in user.slice/user-1000.slice/session-3.scope, outside user@ and the login scopes (still held by the slice): 500"],
    });
  });

  test("without kill-user-slice, what outlives the last job is kept: a note, not drift", () => {
    const v = verdict({ ...idle, killUserSlice: false, scopes: [{ name: "flux-pam-9.scope", pids: [9] }] });
    expect(v).toEqual({ drift: [], notes: ["login scope flux-pam-9.scope without a running job: 9 (kept: pam.kill-user-slice is off)"] });
  });

  test("a slice with nothing of flux-pam's in it, of a user without jobs (a lingering account, a console login): noted, not drift", () => {
    const strays = [{ cgroup: "user.slice/user-1000.slice/session-3.scope", pids: [500] }];
    expect(verdict({ ...idle, strays, userService: "active", linger: true })).toEqual({
      drift: [],
      notes: [
        "user-1000.slice holds nothing of flux-pam's (no job, marker, record, limit, drop-in of one or login scope of its own): not managed here, left alone by reconcile: processes in user.slice/user-1000.slice/session-3.scope: 500; user@1000.service active (linger is enabled: a job of this user here would be refused)",
      ],
    });
    // each of flux-pam's own makes it flux-pam's to judge (and tear down)
    const held = { ...idle, strays, userService: "active" };
    for (const own of [{ marker: true }, { shares: true }, { failure: true }, { dropins: true, limitDropins: true }, { limits: { ...NONE, AllowedCPUs: "0-3" } }, { scopes: [{ name: "flux-pam-9.scope", pids: [9] }] }])
      expect(verdict({ ...held, ...own }).drift).toContain("user@1000.service is active without a running job");
    expect(verdict(held).drift).toEqual([]);
    // an administrator's own runtime property of the slice is not flux-pam's
    expect(verdict({ ...held, dropins: true }).drift).toEqual([]);
    // limits systemd could not tell may be flux-pam's: judged as ever
    expect(verdict({ ...held, limits: undefined }).drift).toContain("user@1000.service is active without a running job");
  });

  test("fluxPamTraces() names what flux-pam left, and nothing for limits that constrain nothing", () => {
    expect(fluxPamTraces({ ...idle })).toEqual([]);
    expect(fluxPamTraces({ ...idle, limits: { ...NONE, DevicePolicy: "auto" } })).toEqual([]);
    expect(fluxPamTraces({ ...good })).toEqual(["a marker", "a record of its jobs' shares", "runtime drop-ins of its limits", "a login scope"]);
    expect(fluxPamTraces({ ...idle, failure: true, limits: { ...NONE, DevicePolicy: "closed" } })).toEqual(["a failed hook's record", "limits"]);
  });

  test("limits in force are flux-pam's when systemd holds them in memory only, or does not say; not when the slice's own files give them", () => {
    const limits = { ...NONE, AllowedCPUs: "0-1", DevicePolicy: "closed" };
    // a teardown cut short after its drop-ins went: the limits live on in memory
    expect(fluxPamTraces({ ...idle, limits, needDaemonReload: true })).toEqual(["limits held in systemd's memory only"]);
    expect(fluxPamTraces({ ...idle, limits })).toEqual(["limits"]);
    // an administrator's drop-in in /etc/systemd/system/user-.slice.d (loaded: NeedDaemonReload=no)
    expect(fluxPamTraces({ ...idle, limits, needDaemonReload: false })).toEqual([]);
    const held = { ...idle, limits, needDaemonReload: false, strays: [{ cgroup: "user.slice/user-1000.slice/session-3.scope", pids: [500] }] };
    expect(verdict(held).drift).toEqual([]);
    expect(verdict(held).notes[0]).toStartWith("user-1000.slice holds nothing of flux-pam's");
    // with a trace of flux-pam's (a marker), those limits are said, not taken for an ended job's
    expect(verdict({ ...held, marker: true })).toEqual({
      drift: ["marker without a running job", "processes in user.slice/user-1000.slice/session-3.scope without a running job: 500"],
      notes: ["limits from user-1000.slice's own unit files, not flux-pam's: AllowedCPUs=0-1 DevicePolicy=closed"],
    });
    expect(verdict({ ...held, marker: true, needDaemonReload: true }).drift).toContain("limits left from ended jobs: AllowedCPUs=0-1 DevicePolicy=closed");
  });

  test("a running job's limits without a runtime drop-in that holds them are drift (the next daemon-reload lifts them)", () => {
    const drift = "systemd holds the slice's limits in memory only (no runtime drop-in of them): the next daemon-reload lifts them";
    expect(verdict({ ...good, limitDropins: false, needDaemonReload: true }).drift).toEqual([drift]);
    expect(verdict({ ...good, dropins: false, limitDropins: false }).drift).toEqual([drift]);
    expect(verdict(good).drift).toEqual([]);
    // not judged where constraints are off, or systemd did not say
    expect(verdict({ ...good, constrain: false, limitDropins: false }).drift).toEqual([]);
    expect(verdict({ ...good, limits: undefined, limitDropins: false }).drift).toEqual([]);
  });

  test("jobs whose resources do not fit the node (the prolog refuses them) are drift", () => {
    const misfit = "AllowedCPUs=64-71 names CPUs this node cannot have (possible: 0-63): the kernel would refuse it and leave the slice on all of them";
    expect(verdict({ ...good, misfit }).drift).toEqual([`the jobs' resources do not fit this node: ${misfit}`]);
  });

  test("linger is drift", () => {
    expect(verdict({ ...good, linger: true }).drift).toEqual(["linger is enabled: its user manager outlives the jobs (loginctl disable-linger)"]);
  });

  test("a failed user@ start and an unknown slice are notes, not drift", () => {
    expect(verdict({ ...good, userService: "failed" })).toEqual({
      drift: [],
      notes: ["user@1000.service failed to start (journalctl -u user@1000.service); the slice still contains the logins"],
    });
    expect(verdict({ ...good, limits: undefined }).notes).toEqual(["systemd did not say what user-1000.slice holds: its limits were not compared"]);
  });
});
