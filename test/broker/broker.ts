// A test broker: speaks Flux's local:// protocol on a unix socket and answers from a Scenario.
// Replies are built the way flux-core's broker builds them (checked against ../shared/flux-wire).

import type { Socket, UnixSocketListener } from "bun";
import { formatIdset, formatRanges, parseIdset, parseLooseRanges, rangesHave } from "../../src/flux/idset";
import { type Json, JsonReal, isObject, parseJson, stringifyJson } from "../../src/flux/json";
import { type Message, MsgFlag, MsgType, StreamReader, cString, encodeMessage, payloadText } from "../../src/flux/message";
import { type R, parseR } from "../../src/flux/r";
import { QueuedWriter } from "../../src/flux/writer";
import { RUN, type Scenario, type ScenarioJob } from "./scenario";

export interface RequestLog {
  topic: string;
  payload?: Json;
}

/** What goes on the wire in place of a reply: pieces written apart, then maybe a hang-up. */
export interface Delivery {
  pieces: Uint8Array[];
  /** ms between pieces (0: all in one turn of the event loop) */
  gapMs?: number;
  hangup?: boolean;
}

/** Replaces a reply's bytes (the fuzzer's wire damage); undefined sends the reply as it is. */
export type Tamper = (topic: string, request: Message, reply: Uint8Array) => Delivery | undefined;

export interface Broker {
  path: string;
  requests: RequestLog[];
  /** replaces the scenario for the next requests */
  set(s: Scenario): void;
  stop(): void;
}

const ENOENT = 2;
const EPROTO = 71;
const ENOSYS = 38;
const EINVAL = 22;

/**
 * A job's R as flux-core 0.88 stores it (fixtures 07, 08): starttime and expiration as reals
 * (jansson writes 0.0), nslots, and the hosts of its ranks. Cores "0" on each rank unless given.
 */
export function rJson(j: ScenarioJob, s: Scenario = {}): Json {
  const ranges = parseLooseRanges(j.ranks ?? "0");
  const children: { [k: string]: Json } = { core: j.cores ?? "0" };
  if (j.gpus) children.gpu = j.gpus;
  const ranks = parseIdset(formatRanges(ranges));
  return {
    version: 1,
    execution: {
      R_lite: [{ rank: formatRanges(ranges), children }],
      starttime: new JsonReal(1795660432.2232015, "1795660432.2232015"),
      expiration: new JsonReal(0, "0.0"),
      nslots: parseIdset(j.cores ?? "0").length * ranks.length,
      nodelist: [formatHostlist(ranks.map((r) => hostOf(s, r)))],
    },
  };
}

/** The same R, as the client reads it. */
export function rOf(j: ScenarioJob, s: Scenario = {}): R {
  return parseR(rJson(j, s), "R");
}

/**
 * JSON as Python's json.dumps writes it (", " and ": "): what the Python parts of flux-core send,
 * the R text of job-info.lookup with flags 0 (fixture 07) and sdexec-mapper's answers (fixture 09).
 */
export function pythonJson(v: Json): string {
  if (v instanceof JsonReal) return v.source;
  if (Array.isArray(v)) return `[${v.map(pythonJson).join(", ")}]`;
  if (v !== null && typeof v === "object") return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pythonJson(x)}`).join(", ")}}`;
  return stringifyJson(v);
}

/** What sdexec-mapper would say for an R on `rank`: only that rank's share counts. */
export function autoMapper(r: R, rank: number): Record<string, string> {
  const cores: number[] = [];
  const gpus: number[] = [];
  for (const e of r.execution.R_lite) {
    if (!rangesHave(parseLooseRanges(e.rank), rank)) continue;
    if (e.children.core) cores.push(...parseIdset(e.children.core));
    if (e.children.gpu) gpus.push(...parseIdset(e.children.gpu));
  }
  if (cores.length === 0 && gpus.length === 0) return {};
  const out: Record<string, string> = { AllowedCPUs: formatIdset(cores), AllowedMemoryNodes: "0", DevicePolicy: "closed" };
  if (gpus.length) out.DeviceAllow = [...new Set(gpus)].sort((a, b) => a - b).map((g) => `/dev/nvidia${g} rw`).concat("/dev/nvidiactl rw").join(",");
  return out;
}

/** The host of each rank, as the scenario names them. */
export function hostOf(s: Scenario, rank: number): string {
  return s.hosts?.[rank] ?? `node${rank}`;
}

