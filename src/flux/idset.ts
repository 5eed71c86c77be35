// RFC 22 idsets: sets of non-negative integers written as "0-3,7".

export class IdsetError extends Error {
  override name = "IdsetError";
}

/** A set of ids kept sorted and unique. */
export type Idset = readonly number[];

// Guard against "0-4000000000" from a lying peer: no real node has this many cpus or ranks.
const MAX_IDS = 1 << 20;

export function parseIdset(text: string): Idset {
  const s = text.trim();
  if (s === "") return [];
  // RFC 22 allows an optional enclosing [ ].
  const body = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
  const out = new Set<number>();
  for (const part of body.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new IdsetError(`"${text}" is not an idset`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (!Number.isSafeInteger(hi) || hi < lo) throw new IdsetError(`"${text}" is not an idset: bad range ${part}`);
    if (hi - lo + out.size >= MAX_IDS) throw new IdsetError(`"${text}" is not an idset: too many ids`);
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
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
  return parseIdset(formatIdset(sets.flat()));
}

export function idsetHas(set: Idset, id: number): boolean {
  return set.includes(id);
}
