// RFC 23 Flux Standard Duration: "30s", "1m", "0.5h", "2d", "infinity", or a bare number of seconds.

import { quote } from "./errors";

export class FsdError extends Error {
  override name = "FsdError";
}

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, "": 1 };

/** Seconds from an FSD string, or from a number (already seconds). */
export function parseFsd(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) throw new FsdError(`${value} is not a duration`);
    return value;
  }
  const s = value.trim();
  if (s === "inf" || s === "infinity" || s === "INF" || s === "INFINITY") return Infinity;
  const m = /^(\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?(ms|s|m|h|d)?$/i.exec(s);
  if (!m) throw new FsdError(`${quote(value)} is not a Flux Standard Duration (e.g. 30s, 1m, 0.5h, 2d)`);
  const num = Number(s.slice(0, s.length - (m[2]?.length ?? 0)));
  const seconds = num * UNITS[m[2] ?? ""]!;
  if (!Number.isFinite(seconds) || seconds < 0) throw new FsdError(`${quote(value)} is not a duration`);
  return seconds;
}
