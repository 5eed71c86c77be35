// JSON from the broker, read by the runtime's own parser and held to what a real broker writes:
// integers exact (Flux job ids are u64; a double rounds them above 2^53), reals kept apart from
// integers, a bounded size and depth, no repeated keys.
//
// How: one pass over the text (outside strings) measures the depth, counts the keys and finds
// the numbers a double cannot carry exactly (integers past 2^53) or that are not integers (1.5,
// 1002.0, 1e3). Each of those few is swapped for the placeholder K.5 (K its index: after the swap
// no other number in the text has a fraction), the text goes to JSON.parse (linear, native, no
// recursion), and a walk of the result puts them back as bigint / JsonReal and counts the keys
// again: fewer keys than the text holds means a key was repeated. JSON.parse's reviver could
// carry the source text too, but it costs ten times the parse and four times the memory.

export type Json = null | boolean | number | bigint | string | JsonReal | Json[] | { [key: string]: Json };

/**
 * A number written with a fraction or an exponent (0.5, 0.0, 1002.0, 1e3). Kept apart from
 * integers: a field that holds an integer (a uid, a state, an id) must never accept 1002.0, which
 * jansson (the broker's encoder) writes only for a real. `source` re-encodes it byte for byte.
 */
export class JsonReal {
  constructor(
    readonly value: number,
    readonly source: string,
  ) {}
}

export class JsonSyntaxError extends Error {
  override name = "JsonSyntaxError";
}

/** Deeper than any reply Flux sends (R as an object is six levels, a broker config a few more). */
export const MAX_JSON_DEPTH = 64;
/**
 * Objects and arrays in one text. What a reply costs in memory goes with them (some 100 bytes
 * each, besides the text): 250,000 is 50,000 jobs with their annotations, and a 16 MiB text of
 * nothing but "{}," (5.5 million objects) would take 600 MB.
 */
export const MAX_JSON_CONTAINERS = 250_000;
/** Members of arrays and objects in one text (counted by their commas): 20 each for 50,000 jobs. */
export const MAX_JSON_MEMBERS = 1_000_000;
/** Integers past 2^53 and reals in one text: each costs an object (a job id is one per job). */
export const MAX_JSON_EXACT_NUMBERS = 100_000;
/** Digits of the longest integer any Flux value can hold (u64: 20). Longer is refused, not rounded. */
const MAX_INTEGER_DIGITS = 20;

export interface JsonLimits {
  /** the deepest nesting of arrays and objects accepted; default MAX_JSON_DEPTH */
  maxDepth?: number;
  /** the most arrays and objects in the text; default MAX_JSON_CONTAINERS */
  maxContainers?: number;
  /** the most members of arrays and objects (commas) in the text; default MAX_JSON_MEMBERS */
  maxMembers?: number;
  /** the most reals and integers past 2^53 in the text; default MAX_JSON_EXACT_NUMBERS */
  maxExactNumbers?: number;
  /** the longest text accepted, in UTF-16 code units; default unbounded (the stream bounds messages) */
  maxLength?: number;
}

const NUMBER = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/**
 * Parses JSON text. Integers come back as number when a double holds them exactly, else as
 * bigint; numbers with a fraction or an exponent as JsonReal. Refused, as JsonSyntaxError with
 * what was wrong and where: invalid JSON, nesting past the depth limit, more arrays and objects
 * than the limit, an integer of more than 20 digits, a key repeated in one object, a text past the
 * length limit.
 */
export function parseJson(text: string, limits: JsonLimits = {}): Json {
  if (limits.maxLength !== undefined && text.length > limits.maxLength)
    throw new JsonSyntaxError(`invalid JSON: ${text.length} characters, more than the ${limits.maxLength} accepted`);
  const scan = scanText(text, {
    depth: limits.maxDepth ?? MAX_JSON_DEPTH,
    containers: limits.maxContainers ?? MAX_JSON_CONTAINERS,
    members: limits.maxMembers ?? MAX_JSON_MEMBERS,
    exact: limits.maxExactNumbers ?? MAX_JSON_EXACT_NUMBERS,
  });
  let parsed: Json;
  try {
    parsed = JSON.parse(scan.swaps.length > 0 ? rewrite(text, scan.swaps) : text) as Json;
  } catch (e) {
    throw new JsonSyntaxError(`invalid JSON: ${(e as Error).message.replace(/^JSON Parse error: /, "")}`);
  }
  const restored = restore(parsed, text, scan.swaps);
  if (restored.keys !== scan.keys) throw new JsonSyntaxError("invalid JSON: a key is repeated in an object");
  return restored.value;
}

/** Where a swapped number stands in the text: [start, end) pairs, flat (two small integers each). */
type Swaps = number[];

interface Scan {
  /** keys in the text: each is followed by the one ':' outside strings */
  keys: number;
  swaps: Swaps;
}

