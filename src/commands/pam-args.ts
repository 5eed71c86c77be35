// What every command's option parsing shares: the usage error and the time budget.

import { parseFsd } from "../flux/fsd";

export class UsageError extends Error {
  override name = "UsageError";
}

/** The longest time budget a command takes: pam_flux.so's own limit for timeout=. */
export const MAX_TIMEOUT_SECONDS = 3600;

/**
 * A command's time budget in seconds, from an FSD. "inf" and the like are refused: every wait
 * is a timer, and a timer past 2^31-1 ms fires after 1 ms, which would fail each call at once.
 */
export function parseTimeout(value: string, what: string): number {
  let s: number;
  try {
    s = parseFsd(value);
  } catch (e) {
    throw new UsageError(`${what}: ${(e as Error).message}`);
  }
  if (!(s <= MAX_TIMEOUT_SECONDS)) throw new UsageError(`${what}: "${value}" is longer than ${MAX_TIMEOUT_SECONDS / 3600}h`);
  return s;
}

/**
 * A USER argument that is a uid: its number, or undefined for a name. Digits with a leading zero
 * or past 2^32 - 1 are no uid (getpwuid would take 4294968296 for uid 1000): a usage error.
 */
export function uidArgument(text: string, command: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  if (!/^(?:0|[1-9]\d*)$/.test(text) || n > 0xffffffff) throw new UsageError(`${command}: ${JSON.stringify(text)} is not a uid (0 to 4294967295, no leading zero)`);
  return n;
}
