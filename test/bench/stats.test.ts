// bench/stats.ts: the median and the bootstrap interval the benchmarks print beside each ratio.

import { describe, expect, test } from "bun:test";
import { median, medianInterval } from "../../bench/stats";

describe("median", () => {
  test("the middle value, the lower of the two middle ones for an even count, NaN for none", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2);
    expect(median([])).toBeNaN();
  });
});

describe("medianInterval", () => {
  // 20 pair ratios like a run's: mostly a little under 1, with the machine's outliers.
  const ratios = [0.91, 0.95, 0.88, 1.02, 0.93, 0.97, 0.9, 1.15, 0.94, 0.89, 0.96, 0.92, 1.3, 0.93, 0.95, 0.87, 0.99, 0.94, 0.91, 0.96];

  test("holds the median, lies within the data, and is the same on every call", () => {
    const [lo, hi] = medianInterval(ratios)!;
    expect(lo).toBeLessThanOrEqual(median(ratios));
    expect(hi).toBeGreaterThanOrEqual(median(ratios));
    expect(lo).toBeGreaterThanOrEqual(Math.min(...ratios));
    expect(hi).toBeLessThanOrEqual(Math.max(...ratios));
    expect(hi).toBeLessThan(1); // this sample does show a gain
    expect(medianInterval(ratios)).toEqual([lo, hi]);
  });

  test("a wider level gives an interval at least as wide", () => {
    const [lo90, hi90] = medianInterval(ratios, 0.9)!;
    const [lo99, hi99] = medianInterval(ratios, 0.99)!;
    expect(lo99).toBeLessThanOrEqual(lo90);
    expect(hi99).toBeGreaterThanOrEqual(hi90);
  });

  test("ratios spread on both sides of 1 give an interval that holds 1: no difference shown", () => {
    const [lo, hi] = medianInterval([0.85, 1.1, 0.92, 1.07, 0.97, 1.04, 0.9, 1.12, 1.0, 0.95, 1.06, 0.93])!;
    expect(lo).toBeLessThan(1);
    expect(hi).toBeGreaterThan(1);
  });

  test("constant data gives a point; fewer than 2 values give none; a level outside (0, 1) is refused", () => {
    expect(medianInterval([1.5, 1.5, 1.5])).toEqual([1.5, 1.5]);
    expect(medianInterval([1])).toBeUndefined();
    expect(() => medianInterval([1, 2], 1)).toThrow(RangeError);
  });
});
