// RFC 29 hostlists ("node[0-3,7]", "a1,b[01-02]"): expanded to host names in order, or indexed
// without expanding (a nodelist from a broker may name billions of hosts).

/** Every host of the list, in order (for lists we wrote or know to be small). */
export function expandHostlist(list: string): string[] {
  const out: string[] = [];
  for (const item of splitTop(list)) {
    const n = itemCount(item);
    if (n === undefined) out.push(item);
    else for (let k = 0; k < n; k++) out.push(itemNth(item, k)!);
  }
  return out;
}

/**
 * The host at position `index` of the hostlists, in order, without expanding them: a nodelist
 * such as "node[0-4294967295]" must cost no more than "node0". Undefined past the end, for a
 * negative index, or where an item is not a hostlist (no guessing).
 */
export function hostlistNth(lists: readonly string[], index: number): string | undefined {
  if (index < 0) return undefined;
  let k = index;
  for (const list of lists) {
    for (const item of splitTop(list)) {
      const n = itemCount(item);
      if (n === undefined) return undefined;
      if (k < n) return itemNth(item, k);
      k -= n;
    }
  }
  return undefined;
}

/**
 * The positions at which `host` appears in the list, walking it once and never expanding it:
 * "too many" when it names more than `limit` hosts, undefined where an item is not a hostlist.
 */
export function hostlistPositions(list: string, host: string, limit: number): number[] | "too many" | undefined {
  const out: number[] = [];
  let pos = 0;
  for (const item of splitTop(list)) {
    const n = itemCount(item);
    if (n === undefined) return undefined;
    if (pos + n > limit) return "too many";
    for (let k = 0; k < n; k++) if (itemNth(item, k) === host) out.push(pos + k);
    pos += n;
  }
  return out;
}

/** The items of a list: split on commas outside brackets. */
function splitTop(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === "[") depth++;
    else if (c === "]") depth--;
    else if ((c === "," && depth === 0) || i === list.length) {
      const item = list.slice(start, i).trim();
      if (item) out.push(item);
      start = i + 1;
    }
  }
  return out;
}

interface Bracket {
  prefix: string;
  ranges: { lo: number; hi: number; width: number }[];
  rest: string;
}

/** The first bracket of an item; null when it has none, undefined when it is not a hostlist. */
function bracket(item: string): Bracket | undefined | null {
  const m = /^([^[]*)\[([^\]]*)\](.*)$/.exec(item);
  if (!m) return null;
  const [, prefix, body, rest] = m as unknown as [string, string, string, string];
  const ranges: Bracket["ranges"] = [];
  for (const r of body.split(",")) {
    const p = /^(\d+)(?:-(\d+))?$/.exec(r.trim());
    if (!p) return undefined;
    const lo = Number(p[1]);
    const hi = p[2] === undefined ? lo : Number(p[2]);
    if (hi < lo || !Number.isSafeInteger(hi)) return undefined;
    ranges.push({ lo, hi, width: p[1]!.length });
  }
  return { prefix, ranges, rest };
}

/** How many hosts one item names; undefined when it is not a hostlist. */
function itemCount(item: string): number | undefined {
  const b = bracket(item);
  if (b === null) return 1;
  if (b === undefined) return undefined;
  const tails = itemCount(b.rest);
  if (tails === undefined) return undefined;
  return b.ranges.reduce((n, r) => n + (r.hi - r.lo + 1), 0) * tails;
}

/** The k-th host of one item (0 <= k < itemCount). */
function itemNth(item: string, k: number): string | undefined {
  const b = bracket(item);
  if (b === null) return item;
  if (b === undefined) return undefined;
  const tails = itemCount(b.rest)!;
  let head = Math.floor(k / tails);
  for (const r of b.ranges) {
    const n = r.hi - r.lo + 1;
    if (head < n) return `${b.prefix}${String(r.lo + head).padStart(r.width, "0")}${itemNth(b.rest, k % tails)}`;
    head -= n;
  }
  return undefined;
}
