// What the benchmarks say about a sample of timings: its median, and how far the median of pair
// ratios can be trusted. On a shared two-core machine one 20-pair run can say 0.91 and the next
// 1.07 for the same two binaries; an interval that holds 1 says the run showed no difference.

/** The median (the lower middle value of an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/**
 * A bootstrap interval of the median of `xs`: the medians of `resamples` samples drawn from `xs`
 * with replacement, cut at the (1 - level) / 2 quantiles on each side. Seeded, so the same data
 * always gives the same interval. Undefined for fewer than 2 values.
 */
export function medianInterval(xs: readonly number[], level = 0.9, resamples = 2000): [number, number] | undefined {
  if (xs.length < 2) return undefined;
  if (!(level > 0 && level < 1)) throw new RangeError(`level ${level} is not between 0 and 1`);
  let seed = 0x2545f491;
  // xorshift32: enough randomness to resample, the same stream on every run
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
  const meds: number[] = [];
  const sample = new Array<number>(xs.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < xs.length; i++) sample[i] = xs[Math.floor(next() * xs.length)]!;
    meds.push(median(sample));
  }
  meds.sort((a, b) => a - b);
  const cut = Math.floor(((1 - level) / 2) * resamples);
  return [meds[cut]!, meds[resamples - 1 - cut]!];
}
