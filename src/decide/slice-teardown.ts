// Ending what is left in a user's slice after the last job: TERM, a grace time, KILL, then a verdict.

export const SIGTERM = 15;
export const SIGKILL = 9;

export interface TeardownSteps {
  /** the pids still in the slice (outside user@UID.service) */
  pids(): number[];
  /** signal every process of the slice */
  kill(signal: number): Promise<void>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export type TeardownOutcome =
  | { kind: "empty" }
  | { kind: "terminated"; pids: number[] }
  | { kind: "killed"; pids: number[] }
  | { kind: "survivors"; pids: number[] };

const POLL_MS = 100;

async function emptied(s: TeardownSteps, ms: number): Promise<boolean> {
  const end = s.now() + ms;
  for (;;) {
    // Signals take a moment to land: look after a short wait, then every POLL_MS.
    await s.sleep(Math.min(POLL_MS / 4, Math.max(end - s.now(), 0)));
    if (s.pids().length === 0) return true;
    if (s.now() >= end) return false;
    await s.sleep(Math.min(POLL_MS, Math.max(end - s.now(), 1)));
  }
}

/**
 * SIGTERM, wait up to `graceMs` for the slice to empty, SIGKILL, wait up to `afterKillMs`.
 * "survivors" means processes are still there: the caller fails so that Flux drains the node.
 */
export async function teardownSlice(s: TeardownSteps, graceMs: number, afterKillMs: number): Promise<TeardownOutcome> {
  const first = s.pids();
  if (first.length === 0) return { kind: "empty" };
  await s.kill(SIGTERM);
  if (await emptied(s, graceMs)) return { kind: "terminated", pids: first };
  const stubborn = s.pids();
  await s.kill(SIGKILL);
  if (await emptied(s, afterKillMs)) return { kind: "killed", pids: stubborn };
  return { kind: "survivors", pids: s.pids() };
}
