// What prolog and housekeeping ask the broker, request by request, as flux-run-prolog runs them
// (--dry-run: no systemd needed). Each hook's conversation is the one SPEC.md describes.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Json } from "../../src/flux/json";
import type { Scenario } from "../broker/scenario";
import { type FakeSystemd, type RecordedCall, startFakeSystemd } from "../systemd/fake-systemd";
import { type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

const UID = 1; // daemon
const JOB = "1227286904832"; // fZEr9Bmq
const OTHER = "1227286904833";
const dir = tempDir();
let broker: BrokerProcess;
const node = (jobs: Scenario["jobs"]): Scenario => ({
  rank: 2,
  owner: 64999,
  config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } },
  jobs,
});

beforeAll(async () => {
  broker = await startBrokerProcess(node([]), dir.path, "broker", { logRequests: true });
});
afterAll(async () => {
  await broker.stop();
  dir.remove();
});

async function hook(name: "prolog" | "housekeeping", s: Scenario) {
  broker.setScenario(s);
  broker.clearRequests();
  const r = await runBinary([name, "--dry-run"], { FLUX_URI: broker.uri, FLUX_JOB_USERID: String(UID), FLUX_JOB_ID: JOB, FLUX_PAM_LOCK_DIR: join(dir.path, "locks") });
  return { ...r, requests: broker.requests() };
}

const BASICS = [
  { topic: "config.get" },
  { topic: "attr.get", payload: { name: "rank" } },
  { topic: "attr.get", payload: { name: "security.owner" } },
];
// No annotations: the hooks never read them, and the scheduler's would be most of the reply.
const LIST: { topic: string; payload?: Json } = { topic: "job-list.list", payload: { max_entries: 0, attrs: ["userid", "ranks", "state"], constraint: { and: [{ userid: [UID] }, { ranks: ["2"] }, { states: [16] }] } } };

describe("the hooks' requests", () => {
  test("prolog: config, rank and owner at once; its own job's R with the list of the user's RUN jobs on this rank; the other job's R; one mapper lookup of the union", async () => {
    const r = await hook("prolog", node([{ id: JOB, userid: UID, ranks: "2", cores: "0" }, { id: OTHER, userid: UID, ranks: "2", cores: "1" }]));
    expect(r.code).toBe(0);
    const topics = r.requests.map((q) => q.topic);
    expect(r.requests.slice(0, 3)).toEqual(BASICS);
    expect(topics.slice(3).sort()).toEqual(["job-info.lookup", "job-info.lookup", "job-list.list", "sdexec-mapper.lookup"]);
    expect(r.requests.find((q) => q.topic === "job-list.list")).toEqual(LIST);
    const lookups = r.requests.filter((q) => q.topic === "job-info.lookup").map((q) => q.payload);
    expect(lookups).toEqual([
      { id: Number(JOB), keys: ["R"], flags: 0 },
      { id: Number(OTHER), keys: ["R"], flags: 0 },
    ]);
    expect(topics.at(-1)).toBe("sdexec-mapper.lookup");
    const R = (r.requests.at(-1)!.payload as { R: { execution: { R_lite: unknown } } }).R;
    expect(R.execution.R_lite).toEqual([{ rank: "2", children: { core: "0-1" } }]);
  });

  test("housekeeping with a job left: the list, the remaining job's R, the mapper; never this job's R", async () => {
    const r = await hook("housekeeping", node([{ id: JOB, userid: UID, ranks: "2", cores: "0", state: 64 }, { id: OTHER, userid: UID, ranks: "2", cores: "1" }]));
    expect(r.code).toBe(0);
    expect(r.requests).toEqual([...BASICS, LIST, { topic: "job-info.lookup", payload: { id: Number(OTHER), keys: ["R"], flags: 0 } }, r.requests.at(-1)!]);
    expect(r.requests.at(-1)!.topic).toBe("sdexec-mapper.lookup");
  });

  test("housekeeping of the last job: the list only", async () => {
    const r = await hook("housekeeping", node([{ id: JOB, userid: UID, ranks: "2", state: 64 }]));
    expect(r.code).toBe(0);
    expect(r.requests).toEqual([...BASICS, LIST]);
  });

  test("a skipped hook (a job of root) asks nothing past the basics", async () => {
    broker.setScenario(node([]));
    broker.clearRequests();
    const r = await runBinary(["prolog", "--dry-run"], { FLUX_URI: broker.uri, FLUX_JOB_USERID: "0", FLUX_JOB_ID: JOB, FLUX_PAM_LOCK_DIR: join(dir.path, "locks") });
    expect(r.code).toBe(0);
    expect(broker.requests()).toEqual(BASICS);
  });

  test("the prolog asks for its job's R with the basics, before the broker has said anything: a prolog then skipped (pam.manage-user-slice off) has asked it too, a housekeeping has not", async () => {
    const off: Scenario = { ...node([{ id: JOB, userid: UID, ranks: "2", cores: "0" }]), config: { pam: { "manage-user-slice": false } } };
    const prolog = await hook("prolog", off);
    expect(prolog.code).toBe(0);
    expect(prolog.requests).toEqual([...BASICS, { topic: "job-info.lookup", payload: { id: Number(JOB), keys: ["R"], flags: 0 } }]);
    const housekeeping = await hook("housekeeping", off);
    expect(housekeeping.code).toBe(0);
    expect(housekeeping.requests).toEqual(BASICS);
  });
});

