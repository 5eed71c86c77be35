// The test broker's fuzzing mode: seeded cases of an admission query (attr.get rank, then one
// job-list.list), each a random but well-formed job list, then damaged in its JSON or on the wire,
// and an oracle written from SPEC.md that judges what was really delivered.
//
// The oracle reads the delivered bytes with its own small decoder (flux-protocol.md) and plain
// JSON.parse, and admits exactly when a well-formed response with the request's matchtag carries a
// job whose userid is the user's, whose state is RUN (16) and whose ranks idset holds the rank.
// It is lenient where flux-pam is strict (1000.0 reads as 1000, a repeated key takes its last
// value, blanks in an idset are fine): flux-pam may deny what the oracle admits, never the reverse.

import type { Message } from "../../src/flux/message";
import type { Delivery, Tamper } from "./broker";
import type { Scenario } from "./scenario";

/** A small seeded generator (mulberry32): the same seed gives the same cases everywhere. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** 0 <= n < max */
  int(max: number): number {
    return Math.floor((this.next() / 2 ** 32) * max);
  }
  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** Damage to the JSON text of the job list (the framing stays right). */
export const PAYLOAD_DAMAGE = [
  "none",
  "userid-real",
  "userid-exponent",
  "userid-string",
  "userid-negative-zero",
  "userid-past-u32",
  "state-real",
  "state-name",
  "state-not-a-bit",
  "id-real",
  "id-past-u64",
  "id-string",
  "repeated-key-last",
  "repeated-key-first",
  "ranks-blank",
  "ranks-leading-zero",
  "ranks-unsorted",
  "ranks-number",
  "ranks-huge-range",
  "drop-userid",
  "drop-state",
  "extra-fields",
  "big-string",
  "deep-ok",
  "deep",
  "long-integer",
  "trailing-garbage",
  "nul-inside",
  "not-utf8",
  "truncated-json",
  "jobs-not-array",
  "empty-payload",
] as const;

/** Damage on the wire, to the encoded reply message. */
export const WIRE_DAMAGE = [
  "none",
  "split",
  "duplicate",
  "foreign-first",
  "truncate-close",
  "truncate-hang",
  "bit-flips",
  "bad-magic",
  "length-short",
  "length-long",
  "length-huge",
  "frame-prefix",
  "proto-magic",
  "wrong-matchtag",
  "error-reply",
  "not-a-response",
  "garbage-first",
  "silent",
  "hangup",
] as const;

export type PayloadDamage = (typeof PAYLOAD_DAMAGE)[number];
export type WireDamage = (typeof WIRE_DAMAGE)[number];

/** Damage that leaves the reply what a real broker sends: flux-pam must then decide as the oracle does. */
const BENIGN_PAYLOAD: readonly PayloadDamage[] = ["none", "ranks-huge-range", "extra-fields", "big-string", "deep-ok"];
const BENIGN_WIRE: readonly WireDamage[] = ["none", "split", "duplicate", "foreign-first"];

export interface GenJob {
  id: bigint;
  userid: number;
  state: number;
  ranks: string;
  uri?: string;
}

export interface FuzzCase {
  seed: number;
  index: number;
  uid: number;
  rank: number;
  jobs: GenJob[];
  payload: PayloadDamage;
  wire: WireDamage;
  /** which reply the wire damage hits */
  target: "attr.get" | "job-list.list";
  /** the job list as sent (after the payload damage) */
  text: string;
  /** flux-pam must decide exactly as the oracle; otherwise it may only be stricter */
  benign: boolean;
}

const STATES = [1, 2, 4, 8, 16, 32, 64];

/** A random idset in the form libidset writes: ascending ranges apart, containing `rank` or not. */
function genIdset(rng: Rng, rank: number): string {
  if (rng.chance(0.05)) return "0-4294967295";
  const parts: string[] = [];
  let at = rng.chance(0.5) ? 0 : rng.int(4);
  const n = 1 + rng.int(3);
  const around = rng.chance(0.6);
  if (around) at = Math.max(0, rank - rng.int(3));
  for (let i = 0; i < n && at <= 0xfffffff0; i++) {
    const len = rng.int(4);
    parts.push(len === 0 ? `${at}` : `${at}-${at + len}`);
    at += len + 2 + rng.int(3);
  }
  return parts.join(",");
}

