// How long the account decision takes through real libpam: pam_acct_mgmt timed inside the
// driver (test/pam/driver.c), N runs on one PAM handle, against the test broker process.
// The target's ratio (owner admitted against a Bun program that only answers) is timed apart,
// the two interleaved in rounds of PAIR_RUNS, their order alternating: rows timed one after the
// other drift with the machine (the same two rows said 1.82x and 1.91x on one idle machine).
// Two more pairs split that ratio: a Bun program that only asks the broker what account asks
// (bench/protocol-only.ts) against the one that only answers, and flux-pam against it.
// Usage: bun bench/account.ts [N]   (make bench builds what it needs first)
// FLUX_PAM_BENCH_URI=local:///PATH: against that broker instead (a real one, run by daemon, uid
// 1, with a job running on its rank 0: bin and sys then have no job anywhere, so the rows that
// name a job elsewhere are denials without a hint).

import type { Scenario } from "../test/broker/scenario";
import { BINARY, startBrokerProcess, tempDir } from "../test/e2e/harness";
import { join } from "node:path";
import { buildFloor, compileFloor } from "./floor";
import { evictFromPageCache } from "./page-cache";
import { median, medianInterval } from "./stats";
import { MODULE, driverArgs, ensureBuilt, installHelper, pamConfDir, realHelper, standIn } from "../test/pam/harness";

const N = Number(process.argv[2] ?? 200);
const URI = process.env.FLUX_PAM_BENCH_URI;
/** runs of each side per round of the paired ratio; N / PAIR_RUNS rounds (at least 5) */
const PAIR_RUNS = 10;
// daemon (1) has a job here; bin (2) has one on another node (the denial's job hint names it); sys (3) none.
const JOB: Scenario = {
  rank: 0,
  jobs: [
    { id: "1227286904832", userid: 1, ranks: "0" },
    { id: "1227286904833", userid: 2, ranks: "1" },
  ],
};

