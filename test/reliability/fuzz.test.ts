// The wire fuzzer: seeded cases of the admission query against a test broker that damages its
// replies (test/broker/fuzz.ts), judged by an oracle from SPEC.md. Two runners:
// - in process: the client, the RPC layer and the decision account uses, thousands of cases;
// - the compiled binary as pam_exec runs it: exit code, the exact denial, one stderr line, the
//   deadline, and peak RSS (GNU time), fewer cases.
// Invariants: never admitted unless the oracle admits (and, for damage a real broker could do,
// exactly as it says); never past the deadline + 1 s; no crash, no stack trace, no "undefined".
//
// Bounded for make check: FLUX_PAM_FUZZ_CASES (default 2000), FLUX_PAM_FUZZ_BINARY_CASES
// (default 120), FLUX_PAM_FUZZ_SEED (default fixed, so CI runs the same cases). `make fuzz` runs
// more, with a fresh seed; a failure names its seed and case index, which replay it.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { decideAdmission } from "../../src/decide/admission";
import { FluxClient } from "../../src/flux/client";
import { Deadline } from "../../src/flux/deadline";
import { childLocalUri } from "../../src/flux/uri";
import { userJobs } from "../../src/flux/user-jobs";
import { startBroker } from "../broker/broker";
import { caseScenario, caseTamper, type Delivered, type FuzzCase, makeCase, oracleAdmits, oracleHintIds, oracleOnJobs } from "../broker/fuzz";
import { formatF58, jobId, parseJobId } from "../../src/flux/jobid";
import { BINARY, tempDir } from "../e2e/harness";

const SEED = Number(process.env.FLUX_PAM_FUZZ_SEED ?? 20261127);
const CASES = Number(process.env.FLUX_PAM_FUZZ_CASES ?? 2000);
const BINARY_CASES = Number(process.env.FLUX_PAM_FUZZ_BINARY_CASES ?? 120);
const UID = 1; // daemon, in this machine's NSS (the binary looks PAM_USER up)
const DEADLINE_MS = 400;
const BINARY_TIMEOUT_S = 2;
/** The stated bound on the binary's peak RSS for any reply (measured peak: ~135 MiB). */
const RSS_BOUND_MIB = 200;
const DENIED = "Access denied: user daemon has no active jobs on this node\n";
const TIME = "/usr/bin/time";

const dir = tempDir("flux-pam-fuzz-");
afterAll(() => dir.remove());
let sockets = 0;

/** A broker for one case; `delivered` fills as it answers. */
function caseBroker(c: FuzzCase) {
  const delivered: Delivered = new Map();
  const b = startBroker(join(dir.path, `f${sockets++}.sock`), caseScenario(c), undefined, caseTamper(c, delivered));
  return { b, delivered, uri: `local://${b.path}` };
}

const where = (c: FuzzCase) => `seed ${c.seed} case ${c.index} (${c.payload} / ${c.wire} on ${c.target}, ${c.jobs.length} jobs, rank ${c.rank})`;

