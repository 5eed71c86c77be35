// How long prolog and housekeeping take on real systemd (systemd-nspawn container) against the
// test broker: one job, and 1000 running jobs of the same user. Timed inside the container, so
// nsenter is not counted. Usage: bun bench/hooks.ts [RUNS]   (root; make bench builds first)

import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Scenario, ScenarioJob } from "../test/broker/scenario";
import { startBrokerProcess, tempDir } from "../test/e2e/harness";
import { bootContainer, containerSkipReason } from "../test/systemd/container";

const RUNS = Number(process.argv[2] ?? 30);
const BIN = "/opt/flux-pam/flux-pam";
const UID = 1000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

function node(jobs: ScenarioJob[]): Scenario {
  return {
    rank: 0,
    owner: 64999,
    config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } },
    jobs,
    mapper: "auto",
  };
}

async function main() {
  const skip = containerSkipReason();
  if (skip) {
    console.log(`hooks benchmark skipped: ${skip}`);
    return;
  }
  const dir = tempDir("flux-pam-bench-");
  const socks = join(dir.path, "socks");
  mkdirSync(socks);
  chmodSync(socks, 0o755);
  const broker = await startBrokerProcess(node([]), socks);
  const c = await bootContainer({ binds: [{ host: socks, container: "/run/test-flux" }] });
  try {
    // One loop inside the container, timed by bash's own clock (no fork of date per run).
    const time = async (hook: string, jobid: string, n: number): Promise<number[]> => {
      const script = `for i in $(seq ${n}); do s=\${EPOCHREALTIME/./}; ${BIN} ${hook} || exit 1; e=\${EPOCHREALTIME/./}; echo $(( e - s )); done`;
      const out = await c.run(["bash", "-c", script], {
        env: { FLUX_URI: "local:///run/test-flux/broker.sock", FLUX_JOB_USERID: String(UID), FLUX_JOB_ID: jobid },
        timeoutMs: 600_000,
      });
      return out.trim().split("\n").map((l) => Number(l) / 1000);
    };
    const rows: string[] = [];
    for (const count of [1, 1000]) {
      const jobs = Array.from({ length: count }, (_, i) => ({ id: String(1000 + i), userid: UID, cores: String(i % 2) }));
      broker.setScenario(node(jobs));
      await time("prolog", "1000", 3); // warm: user@ started, page cache
      const prolog = await time("prolog", "1000", RUNS);
      // housekeeping of a job that ended while the others remain: the update path
      broker.setScenario(node([...jobs, { id: "999", userid: UID, cores: "1", state: 64 }]));
      const update = await time("housekeeping", "999", RUNS);
      rows.push(`${String(count).padStart(5)} job(s)  prolog ${median(prolog).toFixed(1).padStart(7)} ms   housekeeping (jobs remain) ${median(update).toFixed(1).padStart(7)} ms`);
    }
    // session-open of a login (the session half of an ssh login): a scope for a waiting process
    broker.setScenario(node([{ id: "1000", userid: UID, cores: "0" }]));
    await time("prolog", "1000", 1);
    const sessionScript = `for i in $(seq ${RUNS}); do sleep 300 & p=$!; s=\${EPOCHREALTIME/./}; PAM_USER=alice PAM_SERVICE=sshd FLUX_PAM_PID=$p ${BIN} session-open uri=local:///run/test-flux/broker.sock >/dev/null || exit 1; e=\${EPOCHREALTIME/./}; echo $(( e - s )); kill $p; done`;
    const sessions = (await c.run(["bash", "-c", sessionScript], { timeoutMs: 600_000 })).trim().split("\n").map((l) => Number(l) / 1000);
    rows.push(`    1 job   session-open (scope for a login, start job awaited) ${median(sessions).toFixed(1).padStart(7)} ms`);
    // the last job's teardown (marker, user@ stop, revert), one job
    const teardown: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 10); i++) {
      broker.setScenario(node([{ id: "1000", userid: UID, cores: "0" }]));
      await time("prolog", "1000", 1);
      broker.setScenario(node([{ id: "1000", userid: UID, cores: "0", state: 64 }]));
      teardown.push(...(await time("housekeeping", "1000", 1)));
    }
    console.log(`prolog / housekeeping on real systemd 252, median of ${RUNS} runs (ms)`);
    for (const r of rows) console.log(r);
    console.log(`    1 job   housekeeping (last job: marker, user@ stop, revert) ${median(teardown).toFixed(1).padStart(7)} ms`);
  } finally {
    await c.stop();
    await broker.stop();
    dir.remove();
  }
}

await main();
