// How long one of each systemd client call takes against real systemd 252 (systemd-nspawn
// container), on one connection, in the compiled driver (test/systemd/client-driver.ts "bench"):
// connect, two StartTransientUnit, SetUnitProperties, the property reads, linger, user@ start
// and stop, KillUnit, the revert, close. The median of RUNS runs, and the slowest run, per call.
// That the calls work is test/systemd/container.test.ts's.
//
// Usage: bun bench/systemd-calls.ts [RUNS]   (root; make bench builds first)

import { bootContainer, buildClientDriver, CLIENT_DRIVER, containerSkipReason } from "../test/systemd/container";
import { median } from "./stats";

const RUNS = Number(process.argv[2] ?? 10);
const UID = 1001;

const skip = containerSkipReason();
if (skip) {
  console.log(`bench/systemd-calls.ts: skipped: ${skip}`);
  process.exit(0);
}

await buildClientDriver();
const c = await bootContainer();
try {
  const runs: Record<string, number>[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await c.exec([CLIENT_DRIVER, "bench", String(UID)], { timeoutMs: 120_000 });
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as { ok: boolean; result?: Record<string, number>; error?: { message: string } };
    if (!out.ok || !out.result) throw new Error(`driver bench failed (exit ${r.code}): ${out.error?.message ?? r.stderr}`);
    runs.push(out.result);
  }
  console.log(`systemd client calls on systemd 252 (container booted in ${Math.round(c.bootMs)} ms), ${RUNS} runs, ms:`);
  console.log(`${"call".padEnd(20)} ${"median".padStart(8)} ${"max".padStart(8)}`);
  for (const call of Object.keys(runs[0]!)) {
    const xs = runs.map((r) => r[call]!);
    console.log(`${call.padEnd(20)} ${median(xs).toFixed(1).padStart(8)} ${Math.max(...xs).toFixed(1).padStart(8)}`);
  }
} finally {
  await c.stop();
}