/** What makes a refusal unfit for a person or a log: a stack, "undefined", more than one line. */
function unfit(text: string): string | undefined {
  if (/\n\s+at |^\s+at /m.test(text)) return "a stack trace";
  if (/\bundefined\b/.test(text)) return '"undefined"';
  if (/\bNaN\b|\[object /.test(text)) return "NaN or [object ...]";
  if (text.includes("\n")) return "more than one line";
  return undefined;
}

// The errors a damaged reply may cause: anything else (TypeError, RangeError) is a crash in our code.
const EXPECTED_ERRORS = ["BadReplyError", "ProtocolError", "FluxTimeoutError", "BrokerUnavailableError", "FluxRpcError", "HandshakeRefusedError"];

interface Tally {
  cases: number;
  admitted: number;
  denied: number;
  benign: number;
  byReason: Map<string, number>;
}

function tally(): Tally {
  return { cases: 0, admitted: 0, denied: 0, benign: 0, byReason: new Map() };
}

describe("wire fuzzer: in process", () => {
  const t = tally();
  afterAll(() => {
    const top = [...t.byReason.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
    console.log(
      `fuzz (in process, seed ${SEED}): ${t.cases} replies, ${t.admitted} admitted, ${t.denied} denied, ${t.benign} benign; ` +
        `most frequent refusals: ${top.map(([k, n]) => `${n}x ${k}`).join("; ")}`,
    );
  });

  async function runCase(index: number): Promise<void> {
    const c = makeCase(SEED, index, UID);
    const { b, delivered, uri } = caseBroker(c);
    const t0 = performance.now();
    let admitted = false;
    let error: Error | undefined;
    let client: FluxClient | undefined;
    try {
      // As account does: one budget for all, the connect bounded by it.
      const deadline = new Deadline(DEADLINE_MS);
      client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 2000) });
      const node = await userJobs(client, c.uid, false, deadline);
      const { admission } = await decideAdmission(
        { uid: c.uid, owner: node.owner, rank: node.rank, jobs: node.jobs, allowGuestUser: false },
        childLocalUri,
        async () => ({ allowed: false }),
      );
      admitted = admission.kind === "owner";
    } catch (e) {
      error = e as Error;
    } finally {
      client?.close();
      b.stop();
    }
    const ms = performance.now() - t0;
    const oracle = oracleAdmits(c.uid, delivered);
    t.cases++;
    if (admitted) t.admitted++;
    else t.denied++;
    if (c.benign) t.benign++;
    if (error) {
      const reason = error.message.replace(/\/[^ :]+\.sock/g, "SOCK").replace(/\d+/g, "N").slice(0, 90);
      t.byReason.set(reason, (t.byReason.get(reason) ?? 0) + 1);
    }
    const id = where(c);
    if (admitted && !oracle) throw new Error(`${id}: admitted, but the oracle does not admit`);
    if (c.benign && admitted !== oracle) throw new Error(`${id}: a reply a real broker could send: admitted=${admitted}, oracle=${oracle} (${error?.message})`);
    if (c.benign && c.wire === "none" && oracle !== oracleOnJobs(c)) throw new Error(`${id}: the oracle misreads an undamaged reply`);
    if (ms > DEADLINE_MS + 1000) throw new Error(`${id}: took ${ms.toFixed(0)} ms, past the deadline of ${DEADLINE_MS} ms + 1 s`);
    if (error) {
      if (!EXPECTED_ERRORS.includes(error.name)) throw new Error(`${id}: crashed with ${error.name}: ${error.message}\n${error.stack}`);
      const bad = unfit(error.message);
      if (bad) throw new Error(`${id}: the refusal holds ${bad}: ${JSON.stringify(error.message)}`);
    }
  }

  test(`${CASES} seeded cases: nothing admitted the oracle refuses, nothing past the deadline, no crash`, async () => {
    const BATCH = 32;
    for (let i = 0; i < CASES; i += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, CASES - i) }, (_, k) => runCase(i + k)));
    }
    // Positive controls: the generator makes admitting replies and the runner admits them.
    expect(t.admitted).toBeGreaterThan(CASES / 20);
    expect(t.denied).toBeGreaterThan(CASES / 4);
  }, 600_000);
});

interface BinaryRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  rssMiB: number;
}

