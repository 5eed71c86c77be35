import { describe, expect, test } from "bun:test";
import { SIGKILL, SIGTERM, teardownSlice, type TeardownSteps } from "../../src/decide/slice-teardown";

/** A simulated slice on a simulated clock: `dieOn` says which signal ends each pid (none: never). */
function slice(dieOn: Record<number, number | undefined>): TeardownSteps & { signals: number[]; clock: number } {
  const alive = new Set(Object.keys(dieOn).map(Number));
  const s = {
    signals: [] as number[],
    clock: 0,
    pids: () => [...alive].sort((a, b) => a - b),
    kill: async (signal: number) => {
      s.signals.push(signal);
      for (const pid of [...alive]) if (dieOn[pid] === signal || (signal === SIGKILL && dieOn[pid] === SIGTERM)) alive.delete(pid);
    },
    sleep: async (ms: number) => {
      s.clock += ms;
    },
    now: () => s.clock,
  };
  return s;
}

describe("teardownSlice()", () => {
  test("an empty slice is left alone", async () => {
    const s = slice({});
    expect(await teardownSlice(s, 30_000, 10_000)).toEqual({ kind: "empty" });
    expect(s.signals).toEqual([]);
  });

  test("processes that end on SIGTERM get no SIGKILL", async () => {
    const s = slice({ 10: SIGTERM, 11: SIGTERM });
    expect(await teardownSlice(s, 30_000, 10_000)).toEqual({ kind: "terminated", pids: [10, 11] });
    expect(s.signals).toEqual([SIGTERM]);
    expect(s.clock).toBeLessThan(1000);
  });

  test("one that ignores SIGTERM is KILLed after the grace time, not before", async () => {
    const s = slice({ 10: SIGTERM, 12: SIGKILL });
    expect(await teardownSlice(s, 30_000, 10_000)).toEqual({ kind: "killed", pids: [12] });
    expect(s.signals).toEqual([SIGTERM, SIGKILL]);
    expect(s.clock).toBeGreaterThanOrEqual(30_000);
  });

  test("processes that survive SIGKILL are survivors: the caller fails and the node drains", async () => {
    const s = slice({ 10: SIGTERM, 13: undefined });
    expect(await teardownSlice(s, 1000, 10_000)).toEqual({ kind: "survivors", pids: [13] });
    expect(s.signals).toEqual([SIGTERM, SIGKILL]);
    expect(s.clock).toBeGreaterThanOrEqual(11_000);
  });

  test("a grace time of zero sends SIGKILL right after SIGTERM", async () => {
    const s = slice({ 12: SIGKILL });
    expect(await teardownSlice(s, 0, 10_000)).toEqual({ kind: "killed", pids: [12] });
    expect(s.clock).toBeLessThan(100);
  });
});