describe("the prolog's requests on a stand-in systemd (not a dry run: the marker decides)", () => {
  let sd: FakeSystemd;
  const lockDir = join(dir.path, "real-locks");
  beforeAll(async () => {
    sd = await startFakeSystemd(dir.path);
  });
  afterAll(async () => {
    await sd?.close();
  });

  async function prolog(s: Scenario, marker: boolean) {
    rmSync(lockDir, { recursive: true, force: true });
    mkdirSync(lockDir, { mode: 0o700 });
    if (marker) writeFileSync(join(lockDir, `uid.${UID}.active`), "");
    broker.setScenario(s);
    broker.clearRequests();
    sd.calls.length = 0;
    const r = await runBinary(["prolog"], { FLUX_URI: broker.uri, FLUX_JOB_USERID: String(UID), FLUX_JOB_ID: JOB, FLUX_PAM_LOCK_DIR: lockDir, DBUS_SYSTEM_BUS_ADDRESS: sd.address });
    const requests = broker.requests();
    const mapperRs = requests.filter((q) => q.topic === "sdexec-mapper.lookup").map((q) => (q.payload as { R: { execution: { R_lite: unknown } } }).R.execution.R_lite);
    const set = sd.calls.filter((c) => c.member === "SetUnitProperties");
    return { ...r, requests, mapperRs, cpus: set.length === 1 ? allowedCPUs(set[0]!) : `${set.length} SetUnitProperties` };
  }

  /** AllowedCPUs of a recorded SetUnitProperties (the CPU bitmask bytes it carries), to compare two slices by. */
  function allowedCPUs(call: RecordedCall): string {
    const props = call.body[2] as [string, { value: unknown[] }][];
    const cpus = props.find(([name]) => name === "AllowedCPUs");
    return cpus ? JSON.stringify(cpus[1].value) : "none";
  }

  test("no marker (the user's first job here) and the job alone: one mapper request, for the job's own share, and the same slice as with the marker", async () => {
    const alone = await prolog(node([{ id: JOB, userid: UID, ranks: "2", cores: "0" }]), false);
    expect(alone.code).toBe(0);
    expect(alone.requests.map((q) => q.topic).sort()).toEqual([...BASICS.map((q) => q.topic), "job-info.lookup", "job-list.list", "sdexec-mapper.lookup"].sort());
    expect(alone.mapperRs).toEqual([[{ rank: "2", children: { core: "0" } }]]);
    // The same node with the marker there: the mapper is asked after the list, for the same union, and the slice is the same.
    const marked = await prolog(node([{ id: JOB, userid: UID, ranks: "2", cores: "0" }]), true);
    expect(marked.code).toBe(0);
    expect(marked.mapperRs).toEqual(alone.mapperRs);
    expect(marked.requests.findIndex((q) => q.topic === "sdexec-mapper.lookup")).toBeGreaterThan(marked.requests.findIndex((q) => q.topic === "job-list.list"));
    expect(alone.cpus).toBe(marked.cpus);
    expect(alone.cpus).not.toBe("none");
  });

  test("no marker, yet another job of the user runs here (its prolog never ran): the early answer is set aside, the slice gets the union", async () => {
    const r = await prolog(node([{ id: JOB, userid: UID, ranks: "2", cores: "0" }, { id: OTHER, userid: UID, ranks: "2", cores: "1" }]), false);
    expect(r.code).toBe(0);
    // (as a set: which of the two reaches the broker first is a race)
    expect(r.mapperRs.map((x) => JSON.stringify(x)).sort()).toEqual([[{ rank: "2", children: { core: "0" } }], [{ rank: "2", children: { core: "0-1" } }]].map((x) => JSON.stringify(x)).sort());
    const union = await prolog(node([{ id: JOB, userid: UID, ranks: "2", cores: "0" }, { id: OTHER, userid: UID, ranks: "2", cores: "1" }]), true);
    expect(union.mapperRs).toEqual([[{ rank: "2", children: { core: "0-1" } }]]);
    expect(r.cpus).toBe(union.cpus);
  });
});