/** The compiled binary as pam_exec runs it, under GNU time for its own peak RSS. */
async function account(uri: string): Promise<BinaryRun> {
  const t0 = performance.now();
  const p = Bun.spawn([TIME, "-f", "rss-kib=%M", BINARY, "account", `uri=${uri}`, `timeout=${BINARY_TIMEOUT_S}s`], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", PAM_USER: "daemon", PAM_SERVICE: "sshd" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const ms = performance.now() - t0;
  const lines = err.split("\n").filter((l) => l !== "");
  const rss = lines.findLast((l) => l.startsWith("rss-kib="));
  if (rss === undefined) throw new Error(`GNU time printed no rss-kib line: ${err}`);
  const stderr = lines.filter((l) => !l.startsWith("rss-kib=") && !l.startsWith("Command exited with non-zero status")).join("\n");
  return { code, stdout, stderr, ms, rssMiB: Number(rss.slice(8)) / 1024 };
}

/** The job hint's shape (src/decide/job-hint.ts), at most 200 characters. */
const HINT = /^daemon has (?:a running job|running jobs) on .+, not on \S+$/;

/**
 * After the denial, at most one line: the hint, naming only jobs in `hintIds` (daemon's own RUN
 * jobs in what the broker said; a lying broker's other users' jobs are never named).
 */
function checkHint(id: string, rest: string, hintIds: ReadonlySet<string>): void {
  if (rest === "") return;
  const line = rest.endsWith("\n") ? rest.slice(0, -1) : rest;
  if (!rest.endsWith("\n") || line.includes("\n") || line.length > 200 || !HINT.test(line) || unfit(line))
    throw new Error(`${id}: denied with ${JSON.stringify(DENIED + rest)}`);
  const named = [...line.matchAll(/\((ƒ[1-9A-HJ-NP-Za-km-z]+)\)/g)].map((m) => parseJobId(m[1]!).toString());
  if (named.length === 0) throw new Error(`${id}: a hint that names no job: ${JSON.stringify(line)}`);
  const foreign = named.filter((n) => !hintIds.has(n));
  if (foreign.length > 0) throw new Error(`${id}: the hint names ${foreign.join(", ")}, not a running job of daemon's: ${JSON.stringify(line)}`);
}

/**
 * The outcome rules of the binary: exit 0 silent, or exit 1 with the exact denial (perhaps the
 * job hint after it) and one log line.
 */
function checkRun(id: string, r: BinaryRun, hintIds: ReadonlySet<string> = new Set()): boolean {
  if (r.code === 0) {
    if (r.stdout !== "" || r.stderr !== "") throw new Error(`${id}: admitted but printed ${JSON.stringify(r.stdout + r.stderr)}`);
    return true;
  }
  if (r.code !== 1) throw new Error(`${id}: exit ${r.code} (${r.stderr})`);
  if (!r.stdout.startsWith(DENIED)) throw new Error(`${id}: denied with ${JSON.stringify(r.stdout)}`);
  checkHint(id, r.stdout.slice(DENIED.length), hintIds);
  if (!/^flux-pam account: access denied for user daemon \(uid=1\)(: .+)?$/.test(r.stderr)) throw new Error(`${id}: log ${JSON.stringify(r.stderr)}`);
  const bad = unfit(r.stderr);
  if (bad) throw new Error(`${id}: the log line holds ${bad}: ${JSON.stringify(r.stderr)}`);
  if (r.ms > BINARY_TIMEOUT_S * 1000 + 1000) throw new Error(`${id}: took ${r.ms.toFixed(0)} ms, past timeout=${BINARY_TIMEOUT_S}s + 1 s`);
  if (r.rssMiB > RSS_BOUND_MIB) throw new Error(`${id}: peak RSS ${r.rssMiB.toFixed(0)} MiB, past the bound of ${RSS_BOUND_MIB} MiB`);
  return false;
}

describe("wire fuzzer: the oracle of the job hint", () => {
  const f58 = formatF58(jobId(1227286904832n));
  const hint = `daemon has a running job on node[1-2] (${f58}), not on node0\n`;
  test("passes a hint naming daemon's own running job", () => {
    expect(() => checkHint("case", hint, new Set(["1227286904832"]))).not.toThrow();
  });
  test("refuses one naming a job that is not daemon's, a second line that is no hint, and two hints", () => {
    expect(() => checkHint("case", hint, new Set(["99"]))).toThrow("not a running job of daemon's");
    expect(() => checkHint("case", "Try again later\n", new Set())).toThrow("denied with");
    expect(() => checkHint("case", hint + hint, new Set(["1227286904832"]))).toThrow("denied with");
  });
});

describe("wire fuzzer: the compiled binary", () => {
  test("GNU time is here (build/setup.sh installs it) and the binary is built", () => {
    expect(existsSync(TIME)).toBe(true);
    expect(existsSync(BINARY)).toBe(true);
  });

  test(`${BINARY_CASES} seeded cases through build/flux-pam account`, async () => {
    let admitted = 0;
    let hinted = 0;
    let peak = 0;
    const run = async (index: number) => {
      // Another stretch of the same seed than the in-process cases.
      const c = makeCase(SEED, 1_000_000 + index, UID);
      const { b, delivered, uri } = caseBroker(c);
      let r: BinaryRun;
      try {
        r = await account(uri);
      } finally {
        b.stop();
      }
      const id = where(c);
      const oracle = oracleAdmits(c.uid, delivered);
      peak = Math.max(peak, r.rssMiB);
      const ok = checkRun(id, r, oracleHintIds(UID, delivered));
      if (ok) admitted++;
      if (!ok && r.stdout !== DENIED) hinted++;
      if (ok && !oracle) throw new Error(`${id}: admitted, but the oracle does not admit`);
      if (c.benign && ok !== oracle) throw new Error(`${id}: a reply a real broker could send: admitted=${ok}, oracle=${oracle}: ${r.stderr}`);
    };
    const PARALLEL = 4;
    for (let i = 0; i < BINARY_CASES; i += PARALLEL) await Promise.all(Array.from({ length: Math.min(PARALLEL, BINARY_CASES - i) }, (_, k) => run(i + k)));
    console.log(`fuzz (binary, seed ${SEED}): ${BINARY_CASES} replies, ${admitted} admitted, ${hinted} denied with a job hint, peak RSS ${peak.toFixed(0)} MiB`);
    expect(admitted).toBeGreaterThan(0);
  }, 600_000);

  // Replies at and past the decoder's bounds: what a reply may cost in memory, measured.
  const heavy: [string, () => string, boolean][] = [
    ["125,000 jobs, 99,000 ids past 2^53 (7.7 MB)", () => jobs(125_000, 99_000), true],
    ["one 8 MiB string", () => `{"jobs":[${ADMIT}],"x":"${"a".repeat((8 << 20) - 200)}"}`, true],
    ["249,000 empty objects", () => `{"jobs":[${ADMIT}],"x":[${"{},".repeat(249_000)}{}]}`, true],
    ["999,000 numbers", () => `{"jobs":[${ADMIT}],"x":[${"0,".repeat(999_000)}0]}`, true],
    ["99,000 reals", () => `{"jobs":[${ADMIT}],"x":[${"1.5,".repeat(99_000)}1]}`, true],
    ["2,800,000 empty objects (8 MiB, past the bound)", () => `{"jobs":[${ADMIT}],"x":[${"{},".repeat(2_790_000)}{}]}`, false],
    ["a 9 MiB reply (past the bound)", () => `{"jobs":[${ADMIT}],"x":"${"a".repeat(9 << 20)}"}`, false],
  ];
  for (const [what, text, admits] of heavy) {
    test(`peak RSS stays under ${RSS_BOUND_MIB} MiB: ${what} ${admits ? "is read" : "is refused"}`, async () => {
      const s = text();
      const b = startBroker(join(dir.path, `h${sockets++}.sock`), { rank: 0, rawText: { "job-list.list": s } });
      let r: BinaryRun;
      try {
        r = await account(`local://${b.path}`);
      } finally {
        b.stop();
      }
      console.log(`  ${what}: ${(Buffer.byteLength(s) / 1048576).toFixed(1)} MiB, exit ${r.code}, peak RSS ${r.rssMiB.toFixed(0)} MiB`);
      expect(checkRun(what, r)).toBe(admits);
    }, 60_000);
  }
});

const ADMIT = `{"id":5,"userid":${UID},"state":16,"ranks":"0"}`;

function jobs(n: number, big: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`{"id":${(i < big ? 1n << 60n : 1000000n) + BigInt(i)},"userid":${2000 + (i % 50)},"state":16,"ranks":"0"}`);
  return `{"jobs":[${out.join(",")},${ADMIT}]}`;
}
