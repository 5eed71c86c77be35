// RFC 22 idsets: sets of non-negative integers written as "0-3,7", read as ranges (never expanded
// to decide membership) and, where a list of ids is needed (cores, GPUs), expanded with a bound.

import { quote } from "./errors";

export class IdsetError extends Error {
  override name = "IdsetError";
}

/** A set of ids kept sorted and unique: cores, GPUs, CPUs (bounded: see MAX_IDS). */
export type Idset = readonly number[];

/** A set of ids as sorted, disjoint ranges [lo, hi] ("0-3,7" is [[0,3],[7,7]]): any size, no expansion. */
export type IdRanges = readonly (readonly [number, number])[];

/** Ids are unsigned 32-bit (libidset's unsigned int; broker ranks are u32 on the wire). */
const MAX_ID = 0xffffffff;
// Guard against "0-4000000000" where ids must be listed: no real node has this many cpus or gpus.
const MAX_IDS = 1 << 20;

const ID = /^(?:0|[1-9]\d{0,9})$/;

/**
 * Parses an idset as a real broker writes it (libidset's idset_encode): ids and lo-hi ranges
 * (lo < hi) separated by single commas, ascending and apart, no blanks, no leading zeros,
 * optionally enclosed in one pair of brackets; "" is the empty set. Anything else is refused:
 * a broker that cannot have written it is not believed. The ranges are kept, never expanded.
 */
export function parseIdRanges(text: string): IdRanges {
  if (text === "") return [];
  const body = text.startsWith("[") && text.endsWith("]") && text.length > 2 ? text.slice(1, -1) : text;
  const out: [number, number][] = [];
  let prev = -1;
  for (const part of body.split(",")) {
    const dash = part.indexOf("-");
    const los = dash < 0 ? part : part.slice(0, dash);
    const his = dash < 0 ? part : part.slice(dash + 1);
    if (!ID.test(los) || !ID.test(his)) throw new IdsetError(`${quote(text)} is not an idset: ${quote(part)} is not an id or a lo-hi range`);
    const lo = Number(los);
    const hi = Number(his);
    if (hi > MAX_ID) throw new IdsetError(`${quote(text)} is not an idset: ${hi} is past the largest id ${MAX_ID}`);
    if (dash >= 0 && hi <= lo) throw new IdsetError(`${quote(text)} is not an idset: bad range ${quote(part)}`);
    if (lo <= prev) throw new IdsetError(`${quote(text)} is not an idset: ${quote(part)} is not above the ids before it`);
    out.push([lo, hi]);
    prev = hi;
  }
  return out;
}

/** Is `id` in the set? A binary search over the ranges. */
export function rangesHave(set: IdRanges, id: number): boolean {
  let a = 0;
  let b = set.length - 1;
  while (a <= b) {
    const m = (a + b) >> 1;
    const [lo, hi] = set[m]!;
    if (id < lo) b = m - 1;
    else if (id > hi) a = m + 1;
    else return true;
  }
  return false;
}

/** The smallest id of the set, or undefined when it is empty. */
export function rangesFirst(set: IdRanges): number | undefined {
  return set[0]?.[0];
}

/** How many ids of the set are below `id` (its position, when it is a member). */
export function rangesIndexOf(set: IdRanges, id: number): number {
  if (!rangesHave(set, id)) return -1;
  let below = 0;
  for (const [lo, hi] of set) {
    if (hi < id) below += hi - lo + 1;
    else return below + (id - lo);
  }
  return -1;
}

/** The union of sets of ranges, merged (adjacent ranges joined). */
export function rangesUnion(...sets: IdRanges[]): IdRanges {
  const all = sets.flat().slice().sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of all) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

export function formatRanges(set: IdRanges): string {
  return set.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(",");
}

/** The ids of a set of ranges, refused past MAX_IDS: for lists that must be spelled out (cpus, gpus). */
export function rangesIds(set: IdRanges, text = formatRanges(set)): Idset {
  let n = 0;
  for (const [lo, hi] of set) n += hi - lo + 1;
  if (n > MAX_IDS) throw new IdsetError(`${quote(text)} is not an idset: too many ids (${n}, at most ${MAX_IDS})`);
  const out: number[] = [];
  for (const [lo, hi] of set) for (let i = lo; i <= hi; i++) out.push(i);
  return out;
}

/** A strict idset (parseIdRanges' rules) spelled out as its ids, bounded. */
export function parseIdsetIds(text: string): Idset {
  return rangesIds(parseIdRanges(text), text);
}

/**
 * Parses an idset leniently, as systemd and people write them: blanks around, unsorted and
 * overlapping parts ("7,0-3,2"). For the mapper's property values (src/systemd) and the test
 * broker's scenarios, never for what decides a login. Kept as merged ranges.
 */
export function parseLooseRanges(text: string): IdRanges {
  const s = text.trim();
  if (s === "") return [];
  // RFC 22 allows an optional enclosing [ ].
  const body = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
  const ranges: [number, number][] = [];
  for (const part of body.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new IdsetError(`${quote(text)} is not an idset`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (!(hi <= MAX_ID) || hi < lo) throw new IdsetError(`${quote(text)} is not an idset: bad range ${quote(part)}`);
    ranges.push([lo, hi]);
  }
  return rangesUnion(ranges);
}

/** parseLooseRanges spelled out as ids, bounded. */
export function parseIdset(text: string): Idset {
  return rangesIds(parseLooseRanges(text), text);
}

export function formatIdset(ids: Iterable<number>): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

export function idsetUnion(...sets: Idset[]): Idset {
  return [...new Set(sets.flat())].sort((a, b) => a - b);
}

// (No idsetHas: a job's ranks are IdRanges now; rangesHave tests them. Code that would call
// idsetHas on them must fail to build, not answer "no" for every rank.)
