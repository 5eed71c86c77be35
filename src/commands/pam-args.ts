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