/** An RFC 29 hostlist of `hosts` in order: runs of one prefix with consecutive numbers in brackets. */
export function formatHostlist(hosts: string[]): string {
  const groups: { prefix: string; nums: string[] }[] = [];
  for (const h of hosts) {
    const m = /^(.*?)(\d+)$/.exec(h);
    const prefix = m ? m[1]! : h;
    const last = groups.at(-1);
    if (m && last && last.prefix === prefix && last.nums.length > 0) last.nums.push(m[2]!);
    else groups.push({ prefix, nums: m ? [m[2]!] : [] });
  }
  return groups
    .map((g) => {
      if (g.nums.length === 0) return g.prefix;
      if (g.nums.length === 1) return `${g.prefix}${g.nums[0]}`;
      const ranges: string[] = [];
      for (let i = 0; i < g.nums.length; ) {
        let j = i;
        while (j + 1 < g.nums.length && Number(g.nums[j + 1]) === Number(g.nums[j]) + 1 && g.nums[j + 1]!.length === g.nums[i]!.length) j++;
        ranges.push(i === j ? g.nums[i]! : `${g.nums[i]}-${g.nums[j]}`);
        i = j + 1;
      }
      return `${g.prefix}[${ranges.join(",")}]`;
    })
    .join(",");
}

/** An idset as libidset writes it in job-list (IDSET_FLAG_BRACKETS): "0", "[0-1]", "[0,3-5]". */
export function bracketed(ids: string): string {
  const t = formatRanges(parseLooseRanges(ids));
  return /^\d+$/.test(t) ? t : `[${t}]`;
}

/** The scheduler's annotation of a running job (sched.resource_summary, fixture 13): "rank0/core[0-1]". */
function resourceSummary(j: ScenarioJob): string {
  const part = (name: string, ids: string) => `${name}${bracketed(ids)}`;
  return `${part("rank", j.ranks ?? "0")}/${part("core", j.cores ?? "0")}${j.gpus ? `,${part("gpu", j.gpus)}` : ""}`;
}

/** RFC 21 state names a constraint may give (case does not matter). */
const STATE_NAMES: Record<string, number> = {
  new: 1, depend: 2, priority: 4, sched: 8, run: 16, cleanup: 32, inactive: 64, pending: 14, running: 48, active: 62,
};

// The index lives as long as the scenario object: a benchmark asks for 1000 jobs of 1000.
const indexes = new WeakMap<Scenario, Map<string, ScenarioJob>>();
function jobIndex(s: Scenario): Map<string, ScenarioJob> {
  let m = indexes.get(s);
  if (!m) indexes.set(s, (m = new Map((s.jobs ?? []).map((j) => [String(j.id), j]))));
  return m;
}

const OPERATORS = new Set(["and", "or", "not", "userid", "states", "ranks"]);

/** Refuses a constraint as job-list does, before any job is looked at (fixture 06). */
function checkConstraint(constraint: Json | undefined): void {
  if (constraint === undefined) return;
  if (!isObject(constraint)) throw new Error("constraint object invalid: not an object");
  for (const [op, arg] of Object.entries(constraint)) {
    if (!OPERATORS.has(op)) throw new Error(`constraint object invalid: unknown constraint operator: ${op}`);
    if (!Array.isArray(arg)) throw new Error(`constraint object invalid: ${op} takes a list`);
    if (op === "and" || op === "or" || op === "not") for (const c of arg) checkConstraint(c);
  }
}

function matches(job: ScenarioJob, constraint: Json | undefined): boolean {
  if (constraint === undefined) return true;
  if (!isObject(constraint)) throw new Error("constraint object invalid: not an object");
  for (const [op, arg] of Object.entries(constraint)) {
    if (!Array.isArray(arg)) throw new Error(`constraint object invalid: ${op} takes a list`);
    switch (op) {
      case "and":
        if (!arg.every((c) => matches(job, c))) return false;
        break;
      case "or":
        if (!arg.some((c) => matches(job, c))) return false;
        break;
      case "not":
        if (arg.some((c) => matches(job, c))) return false;
        break;
      case "userid":
        if (!arg.includes(job.userid)) return false;
        break;
      case "states": {
        const mask = arg.reduce<number>((m, s) => m | (typeof s === "number" ? s : typeof s === "string" ? (STATE_NAMES[s.toLowerCase()] ?? 0) : 0), 0);
        if (((job.state ?? RUN) & mask) === 0) return false;
        break;
      }
      case "ranks": {
        const mine = parseLooseRanges(job.ranks ?? "0");
        const overlaps = (r: string) => parseLooseRanges(r).some(([lo, hi]) => mine.some(([a, b]) => lo <= b && a <= hi));
        if (!arg.some((r) => typeof r === "string" && overlaps(r))) return false;
        break;
      }
      default:
        throw new Error(`constraint object invalid: unknown constraint operator: ${op}`);
    }
  }
  return true;
}

