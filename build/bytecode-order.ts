// Records which of the binary's functions each hot path runs, for the bytecode's layout
// (`bun build --bytecode-order`): the binary run with BUN_BYTECODE_ORDER_OUT writes, on exit, the
// functions it used; the next build places those first, so a short command touches fewer pages
// of bytecode. The paths are the ones a node runs all day: a job's prolog and housekeeping on
// every rank, a login's account and session-open. Run on real systemd (the nspawn container of
// the tests) against the test broker, as bench/hooks.ts runs them.
//
// Usage: bun build/bytecode-order.ts   (root; `make bytecode-order` builds first, then rebuilds)
// Writes build/bytecode-order/*.txt. A profile from an older build still applies (functions
// are known by a hash of their code: a changed function is laid out as if unprofiled), so the
// files are kept in the repository and recorded again when the hot paths change.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario, ScenarioJob } from "../test/broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../test/e2e/harness";
import { BUILD, type Container, bootContainer, containerSkipReason, settleFunctions } from "../test/systemd/container";

const UID = 1000;
const ENDED = 64; // INACTIVE

/**
 * The profiles, in the order the build lists them (the Makefile's BYTECODE_ORDER): the first is
 * laid out first. The smallest first: account runs what every command shares (the entry point,
 * the Flux client), session-open adds the systemd client, the hooks add the rest. Measured
 * (bench/hooks.ts, paired, 20 pairs) at first 0.85-0.92 of the unordered binary's time against an
 * older binary file (the prolog's profile first: 0.93-1.08); with both binaries read from disk
 * (bench/page-cache.ts) 0.96-1.03, every interval holding 1: no gain shown on this machine.
 */
export const PROFILES = ["account", "session-open", "prolog", "housekeeping-last", "housekeeping-remain", "account-denied"] as const;
export const ORDER_DIR = join(BUILD, "bytecode-order");

const job = (id: number, state?: number): ScenarioJob => ({ id: String(id), userid: UID, cores: String(id % 2), ...(state ? { state } : {}) });
const node = (jobs: ScenarioJob[], userJobElsewhere = false): Scenario => ({
  rank: 0,
  owner: 64999,
  config: { pam: { "manage-user-slice": true, "kill-user-slice": true }, exec: { "sdexec-constrain-resources": true } },
  jobs: userJobElsewhere ? [...jobs, { id: "2000", userid: UID + 1, ranks: "1" }] : jobs,
  mapper: "auto",
});

const STATES: Record<string, Scenario> = {
  run: node([job(1000)], true),
  remain: node([job(999, ENDED), job(1000)]),
  ended: node([job(1000, ENDED)]),
};

async function main(): Promise<void> {
  const skip = containerSkipReason();
  if (skip) throw new Error(`cannot record the bytecode order: ${skip}`);
  const dir = tempDir("flux-pam-order-");
  const socks = join(dir.path, "socks");
  const out = join(dir.path, "out");
  mkdirSync(socks);
  mkdirSync(out);
  chmodSync(socks, 0o755);
  const brokers: BrokerProcess[] = [];
  let c: Container | undefined;
  try {
    for (const [name, s] of Object.entries(STATES)) brokers.push(await startBrokerProcess(s, socks, name));
    c = await bootContainer({ binds: [{ host: socks, container: "/run/test-flux" }, { host: out, container: "/opt/order" }] });
    // Each path once to warm up (user@'s first start), then once recorded; the last run's file is kept.
    const script = `
set -e
B=/opt/flux-pam/flux-pam
uri() { echo "local:///run/test-flux/$1.sock"; }
# the command after NAME, recording into NAME.txt only on the recorded pass
rec() { local name=$1; shift; if [ -n "$REC" ]; then BUN_BYTECODE_ORDER_OUT=/opt/order/$name.txt "$@"; else "$@"; fi; }
hook() { FLUX_URI=$(uri $1) FLUX_JOB_USERID=${UID} FLUX_JOB_ID=$3 rec $4 $B $2; }
${settleFunctions(UID)}
login() {
  sleep 300 & local p=$!
  PAM_USER=alice PAM_SERVICE=sshd FLUX_PAM_PID=$p rec session-open $B session-open uri=$(uri run) >/dev/null
  kill $p
  PAM_USER=alice PAM_SERVICE=sshd rec account $B account uri=$(uri run) >/dev/null
  PAM_USER=bob PAM_SERVICE=sshd rec account-denied $B account uri=$(uri run) >/dev/null 2>&1 || true
}
for REC in "" 1; do
  settle_down
  hook run prolog 1000 prolog; settle_up
  hook remain housekeeping 999 housekeeping-remain
  login
  hook ended housekeeping 1000 housekeeping-last
done
settle_down`;
    await c.run(["bash", "-c", script], { timeoutMs: 300_000 });
    // All six checked before any replaces the kept one: a failed recording changes nothing.
    const texts = PROFILES.map((p) => {
      const text = readFileSync(join(out, `${p}.txt`), "utf8");
      if (!text.startsWith("v2\n") || text.split("\n").length < 100) throw new Error(`${p}: not an order file the build can use`);
      return text;
    });
    mkdirSync(ORDER_DIR, { recursive: true });
    PROFILES.forEach((p, i) => {
      writeFileSync(join(ORDER_DIR, `${p}.txt`), texts[i]!);
      console.log(`${join("build/bytecode-order", `${p}.txt`)}: ${texts[i]!.split("\n").length - 2} entries`);
    });
  } finally {
    await c?.stop();
    for (const b of brokers) await b.stop();
    dir.remove();
  }
}

if (import.meta.main) await main();