function genJob(rng: Rng, uid: number, rank: number): GenJob {
  const id = rng.chance(0.5) ? BigInt(rng.int(2 ** 31)) * 1000n : (BigInt(rng.next()) << 32n) | BigInt(rng.next());
  const userid = rng.chance(0.5) ? uid : rng.pick([0, 2, 3, 1000, 65534, uid + 1]);
  const state = rng.chance(0.6) ? 16 : rng.pick(STATES);
  const j: GenJob = { id, userid, state, ranks: genIdset(rng, rank) };
  if (rng.chance(0.3)) j.uri = `ssh://node${rank}/tmp/flux-${rng.int(1e6)}/local-0`;
  return j;
}

function fields(j: GenJob): Record<string, string> {
  const f: Record<string, string> = {
    id: String(j.id),
    userid: String(j.userid),
    state: String(j.state),
    ranks: JSON.stringify(j.ranks),
  };
  if (j.uri) f.annotations = `{"user":{"uri":${JSON.stringify(j.uri)}}}`;
  return f;
}

function jobText(f: Record<string, string>, order: string[]): string {
  return `{${order.filter((k) => k in f).map((k) => `${JSON.stringify(k)}:${f[k]}`).join(",")}}`;
}

/** The job list's JSON text, with `damage` done to one job (or to the whole). */
function listText(rng: Rng, jobs: GenJob[], damage: PayloadDamage, uid: number): string {
  const all = jobs.map(fields);
  const orders = jobs.map(() => shuffled(rng, ["id", "userid", "state", "ranks", "annotations"]));
  const k = jobs.length > 0 ? rng.int(jobs.length) : -1;
  const f = k >= 0 ? all[k]! : undefined;
  const pre: string[] = [];
  if (f) {
    const u = jobs[k]!.userid;
    switch (damage) {
      case "userid-real":
        f.userid = `${u}.0`;
        break;
      case "userid-exponent":
        f.userid = `${u}e0`;
        break;
      case "userid-string":
        f.userid = JSON.stringify(String(u));
        break;
      case "userid-negative-zero":
        f.userid = "-0";
        break;
      case "userid-past-u32":
        f.userid = String(2 ** 32 + u);
        break;
      case "state-real":
        f.state = `${jobs[k]!.state}.0`;
        break;
      case "state-name":
        f.state = '"RUN"';
        break;
      case "state-not-a-bit":
        f.state = rng.pick(["48", "17", "0", "128", "-16"]);
        break;
      case "id-real":
        f.id = `${f.id}.0`;
        break;
      case "id-past-u64":
        f.id = String((1n << 64n) + jobs[k]!.id);
        break;
      case "id-string":
        f.id = JSON.stringify(f.id);
        break;
      case "repeated-key-last":
        // the last value is the user's: a lenient reader admits
        pre.push(`"userid":${uid + 7}`);
        f.userid = String(uid);
        break;
      case "repeated-key-first":
        pre.push(`"userid":${uid}`);
        f.userid = String(uid + 7);
        break;
      case "ranks-blank":
        f.ranks = JSON.stringify(` ${jobs[k]!.ranks.replace(",", ", ")}`);
        break;
      case "ranks-leading-zero":
        f.ranks = JSON.stringify(`0${jobs[k]!.ranks}`);
        break;
      case "ranks-unsorted":
        f.ranks = JSON.stringify(`${jobs[k]!.ranks},0`);
        break;
      case "ranks-number":
        f.ranks = String(rng.int(8));
        break;
      case "ranks-huge-range":
        jobs[k]!.ranks = "0-4294967295";
        f.ranks = '"0-4294967295"';
        break;
      case "drop-userid":
        delete f.userid;
        break;
      case "drop-state":
        delete f.state;
        break;
      case "extra-fields":
        f.name = '"sleep"';
        f.nodelist = '"node[0-3]"';
        orders[k]!.push("name", "nodelist");
        break;
      case "big-string":
        f.name = JSON.stringify("z".repeat((1 + rng.int(3)) << 20));
        orders[k]!.push("name");
        break;
      case "deep-ok":
        f.name = "[".repeat(40) + "]".repeat(40);
        orders[k]!.push("name");
        break;
      case "deep":
        f.name = "[".repeat(100_000) + "]".repeat(100_000);
        orders[k]!.push("name");
        break;
      case "long-integer":
        f.id = "9".repeat(21 + rng.int(100));
        break;
    }
  }
  const jobsText = all.map((x, i) => {
    const t = jobText(x, orders[i]!);
    return i === k && pre.length ? `{${pre.join(",")},${t.slice(1)}` : t;
  });
  let text = `{"jobs":[${jobsText.join(",")}]}`;
  switch (damage) {
    case "trailing-garbage":
      text += rng.pick(["x", "}", ",{}", " 1"]);
      break;
    case "nul-inside":
      text = `${text.slice(0, text.length >> 1)}\u0000${text.slice(text.length >> 1)}`;
      break;
    case "truncated-json":
      text = text.slice(0, rng.int(text.length));
      break;
    case "jobs-not-array":
      text = rng.pick(['{"jobs":{}}', '{"jobs":null}', "[]", '"jobs"', "{}"]);
      break;
    case "empty-payload":
      text = "";
      break;
  }
  return text;
}

