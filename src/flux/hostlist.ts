// RFC 29 hostlists ("node[0-3,7]", "a1,b[01-02]"), expanded to host names in order.

export function expandHostlist(list: string): string[] {
  const out: string[] = [];
  // Split on commas outside brackets.
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === "[") depth++;
    else if (c === "]") depth--;
    else if ((c === "," && depth === 0) || i === list.length) {
      const item = list.slice(start, i).trim();
      if (item) out.push(...expandOne(item));
      start = i + 1;
    }
  }
  return out;
}

function expandOne(item: string): string[] {
  const m = /^([^[]*)\[([^\]]*)\](.*)$/.exec(item);
  if (!m) return [item];
  const [, prefix, ranges, rest] = m as unknown as [string, string, string, string];
  const tails = expandOne(rest);
  const out: string[] = [];
  for (const r of ranges.split(",")) {
    const [lo, hi = lo] = r.split("-") as [string, string?];
    const width = lo.length;
    for (let n = Number(lo); n <= Number(hi); n++) {
      for (const t of tails) out.push(`${prefix}${String(n).padStart(width, "0")}${t}`);
    }
  }
  return out;
}