/** One pass outside strings: depth, containers, keys, and the numbers JSON.parse would not carry exactly. */
function scanText(text: string, max: { depth: number; containers: number; members: number; exact: number }): Scan {
  const swaps: Swaps = [];
  let depth = 0;
  let keys = 0;
  let containers = 0;
  let commas = 0;
  const n = text.length;
  for (let i = 0; i < n; ) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i = stringEnd(text, i) + 1;
      continue;
    }
    if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max.depth) throw new JsonSyntaxError(`invalid JSON: nested deeper than ${max.depth} levels at offset ${i}`);
      if (++containers > max.containers)
        throw new JsonSyntaxError(`invalid JSON: more than ${max.containers} objects and arrays (at offset ${i}), more than a reply may cost`);
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
    else if (c === 0x3a /* : */) keys++;
    else if (c === 0x2c /* , */ && ++commas >= max.members)
      throw new JsonSyntaxError(`invalid JSON: more than ${max.members} values in arrays and objects (at offset ${i}), more than a reply may cost`);
    else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      let plain = c !== 0x2d;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d >= 0x30 && d <= 0x39) continue;
        if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) plain = false;
        else break;
      }
      // Up to 15 digits an integer is always exact as a double: JSON.parse checks its syntax.
      if (!(plain && j - i <= 15)) {
        if (needsSwap(text.slice(i, j), i)) {
          if (swaps.length >= 2 * max.exact)
            throw new JsonSyntaxError(`invalid JSON: more than ${max.exact} reals and integers past 2^53 (at offset ${i}), more than a reply may cost`);
          swaps.push(i, j);
        }
      }
      i = j;
      continue;
    }
    i++;
  }
  return { keys, swaps };
}

/** The index of the quote that ends the string opening at `open`. */
function stringEnd(text: string, open: number): number {
  let q = open;
  for (;;) {
    q = text.indexOf('"', q + 1);
    if (q < 0) throw new JsonSyntaxError(`invalid JSON: unterminated string at offset ${open}`);
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
}

/** Whether a number token must be swapped (a real, or an integer a double cannot hold); checks its syntax. */
function needsSwap(token: string, start: number): boolean {
  const m = NUMBER.exec(token);
  if (!m) throw new JsonSyntaxError(`invalid JSON: bad number ${JSON.stringify(token.slice(0, 40))} at offset ${start}`);
  if (m[1] !== undefined || m[2] !== undefined) return true;
  const digits = token.length - (token.startsWith("-") ? 1 : 0);
  if (digits > MAX_INTEGER_DIGITS)
    throw new JsonSyntaxError(`invalid JSON: an integer of ${digits} digits at offset ${start}, longer than any 64-bit integer`);
  return !Number.isSafeInteger(Number(token));
}

/** The value of a swapped number token: JsonReal for a real, else an exact bigint. */
function swappedValue(token: string): bigint | JsonReal {
  return /[.eE]/.test(token) ? new JsonReal(Number(token), token) : BigInt(token);
}

/** The text with swapped number K replaced by K.5. */
function rewrite(text: string, swaps: Swaps): string {
  let out = "";
  let at = 0;
  for (let k = 0; k < swaps.length; k += 2) {
    out += text.slice(at, swaps[k]) + k / 2 + ".5";
    at = swaps[k + 1]!;
  }
  return out + text.slice(at);
}

/** Puts the swapped numbers back and counts the keys of every object; no recursion. */
function restore(root: Json, text: string, swaps: Swaps): { value: Json; keys: number } {
  // After the swap only placeholders have a fraction.
  const back = (x: number): Json => {
    const k = 2 * (x - 0.5);
    if (!(k >= 0 && k < swaps.length)) throw new JsonSyntaxError("invalid JSON: a number could not be restored");
    return swappedValue(text.slice(swaps[k], swaps[k + 1]));
  };
  const swapped = (x: Json): x is number => typeof x === "number" && !Number.isInteger(x);
  let keys = 0;
  const value = swapped(root) ? back(root) : root;
  const stack: Json[] = [value];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (v === null || typeof v !== "object" || v instanceof JsonReal) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i]!;
        if (typeof x === "object") stack.push(x);
        else if (swapped(x)) v[i] = back(x);
      }
      continue;
    }
    const names = Object.keys(v);
    keys += names.length;
    for (const k of names) {
      const x = v[k]!;
      if (typeof x === "object") stack.push(x);
      // defineProperty: a key named __proto__ must stay data, not change the prototype.
      else if (swapped(x)) Object.defineProperty(v, k, { value: back(x), enumerable: true, writable: true, configurable: true });
    }
  }
  return { value, keys };
}

// JSON.rawJSON (TC39 JSON.parse source text access, in Bun's runtime) lets JSON.stringify write a
// bigint or a real exactly as its digits.
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** Encodes like JSON.stringify (compact), with bigints written as exact integers and reals as read. */
export function stringifyJson(value: Json): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return rawJSON(v.toString());
    if (v instanceof JsonReal) return rawJSON(v.source);
    if (typeof v === "number" && !Number.isFinite(v)) throw new TypeError("cannot encode a non-finite number as JSON");
    return v;
  });
}

/** An exact integer from a decoded JSON integer (never from a real such as 5.0), or undefined. */
export function toBigInt(v: Json | undefined): bigint | undefined {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isSafeInteger(v) && !Object.is(v, -0)) return BigInt(v);
  return undefined;
}

/** A JSON object (not an array, not null, not a real). */
export function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof JsonReal);
}

/** The value of a JSON number, integer or real, as a double (for durations and the like). */
export function numberValue(v: Json | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (v instanceof JsonReal) return v.value;
  return undefined;
}