function shuffled<T>(rng: Rng, xs: T[]): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Case `index` of `seed`: the same numbers give the same case. */
export function makeCase(seed: number, index: number, uid: number): FuzzCase {
  const rng = new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const rank = rng.pick([0, 0, 1, 3, 7, 1000, 4294967295]);
  const count = rng.chance(0.05) ? 50 + rng.int(2000) : rng.int(6);
  const jobs = Array.from({ length: count }, () => genJob(rng, uid, rank));
  const payload = rng.chance(0.35) ? "none" : rng.pick(PAYLOAD_DAMAGE);
  const wire = rng.chance(0.4) ? "none" : rng.pick(WIRE_DAMAGE);
  const target = rng.chance(0.8) ? "job-list.list" : "attr.get";
  const text = listText(rng, jobs, payload, uid);
  return {
    seed,
    index,
    uid,
    rank,
    jobs,
    payload,
    wire,
    target,
    text,
    benign: BENIGN_PAYLOAD.includes(payload) && BENIGN_WIRE.includes(wire),
  };
}

/** The scenario the broker answers from: the rank, and the job list's text as the reply. */
export function caseScenario(c: FuzzCase): Scenario {
  const s: Scenario = { rank: c.rank, owner: 0, rawText: { "job-list.list": c.text } };
  if (c.wire === "silent") s.silent = [c.target];
  if (c.wire === "hangup") s.hangup = [c.target];
  return s;
}

/** What the broker wrote for each topic, kept for the oracle. */
export type Delivered = Map<string, { tag: number; bytes: Uint8Array }>;

