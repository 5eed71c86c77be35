// Flux job ids (RFC 19): an unsigned 64-bit integer, carried as bigint, in its text encodings.

import { quote } from "./errors";

declare const brand: unique symbol;
/** A Flux job id: a bigint known to be within 0 .. 2^64-1. */
export type JobId = bigint & { readonly [brand]: "JobId" };

const U64_MAX = (1n << 64n) - 1n;
const F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const F58_PREFIXES = ["ƒ", "f"];

export class JobIdError extends Error {
  override name = "JobIdError";
}

/** Brands an integer as a job id, checking the u64 range. */
export function jobId(n: bigint): JobId {
  if (n < 0n || n > U64_MAX) throw new JobIdError(`job id ${n} is outside the unsigned 64-bit range`);
  return n as JobId;
}

/**
 * Parses any encoding Flux hands out: decimal, 0x hex, dotted hex (dothex),
 * KVS path (job.XXXX.XXXX.XXXX.XXXX) and F58 with a leading ƒ or f.
 * Mnemonic words are not supported (and say so).
 */
export function parseJobId(text: string): JobId {
  const s = text.trim();
  if (s.length === 0) throw new JobIdError("job id is empty");
  if (/^\d+$/.test(s)) return checked(BigInt(s), text);
  if (/^0x[0-9a-fA-F]{1,16}$/.test(s)) return checked(BigInt(s), text);
  const dotted = /^(?:job\.)?([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})$/.exec(s);
  if (dotted) return checked(BigInt(`0x${dotted.slice(1).join("")}`), text);
  for (const prefix of F58_PREFIXES) {
    if (s.startsWith(prefix) && s.length > prefix.length) return checked(decodeF58(s.slice(prefix.length), text), text);
  }
  if (/^[a-z]+(?:--?[a-z]+)+$/.test(s))
    throw new JobIdError(`job id ${quote(text)} looks like mnemonic words, which flux-pam does not decode; use the F58 or decimal id`);
  throw new JobIdError(`${quote(text)} is not a job id in any encoding Flux uses`);
}

function checked(n: bigint, text: string): JobId {
  if (n > U64_MAX) throw new JobIdError(`job id ${quote(text)} is larger than 64 bits`);
  return n as JobId;
}

function decodeF58(digits: string, text: string): bigint {
  let n = 0n;
  for (const ch of digits) {
    const d = F58_ALPHABET.indexOf(ch);
    if (d < 0) throw new JobIdError(`${quote(text)} is not a job id: ${quote(ch)} is not an F58 digit`);
    n = n * 58n + BigInt(d);
    if (n > U64_MAX) throw new JobIdError(`job id ${quote(text)} is larger than 64 bits`);
  }
  return n;
}

/** F58 with the ƒ prefix, as `flux jobs` shows ids. */
export function formatF58(id: JobId, prefix = "ƒ"): string {
  let n: bigint = id;
  let out = "";
  do {
    out = F58_ALPHABET[Number(n % 58n)] + out;
    n /= 58n;
  } while (n > 0n);
  return prefix + out;
}

export function formatDothex(id: JobId): string {
  const hex = id.toString(16).padStart(16, "0");
  return `${hex.slice(0, 4)}.${hex.slice(4, 8)}.${hex.slice(8, 12)}.${hex.slice(12)}`;
}

export function formatKvs(id: JobId): string {
  return `job.${formatDothex(id)}`;
}

export function formatHex(id: JobId): string {
  return `0x${id.toString(16)}`;
}