function quantile(sorted: number[], q: number): number {
  // nearest rank
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function timeAccount(confdir: string, service: string, user: string, n: number): Promise<{ ms: number[]; codes: Set<string> }> {
  const proc = Bun.spawn(driverArgs({ confdir, service, user, actions: ["acct"], repeat: n, timing: true }), {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdout: "pipe",
    stderr: "inherit",
  });
  const out = await new Response(proc.stdout).text();
  if ((await proc.exited) !== 0) throw new Error(`pam-driver failed:\n${out}`);
  const ms: number[] = [];
  const codes = new Set<string>();
  for (const line of out.split("\n")) {
    const [head, a, b] = line.split(" ");
    if (head === "time") ms.push(Number(b) / 1000);
    else if (head === "acct") codes.add(a!);
  }
  if (ms.length !== n) throw new Error(`expected ${n} timings, got ${ms.length}`);
  return { ms, codes };
}

async function main() {
  await ensureBuilt();
  const dir = tempDir("flux-pam-bench-");
  const broker = URI === undefined ? await startBrokerProcess(JOB, dir.path) : { uri: URI, stop: async () => {} };
  try {
    const pam = pamConfDir(dir.path);
    const helper = realHelper(dir.path);
    const stub = standIn(dir.path, "echo 'result owner' >&3");
    // The target's yardstick: a program of the same Bun, compiled as flux-pam is, that only answers.
    const floor = await buildFloor(join(dir.path, "floor"), "answer", 'require("node:fs").writeSync(3, "result owner\\n");\n');
    const bunFloor = installHelper(dir.path, { source: floor, name: "bun-floor" });
    // What the protocol alone costs such a program: connect, attr.get, job-list.list (bench/protocol-only.ts).
    const protocol = await compileFloor(join(import.meta.dir, "protocol-only.ts"), join(dir.path, "floor", "protocol-only"));
    const protocolOnly = installHelper(dir.path, { source: protocol, name: "protocol-only" });
    // The copies were just written, BINARY may not have been: all of them from disk (bench/page-cache.ts).
    await evictFromPageCache(helper, bunFloor, protocolOnly, BINARY);
    const rows: [string, string, string][] = [
      ["pam_flux.so + flux-pam, owner admitted", `account required ${MODULE} helper=${helper} uri=${broker.uri}`, "daemon"],
      ["pam_flux.so + flux-pam, denied, no job anywhere", `account required ${MODULE} helper=${helper} uri=${broker.uri}`, "sys"],
      ["pam_flux.so + flux-pam, denied, a job elsewhere", `account required ${MODULE} helper=${helper} uri=${broker.uri}`, "bin"],
      ["... the same with no-job-hint", `account required ${MODULE} helper=${helper} uri=${broker.uri} no-job-hint`, "bin"],
      ["pam_exec.so + flux-pam, owner admitted", `account required pam_exec.so quiet stdout ${BINARY} account uri=${broker.uri}`, "daemon"],
      ["pam_exec.so + flux-pam, denied, no job anywhere", `account required pam_exec.so quiet stdout ${BINARY} account uri=${broker.uri}`, "sys"],
      ["pam_flux.so + /bin/sh stand-in (wrapper floor)", `account required ${MODULE} helper=${stub}`, "daemon"],
      ["pam_flux.so + a Bun program that only asks", `account required ${MODULE} helper=${protocolOnly} uri=${broker.uri}`, "daemon"],
      ["pam_flux.so + a Bun program that only answers", `account required ${MODULE} helper=${bunFloor}`, "daemon"],
    ];
    const medians = new Map<string, number>();
    console.log(`account decision through libpam, ${N} runs each (ms), against ${URI === undefined ? "the test broker" : `the broker at ${URI}`}`);
    console.log(`${"".padEnd(48)} ${"median".padStart(7)} ${"p95".padStart(7)} ${"min".padStart(7)} ${"max".padStart(7)}  result`);
    const serviceOf = (i: number) => `bench-${i}`;
    for (const [i, [name, line, user]] of rows.entries()) {
      const service = serviceOf(i);
      pam.service(service, [line]);
      await timeAccount(pam.path, service, user, 5); // warm the page cache
      const { ms, codes } = await timeAccount(pam.path, service, user, N);
      const s = [...ms].sort((a, b) => a - b);
      const f = (x: number) => x.toFixed(2).padStart(7);
      medians.set(name, quantile(s, 0.5));
      console.log(`${name.padEnd(48)} ${f(quantile(s, 0.5))} ${f(quantile(s, 0.95))} ${f(s[0]!)} ${f(s.at(-1)!)}  ${[...codes].join(",")}`);
    }
    const ratio = medians.get(rows[0]![0])! / medians.get(rows.at(-1)![0])!;
    console.log(`owner admitted / a Bun program that only answers, the rows above: ${ratio.toFixed(2)}x`);
    // Paired: each round times both sides back to back, so drift moves both; the ratio of their medians per round.
    const paired = async (a: string, b: string): Promise<number[]> => {
      const ratios: number[] = [];
      for (let round = 0; round < Math.max(5, Math.round(N / PAIR_RUNS)); round++) {
        const order = round % 2 === 0 ? [a, b] : [b, a];
        const m = new Map<string, number>();
        for (const service of order) m.set(service, median((await timeAccount(pam.path, service, "daemon", PAIR_RUNS)).ms));
        ratios.push(m.get(a)! / m.get(b)!);
      }
      return ratios;
    };
    const say = (what: string, ratios: number[], target = "") => {
      const iv = medianInterval(ratios);
      const interval = iv ? iv.map((x) => x.toFixed(2)).join("-") : "-";
      console.log(`${what}, paired: ${median(ratios).toFixed(2)}x (90% interval ${interval}, ${ratios.length} rounds of ${PAIR_RUNS}${target})`);
    };
    const owner = serviceOf(0);
    const answer = serviceOf(rows.length - 1);
    const asks = serviceOf(rows.length - 2);
    say("owner admitted / a Bun program that only answers", await paired(owner, answer), "; target: within 1.2x");
    // The target's budget split: the protocol's part (the broker's answers included), and ours above it.
    say("a Bun program that only asks / one that only answers", await paired(asks, answer));
    say("owner admitted / a Bun program that only asks", await paired(owner, asks));
  } finally {
    await broker.stop();
    dir.remove();
  }
}

await main();