const be32 = (b: Uint8Array, o: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(o, v >>> 0);

/** The wire damage of a case, as the broker's tamper hook; records what went out. */
export function caseTamper(c: FuzzCase, delivered: Delivered): Tamper {
  const rng = new Rng((c.seed ^ Math.imul(c.index + 7, 0x85ebca6b)) >>> 0);
  return (topic: string, req: Message, reply: Uint8Array): Delivery | undefined => {
    if (topic === "job-list.list" && c.payload === "not-utf8") reply = notUtf8(reply);
    const d = topic === c.target ? damage(rng, c.wire, req, reply) : { pieces: [reply] };
    const bytes = concat(d.pieces);
    delivered.set(topic, { tag: req.aux2, bytes });
    return d;
  };
}

function damage(rng: Rng, wire: WireDamage, req: Message, reply: Uint8Array): Delivery {
  const b = reply.slice();
  const protoAt = b.length - 20;
  switch (wire) {
    case "none":
    case "silent":
    case "hangup":
      return { pieces: [b] };
    case "split": {
      const pieces: Uint8Array[] = [];
      for (let o = 0; o < b.length; ) {
        const n = 1 + rng.int(Math.min(64, b.length - o));
        pieces.push(b.subarray(o, o + n));
        o += n;
      }
      return { pieces: pieces.slice(0, 200).concat(pieces.length > 200 ? [concat(pieces.slice(200))] : []), gapMs: 1 };
    }
    case "duplicate":
      return { pieces: [b, b.slice()] };
    case "foreign-first": {
      const other = b.slice();
      be32(other, protoAt + 16, req.aux2 + 1000);
      return { pieces: [other, b] };
    }
    case "truncate-close":
      return { pieces: [b.subarray(0, rng.int(b.length))], hangup: true };
    case "truncate-hang":
      return { pieces: [b.subarray(0, rng.int(b.length))] };
    case "bit-flips": {
      for (let i = 1 + rng.int(8); i > 0; i--) {
        const at = rng.int(b.length);
        b[at]! ^= 1 << rng.int(8);
      }
      return { pieces: [b] };
    }
    case "bad-magic":
      b[rng.int(4)]! ^= 1 + rng.int(255);
      return { pieces: [b] };
    case "length-short":
      be32(b, 4, Math.max(0, b.length - 8 - 1 - rng.int(20)));
      return { pieces: [b], hangup: rng.chance(0.5) };
    case "length-long":
      be32(b, 4, b.length - 8 + 1 + rng.int(1000));
      return { pieces: [b], hangup: rng.chance(0.5) };
    case "length-huge":
      be32(b, 4, rng.pick([0xffffffff, 9 << 20, 64 << 20]));
      return { pieces: [b] };
    case "frame-prefix": {
      // the first frame's length (the route delimiter): long form, short, or past the end
      b[8] = rng.pick([0xff, 0xfe, 3, 100]);
      return { pieces: [b] };
    }
    case "proto-magic":
      b[protoAt + rng.int(2)]! ^= 1 + rng.int(255);
      return { pieces: [b] };
    case "wrong-matchtag":
      be32(b, protoAt + 16, rng.pick([0, req.aux2 + 1, req.aux2 ^ 0x80000000]));
      return { pieces: [b] };
    case "error-reply":
      be32(b, protoAt + 12, 1 + rng.int(130));
      return { pieces: [b] };
    case "not-a-response":
      b[protoAt + 2] = rng.pick([1, 4, 8, 3, 0]);
      return { pieces: [b] };
    case "garbage-first":
      return { pieces: [Uint8Array.from({ length: 1 + rng.int(40) }, () => rng.int(256)), b] };
  }
}

/** The reply with its payload's first quote (after the opening brace) made a byte no UTF-8 text holds. */
function notUtf8(reply: Uint8Array): Uint8Array {
  const b = reply.slice();
  const brace = b.indexOf(0x7b, 8);
  if (brace >= 0 && brace + 1 < b.length) b[brace + 1] = 0xff;
  return b;
}

/** The pieces as one buffer. */
export function concat(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- the oracle ----

/**
 * The response with matchtag `tag` among the delivered bytes, read in order as flux-protocol.md
 * lays them out; undefined when the stream goes bad before it (nothing after a bad message counts).
 */
export function refResponse(bytes: Uint8Array, tag: number): { errnum: number; payload?: Uint8Array } | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  while (o + 8 <= bytes.length) {
    if (dv.getUint32(o, true) !== 0xffee0012) return undefined;
    const end = o + 8 + dv.getUint32(o + 4);
    if (end > bytes.length) return undefined;
    const frames: Uint8Array[] = [];
    for (let i = o + 8; i < end; ) {
      let n = bytes[i++]!;
      if (n === 0xff) {
        if (i + 4 > end) return undefined;
        n = dv.getUint32(i);
        i += 4;
      }
      if (i + n > end) return undefined;
      frames.push(bytes.subarray(i, i + n));
      i += n;
    }
    o = end;
    const proto = frames.pop();
    if (!proto || proto.length !== 20 || proto[0] !== 0x8e || proto[1] !== 1 || ![1, 2, 4, 8].includes(proto[2]!)) return undefined;
    const flags = proto[3]!;
    const pv = new DataView(proto.buffer, proto.byteOffset, 20);
    let want = (flags & 0x01 ? 1 : 0) + (flags & 0x02 ? 1 : 0);
    if (flags & 0x08) {
      const delim = frames.findIndex((f) => f.length === 0);
      if (delim < 0) return undefined;
      want += delim + 1;
    }
    if (frames.length !== want) return undefined;
    if (flags & 0x01) {
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(frames[want - (flags & 0x02 ? 2 : 1)]);
      } catch {
        return undefined;
      }
    }
    if (proto[2] === 2 && pv.getUint32(16) === tag) return { errnum: pv.getUint32(12), payload: flags & 0x02 ? frames[want - 1] : undefined };
  }
  return undefined;
}