type Answer = { errnum: number; text?: string } | { json: Json } | { text: string } | { empty: true };

function answer(s: Scenario, topic: string, payload: Json | undefined, streaming = false): Answer {
  const err = s.errors?.[topic];
  if (err) return err;
  const raw = s.rawReplies?.[topic];
  if (raw !== undefined) return { json: raw as Json };
  const rawText = s.rawText?.[topic];
  if (rawText !== undefined) return { text: rawText };
  switch (topic) {
    case "attr.get": {
      const name = isObject(payload) ? payload.name : undefined;
      if (name === "rank") return { json: { value: String(s.rank ?? 0), flags: 1 } };
      if (name === "security.owner") return { json: { value: String(s.owner ?? 0), flags: 1 } };
      if (name === "hostname") return { json: { value: hostOf(s, s.rank ?? 0), flags: 1 } };
      // (a real broker's: "vm,vm" for two ranks on one host; here the scenario's hosts, or node0..nodeRANK)
      if (name === "hostlist") return { json: { value: formatHostlist(s.hosts ?? Array.from({ length: (s.rank ?? 0) + 1 }, (_, r) => hostOf(s, r))), flags: 1 } };
      return { errnum: ENOENT };
    }
    case "config.get":
      return { json: (s.config ?? {}) as Json };
    case "job-list.list": {
      if (!isObject(payload)) return { errnum: EPROTO, text: "invalid payload" };
      let jobs: ScenarioJob[];
      try {
        checkConstraint(payload.constraint);
        jobs = (s.jobs ?? []).filter((j) => matches(j, payload.constraint));
      } catch (e) {
        return { errnum: EPROTO, text: `invalid payload: ${(e as Error).message}` };
      }
      const max = typeof payload.max_entries === "number" && payload.max_entries > 0 ? payload.max_entries : jobs.length;
      // Each job: its id, then the attributes asked for, in the order asked (as job-list writes them).
      const attrs = (Array.isArray(payload.attrs) ? payload.attrs : []).filter((a): a is string => typeof a === "string");
      const value = (j: ScenarioJob, a: string): Json | undefined => {
        switch (a) {
          case "userid":
            return j.userid;
          case "state":
            return j.state ?? RUN;
          case "name":
            return j.name ?? "sleep";
          case "ranks":
            return bracketed(j.ranks ?? "0");
          case "nodelist":
            return formatHostlist(parseIdset(j.ranks ?? "0").map((r) => hostOf(s, r)));
          case "annotations": {
            const ann: { [k: string]: Json } = {};
            if ((j.state ?? RUN) & RUN) ann.sched = { resource_summary: resourceSummary(j) };
            if (j.uri) ann.user = { uri: j.uri };
            return Object.keys(ann).length ? ann : undefined; // a job without annotations has no key
          }
          default:
            return undefined;
        }
      };
      const list = jobs.slice(0, max).map((j) => {
        const o: { [k: string]: Json } = { id: BigInt(j.id) };
        for (const a of attrs) {
          const v = value(j, a);
          if (v !== undefined) o[a] = v;
        }
        return o;
      });
      // A streaming request's first answer says the version of the stream (fixture 12).
      return { json: streaming ? { jobs: list, version: 1 } : { jobs: list } };
    }
    case "job-info.lookup": {
      if (!isObject(payload) || payload.id === undefined) return { errnum: EPROTO, text: "invalid payload" };
      const id = String(payload.id);
      const job = jobIndex(s).get(id);
      if (!job) return { errnum: ENOENT, text: "invalid job id" };
      const r = rJson(job, s);
      return { json: { id: BigInt(id), R: payload.flags === 1 ? r : pythonJson(r) } };
    }
    case "sdexec-mapper.lookup": {
      const m = s.mapper ?? "auto";
      if (m === "absent") return { errnum: ENOSYS, text: `No service matching ${topic} is registered` };
      if (!isObject(payload) || payload.R === undefined) return { errnum: EINVAL, text: "R is missing" };
      if (m !== "auto") return { json: m as Json };
      try {
        return { text: pythonJson(autoMapper(parseR(payload.R), s.rank ?? 0)) };
      } catch (e) {
        return { errnum: EINVAL, text: (e as Error).message };
      }
    }
    case "sdexec-mapper.stats-get": {
      if ((s.mapper ?? "auto") === "absent") return { errnum: ENOSYS, text: `No service matching ${topic} is registered` };
      return { json: { config: { mapper_class: "flux.sdexec.map.HwlocMapper", mapper_searchpath: "" }, requests: 0 } };
    }
    default:
      return { errnum: ENOSYS, text: `No service matching ${topic} is registered` };
  }
}

