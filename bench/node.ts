// How long flux-pam status and reconcile take for a busy node: 100 users with 10 running jobs each
// (1000 jobs), on real systemd 252 (systemd-nspawn container) against the test broker. Timed inside
// the container, so nsenter is not counted. The node goes: nothing set up (status: 100 users drift;
// reconcile: every slice set up), set up (status: consistent; reconcile: nothing to write), all jobs
// ended (reconcile: 100 teardowns).
//
// Usage: bun bench/node.ts [RUNS]   (root; make bench builds first)

import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Scenario, ScenarioJob } from "../test/broker/scenario";
import { startBrokerProcess, tempDir } from "../test/e2e/harness";
import { bootContainer, containerSkipReason } from "../test/systemd/container";
import { median } from "./stats";

const RUNS = Number(process.argv[2] ?? 5);
const USERS = 100;
const JOBS_EACH = 10;
const FIRST_UID = 2000;
const BIN = "/opt/flux-pam/flux-pam";

function node(state?: number): Scenario {
  const jobs: ScenarioJob[] = [];
  for (let u = 0; u < USERS; u++)
    for (let j = 0; j < JOBS_EACH; j++) jobs.push({ id: String(10_000 + u * JOBS_EACH + j), userid: FIRST_UID + u, cores: String(j % 2), ...(state ? { state } : {}) });
  return { rank: 0, owner: 64999, config: { access: { "allow-root-owner": true }, pam: { "manage-user-slice": true, "kill-user-slice": true }, exec: { "sdexec-constrain-resources": true } }, jobs, mapper: "auto" };
}

async function main() {
  const skip = containerSkipReason();
  if (skip) {
    console.log(`node benchmark skipped: ${skip}`);
    return;
  }
  const dir = tempDir("flux-pam-bench-node-");
  const socks = join(dir.path, "socks");
  mkdirSync(socks);
  chmodSync(socks, 0o755);
  const broker = await startBrokerProcess(node(), socks);
  const c = await bootContainer({ binds: [{ host: socks, container: "/run/test-flux" }] });
  const uri = "local:///run/test-flux/broker.sock";
  try {
    await c.run(["sh", "-c", `for i in $(seq 0 ${USERS - 1}); do useradd -M -u $((${FIRST_UID} + i)) bench$i; done`], { timeoutMs: 120_000 });
    /** Median wall ms of `cmd` run RUNS times inside the container (bash's clock), and its last exit code. */
    const time = async (cmd: string, runs = RUNS) => {
      const out = await c.run(["bash", "-c", `for i in $(seq ${runs}); do s=$EPOCHREALTIME; ${cmd} >/dev/null 2>&1; r=$?; e=$EPOCHREALTIME; echo "$s $e $r"; done`], { timeoutMs: 600_000 });
      const rows = out.trim().split("\n").map((l) => l.split(" ").map(Number) as [number, number, number]);
      return { ms: median(rows.map(([s, e]) => (e - s) * 1000)), code: rows.at(-1)![2] };
    };
    const rows: [string, { ms: number; code: number }][] = [];
    rows.push(["status, nothing set up (100 users drift)", await time(`${BIN} status --uri ${uri}`)]);
    rows.push(["reconcile, every slice to set up", await time(`${BIN} reconcile --uri ${uri}`, 1)]);
    rows.push(["status, consistent", await time(`${BIN} status --uri ${uri}`)]);
    rows.push(["reconcile, nothing to write", await time(`${BIN} reconcile --uri ${uri}`)]);
    broker.setScenario(node(64));
    rows.push(["reconcile, 100 teardowns", await time(`${BIN} reconcile --uri ${uri}`, 1)]);
    console.log(`status and reconcile, ${USERS} users x ${JOBS_EACH} jobs on real systemd 252 (median ms of ${RUNS} runs; single runs where the node changes)`);
    for (const [name, r] of rows) console.log(`${name.padEnd(44)} ${r.ms.toFixed(0).padStart(7)}  exit ${r.code}`);
  } finally {
    await c.stop();
    await broker.stop();
    dir.remove();
  }
}

await main();