function refJson(payload: Uint8Array | undefined): unknown {
  if (!payload) return undefined;
  const end = payload.length > 0 && payload[payload.length - 1] === 0 ? payload.length - 1 : payload.length;
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(0, end)));
  } catch {
    return undefined;
  }
}

/** Lenient RFC 22 membership: blanks, any order, any width. */
function refHas(idset: string, rank: number): boolean {
  const body = idset.trim().replace(/^\[(.*)\]$/, "$1");
  return body.split(",").some((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) return false;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    return lo <= rank && rank <= hi;
  });
}

/** SPEC.md's rule on what was delivered: a RUN job of the user whose ranks hold this node's rank. */
export function oracleAdmits(uid: number, delivered: Delivered): boolean {
  const r = delivered.get("attr.get");
  const l = delivered.get("job-list.list");
  if (!r || !l) return false;
  const rr = refResponse(r.bytes, r.tag);
  const lr = refResponse(l.bytes, l.tag);
  if (!rr || !lr || rr.errnum !== 0 || lr.errnum !== 0) return false;
  const rv = refJson(rr.payload) as { value?: unknown } | undefined;
  if (typeof rv?.value !== "string" || !/^\d+$/.test(rv.value)) return false;
  const rank = Number(rv.value);
  const lv = refJson(lr.payload) as { jobs?: unknown } | undefined;
  if (!lv || !Array.isArray(lv.jobs)) return false;
  return lv.jobs.some((j) => {
    const job = j as { userid?: unknown; state?: unknown; ranks?: unknown } | null;
    return job !== null && typeof job === "object" && job.userid === uid && job.state === 16 && typeof job.ranks === "string" && refHas(job.ranks, rank);
  });
}

class NoSourceText extends Error {}

/**
 * The jobs a denied user's hint may name: the decimal ids of the user's RUN jobs in the last
 * job-list reply delivered (the instance-wide lookup is asked only after the rank's answer denied,
 * so its reply is the last). Ids kept exact from
 * their source text; an undecodable reply allows none.
 */
export function oracleHintIds(uid: number, delivered: Delivered): Set<string> {
  const out = new Set<string>();
  const l = delivered.get("job-list.list");
  const lr = l && refResponse(l.bytes, l.tag);
  if (!lr || lr.errnum !== 0 || !lr.payload) return out;
  const end = lr.payload.length > 0 && lr.payload[lr.payload.length - 1] === 0 ? lr.payload.length - 1 : lr.payload.length;
  let v: { jobs?: unknown };
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(lr.payload.subarray(0, end));
    v = JSON.parse(text, (k, val, ctx?: { source?: string }) => {
      if (k !== "id" || typeof val !== "number") return val;
      // (a rounded id would fail a correct hint: never guess)
      if (typeof ctx?.source !== "string") throw new NoSourceText("this runtime's JSON.parse gives a reviver no source text");
      return ctx.source;
    });
  } catch (e) {
    if (e instanceof NoSourceText) throw e;
    return out; // not UTF-8, not JSON: no job to name
  }
  if (!v || !Array.isArray(v.jobs)) return out;
  for (const j of v.jobs as { id?: unknown; userid?: unknown; state?: unknown }[])
    if (j !== null && typeof j === "object" && j.userid === uid && j.state === 16 && typeof j.id === "string") out.add(j.id);
  return out;
}

/** SPEC.md's rule on the generated jobs themselves (what an undamaged reply says). */
export function oracleOnJobs(c: FuzzCase): boolean {
  return c.jobs.some((j) => j.userid === c.uid && j.state === 16 && refHas(j.ranks, c.rank));
}