/**
 * A response as the broker sends it: ROUTE set with no routes, the broker's own creds (the
 * instance owner's uid, OWNER|LOCAL), STREAMING kept from a streaming request.
 */
export function encodeResponse(req: Message, a: Answer, owner = 0): Uint8Array {
  const isErr = "errnum" in a;
  const payload =
    "errnum" in a ? (a.text ? cString(a.text) : undefined) : "json" in a ? cString(stringifyJson(a.json)) : "text" in a ? cString(a.text) : undefined;
  return encodeMessage({
    type: MsgType.response,
    flags: MsgFlag.route | MsgFlag.topic | (payload ? MsgFlag.payload : 0) | (req.flags & MsgFlag.streaming),
    userid: owner,
    rolemask: 5,
    aux1: isErr ? a.errnum : 0,
    aux2: req.aux2,
    routes: [],
    topic: req.topic,
    payload,
  });
}

/** The broker's answer to `m` in this scenario, as bytes (misbehaviours aside): what every test relies on. */
export function replyTo(s: Scenario, m: Message): Uint8Array {
  let payload: Json | undefined;
  try {
    payload = m.payload ? parseJson(payloadText(m.payload)) : undefined;
  } catch {
    payload = undefined;
  }
  return encodeResponse(m, answer(s, m.topic ?? "", payload, (m.flags & MsgFlag.streaming) !== 0), s.owner ?? 0);
}

export function startBroker(path: string, initial: Scenario, load?: () => Scenario, tamper?: Tamper, log?: (r: RequestLog) => void): Broker {
  let scenario = initial;
  const current = () => (load ? load() : scenario);
  const requests: RequestLog[] = [];
  const readers = new WeakMap<Socket<undefined>, StreamReader>();
  const writers = new WeakMap<Socket<undefined>, QueuedWriter>();
  const writer = (sock: Socket<undefined>) => {
    let w = writers.get(sock);
    if (!w) writers.set(sock, (w = new QueuedWriter(sock)));
    return w;
  };

  const onRequest = async (sock: Socket<undefined>, m: Message) => {
    const s = current();
    const topic = m.topic ?? "";
    let payload: Json | undefined;
    try {
      payload = m.payload ? parseJson(payloadText(m.payload)) : undefined;
    } catch {
      payload = undefined;
    }
    requests.push({ topic, payload });
    log?.({ topic, payload });
    if (s.hangup?.includes(topic)) {
      sock.end();
      return;
    }
    if (s.silent?.includes(topic)) return;
    const quiet = s.silentMatching?.[topic];
    if (quiet !== undefined && m.payload && payloadText(m.payload).includes(quiet)) return;
    const delay = s.delayMs?.[topic];
    if (delay) await Bun.sleep(delay);
    if (s.garbage?.includes(topic)) {
      writer(sock).write(new Uint8Array([0x12, 0x00, 0xee, 0xff, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]));
      return;
    }
    const reply = replyTo(s, m);
    const d = tamper?.(topic, m, reply);
    if (!d) {
      writer(sock).write(reply);
      return;
    }
    for (const [i, piece] of d.pieces.entries()) {
      if (i > 0 && d.gapMs) await Bun.sleep(d.gapMs);
      writer(sock).write(piece);
    }
    if (d.hangup) {
      await Bun.sleep(0);
      sock.end();
    }
  };

  const server: UnixSocketListener<undefined> = Bun.listen<undefined>({
    unix: path,
    socket: {
      open(sock) {
        const h = current().handshake ?? 0;
        sock.write(new Uint8Array([h]));
        if (h !== 0) sock.end();
      },
      drain(sock) {
        writer(sock).drain();
      },
      data(sock, data) {
        let reader = readers.get(sock);
        if (!reader) readers.set(sock, (reader = new StreamReader()));
        let messages: Message[];
        try {
          messages = reader.push(data);
        } catch {
          sock.end();
          return;
        }
        for (const m of messages) if (m.type === MsgType.request) void onRequest(sock, m);
      },
    },
  });

  return {
    path,
    requests,
    set(s) {
      scenario = s;
    },
    stop() {
      server.stop(true);
    },
  };
}
