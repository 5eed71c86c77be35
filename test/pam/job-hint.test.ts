// A denied user learns where their jobs run: through real libpam with pam_flux.so (and under
// pam_exec), against a test instance of three brokers (fluke7, fluke12, fluke13) that share one
// job list, the login asking the broker of fluke7 (rank 0).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Scenario, ScenarioJob } from "../broker/scenario";
import { BINARY, type BrokerProcess, startBrokerProcess, tempDir } from "../e2e/harness";
import { MODULE, SERVICE, codes, ensureBuilt, pamConfDir, realHelper, runDriver } from "./harness";

const USER = "daemon";
const UID = 1;
const DENIED = "PAM_ERROR_MSG Access denied: user daemon has no active jobs on this node";
const DENY_LOG = "LOG_NOTICE pam_flux(flux-pam-test:account): access denied for user daemon (uid=1)";
const HOSTS = ["fluke7", "fluke12", "fluke13"];
const ON_12_13: ScenarioJob = { id: "1227286904832", userid: UID, ranks: "1-2" }; // ƒZEr9Bmq
const HINT = "PAM_TEXT_INFO daemon has a running job on fluke[12-13] (ƒZEr9Bmq), not on fluke7";

const dir = tempDir("flux-pam-hint-");
const brokers: BrokerProcess[] = [];
let helper: string;
let pam: ReturnType<typeof pamConfDir>;

/** Every broker of the instance gets the same jobs; each knows its own rank. */
function instance(jobs: ScenarioJob[], over: Partial<Scenario> = {}): void {
  brokers.forEach((b, rank) => b.setScenario({ rank, hosts: HOSTS, jobs, ...over }));
}

beforeAll(async () => {
  await ensureBuilt();
  for (const [rank, host] of HOSTS.entries()) brokers.push(await startBrokerProcess({ rank, hosts: HOSTS }, dir.path, host));
  helper = realHelper(dir.path);
  pam = pamConfDir(dir.path);
});
afterAll(async () => {
  for (const b of brokers) await b.stop();
  dir.remove();
});

async function account(options: string[] = [], o: { silent?: boolean; broker?: number } = {}) {
  pam.service(SERVICE, [`account required ${MODULE} helper=${helper} uri=${brokers[o.broker ?? 0]!.uri} ${options.join(" ")}`]);
  return runDriver({ confdir: pam.path, actions: ["acct"], user: USER, silent: o.silent });
}

describe("pam_flux.so: the job hint after a denial", () => {
  test("a job on other ranks: the exact denial, then one info line naming the nodes and the job", async () => {
    instance([ON_12_13]);
    const r = await account();
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED, HINT]);
    // the log line is the denial's, unchanged
    expect(r.syslog).toEqual([DENY_LOG]);
  });

  test("the same job admits on the node it runs on (the instance is real enough to tell)", async () => {
    instance([ON_12_13]);
    const r = await account([], { broker: 1 });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(r.conv).toEqual([]);
  });

  test("with debug, the nodes go to the log at LOG_DEBUG, the denial's own line unchanged", async () => {
    instance([ON_12_13]);
    const r = await account(["debug"]);
    expect(r.syslog.filter((l) => !l.startsWith("LOG_DEBUG"))).toEqual([DENY_LOG]);
    expect(r.syslog).toContain("LOG_DEBUG pam_flux(flux-pam-test:account): told daemon: daemon has a running job on fluke[12-13] (ƒZEr9Bmq), not on fluke7");
  });

  test("several jobs: the first few and how many more, in one line of at most 200 characters", async () => {
    const jobs = Array.from({ length: 40 }, (_, i): ScenarioJob => ({ id: String(1227286904832 + i * 1_000_000), userid: UID, ranks: i % 2 ? "1" : "2" }));
    instance(jobs);
    const r = await account();
    expect(r.conv[0]).toBe(DENIED);
    const hint = r.conv[1]!;
    expect(hint).toMatch(/^PAM_TEXT_INFO daemon has running jobs on fluke13 \(ƒ\w+\), fluke12 \(ƒ\w+\), .* and \d+ more, not on fluke7$/);
    expect(hint.length - "PAM_TEXT_INFO ".length).toBeLessThanOrEqual(200);
    const shown = hint.split("(ƒ").length - 1;
    expect(Number(/and (\d+) more/.exec(hint)![1]) + shown).toBe(40);
    expect(r.conv.length).toBe(2);
  });

  test("no running job anywhere: the denial line only", async () => {
    instance([{ id: "1227286904832", userid: UID, ranks: "1", state: 32 }]);
    const r = await account();
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED]);
  });

  test("other users' jobs are never named", async () => {
    instance([{ id: "1227286904832", userid: 2, ranks: "1" }]);
    expect((await account()).conv).toEqual([DENIED]);
  });

  test("a broker that answers the rank query but hangs on the instance-wide one: denied in time, the denial line only", async () => {
    instance([ON_12_13], { silentMatching: { "job-list.list": "nodelist" } });
    const t0 = performance.now();
    const r = await account(["timeout=4s", "debug"]);
    const ms = performance.now() - t0;
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED]);
    // The helper gave up on the hint itself (its share of the budget), well before the module's deadline.
    expect(r.syslog.some((l) => l.includes("no job hint for daemon: job-list.list: no answer from the Flux broker within"))).toBe(true);
    expect(r.syslog.some((l) => l.includes("killed"))).toBe(false);
    expect(ms).toBeLessThan(4000);
  });

  test("PAM_SILENT: nothing shown, and the hint is not even looked up", async () => {
    instance([ON_12_13]);
    const r = await account(["debug"], { silent: true });
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([]);
    expect(r.syslog.some((l) => l.includes("told daemon"))).toBe(false);
    expect(r.syslog).toContain(DENY_LOG);
  });

  test("no-job-hint: the denial line only, and no lookup", async () => {
    instance([ON_12_13]);
    const r = await account(["no-job-hint", "debug"]);
    expect(r.conv).toEqual([DENIED]);
    expect(r.syslog.some((l) => l.includes("told daemon"))).toBe(false);
  });

  test("host names that are not host names are not shown", async () => {
    instance([ON_12_13], { hosts: ["fluke7", "\u001b[31mevil", "fluke13"] });
    const r = await account();
    expect(r.conv).toEqual([DENIED]);
  });
});

describe("pam_exec.so: the job hint is a second stdout line", () => {
  test("the denial, then the hint", async () => {
    instance([ON_12_13]);
    pam.service(SERVICE, [`account required pam_exec.so quiet stdout ${BINARY} account uri=${brokers[0]!.uri}`]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SYSTEM_ERR"]);
    const shown = r.conv.filter((l) => l.startsWith("PAM_TEXT_INFO "));
    expect(shown.slice(0, 2)).toEqual([
      "PAM_TEXT_INFO Access denied: user daemon has no active jobs on this node",
      "PAM_TEXT_INFO daemon has a running job on fluke[12-13] (ƒZEr9Bmq), not on fluke7",
    ]);
  });
});
