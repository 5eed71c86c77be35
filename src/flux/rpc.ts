// The broker RPCs flux-pam uses, with their replies checked and typed.

import type { FluxClient } from "./client";
import { BadReplyError, quote } from "./errors";
import { type IdRanges, parseIdRanges, rangesHave } from "./idset";
import { type JobId, jobId } from "./jobid";
import { type Json, isObject, stringifyJson, toBigInt } from "./json";
import { type R, parseR } from "./r";

/** Job states (RFC 21 bits as job-list reports them). Only RUN counts as active on a node. */
export const JobState = { NEW: 1, DEPEND: 2, PRIORITY: 4, SCHED: 8, RUN: 16, CLEANUP: 32, INACTIVE: 64 } as const;
export type JobStateName = keyof typeof JobState;

/**
 * Is the job in RUN with `rank` among its ranks? job-list was asked for exactly these, but a
 * broker that ignores part of a constraint (or lies) must not make a decision wider than that.
 */
export function runningOn(j: Job, rank: number): boolean {
  return j.state === JobState.RUN && rangesHave(j.ranks, rank);
}

export function jobStateName(bit: number): JobStateName | `state ${number}` {
  const e = Object.entries(JobState).find(([, v]) => v === bit);
  return e ? (e[0] as JobStateName) : `state ${bit}`;
}

export interface Job {
  id: JobId;
  userid: number;
  /** the job's broker ranks, as ranges: "0-4294967295" is one range, not four billion ids */
  ranks: IdRanges;
  state: number;
  /** annotations.user.uri: set when the job is a Flux instance */
  uri?: string;
  /** the job's nodes as an RFC 29 hostlist (job-list's nodelist), when asked for */
  nodelist?: string;
}

async function attrGet(client: FluxClient, name: string, timeoutMs?: number): Promise<string> {
  const r = await client.rpc("attr.get", { name }, timeoutMs);
  if (!isObject(r) || typeof r.value !== "string") throw new BadReplyError("attr.get", `no string value for ${name}`);
  return r.value;
}

function uintFrom(topic: string, what: string, text: string): number {
  if (!/^(?:0|[1-9]\d{0,9})$/.test(text) || Number(text) > 0xffffffff) throw new BadReplyError(topic, `${what} ${quote(text)} is not an unsigned integer`);
  return Number(text);
}

export async function getRank(client: FluxClient, timeoutMs?: number): Promise<number> {
  return uintFrom("attr.get", "rank", await attrGet(client, "rank", timeoutMs));
}

/** The uid of the instance owner (security.owner). */
export async function getOwner(client: FluxClient, timeoutMs?: number): Promise<number> {
  return uintFrom("attr.get", "security.owner", await attrGet(client, "security.owner", timeoutMs));
}

/** This broker's host name (the hostname attribute): the node's name as Flux knows it, never DNS's. */
export async function getHostname(client: FluxClient, timeoutMs?: number): Promise<string> {
  return attrGet(client, "hostname", timeoutMs);
}

/** The instance's hosts, rank by rank, as an RFC 29 hostlist (the hostlist attribute: "vm,vm" for two ranks on vm). */
export async function getHostlist(client: FluxClient, timeoutMs?: number): Promise<string> {
  return attrGet(client, "hostlist", timeoutMs);
}

/** The broker's whole effective config, as JSON tables. */
export async function getConfig(client: FluxClient, timeoutMs?: number): Promise<{ [key: string]: Json }> {
  const r = await client.rpc("config.get", undefined, timeoutMs);
  if (!isObject(r)) throw new BadReplyError("config.get", "the config is not an object");
  return r;
}

export interface JobListQuery {
  /** the users whose jobs to list; absent: every user's */
  userids?: number[];
  rank: number;
  /** job states to match; default [RUN] */
  states?: number[];
  /**
   * Ask for the jobs' annotations too: only the account decision and check-user read them (a
   * child instance's URI, for guests). The scheduler annotates every running job, so a list
   * without them is a fraction of the bytes, and of what the hooks hold with many jobs.
   */
  annotations?: boolean;
}

/** The jobs in RUN (or `states`) of these users (or of all) that have this rank, in one job-list.list. */
export async function listJobs(client: FluxClient, q: JobListQuery, timeoutMs?: number): Promise<Job[]> {
  const topic = "job-list.list";
  const r = await client.rpc(
    topic,
    {
      max_entries: 0,
      attrs: ["userid", "ranks", "state", ...(q.annotations ? ["annotations"] : [])],
      constraint: {
        and: [
          ...(q.userids ? [{ userid: [...new Set(q.userids)] }] : []),
          { ranks: [String(q.rank)] },
          { states: q.states ?? [JobState.RUN] },
        ],
      },
    },
    timeoutMs,
  );
  if (!isObject(r) || !Array.isArray(r.jobs)) throw new BadReplyError(topic, "no jobs array");
  return r.jobs.map((j) => parseJob(topic, j));
}

const STATE_BITS = new Set<number>(Object.values(JobState));

/**
 * One job of a job-list reply, held to what a real broker sends (jansson writes integers as
 * integers): an id that is a u64 integer, a userid that is a u32 integer, a state that is one
 * RFC 21 state bit, ranks an idset as libidset writes it. A job outside these is not believed,
 * and neither is the reply that holds it (the caller refuses the whole reply).
 */
export function parseJob(topic: string, j: Json): Job {
  if (!isObject(j)) throw new BadReplyError(topic, "a job is not an object");
  const id = toBigInt(j.id);
  if (id === undefined || id < 0n || id >= 1n << 64n) throw new BadReplyError(topic, `a job has no valid id (${describe(j.id)})`);
  const userid = u32(j.userid);
  if (userid === undefined) throw new BadReplyError(topic, `job ${id} has no valid userid (${describe(j.userid)})`);
  if (typeof j.state !== "number" || !STATE_BITS.has(j.state))
    throw new BadReplyError(topic, `job ${id} has no valid state (${describe(j.state)})`);
  let ranks: IdRanges = [];
  if (j.ranks !== undefined) {
    if (typeof j.ranks !== "string") throw new BadReplyError(topic, `job ${id} has ranks that are not an idset (${describe(j.ranks)})`);
    try {
      ranks = parseIdRanges(j.ranks);
    } catch (e) {
      throw new BadReplyError(topic, `job ${id}: ${(e as Error).message}`);
    }
  }
  const job: Job = { id: jobId(id), userid, ranks, state: j.state };
  if (j.nodelist !== undefined) {
    if (typeof j.nodelist !== "string") throw new BadReplyError(topic, `job ${id} has a nodelist that is not a string (${describe(j.nodelist)})`);
    job.nodelist = j.nodelist;
  }
  const ann = j.annotations;
  if (isObject(ann) && isObject(ann.user) && typeof ann.user.uri === "string") job.uri = ann.user.uri;
  return job;
}

/** An unsigned 32-bit integer written as an integer (not 5.0, not -0), or undefined. */
function u32(v: Json | undefined): number | undefined {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff || Object.is(v, -0)) return undefined;
  return v;
}

/** A short, safe rendering of a value for a refusal: its JSON, clipped. */
function describe(v: Json | undefined): string {
  if (v === undefined) return "missing";
  if (Object.is(v, -0)) return "-0";
  const s = stringifyJson(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** The R of a job (job-info.lookup, R decoded by the broker). */
export async function lookupR(client: FluxClient, id: JobId, timeoutMs?: number): Promise<R> {
  const topic = "job-info.lookup";
  const r = await client.rpc(topic, { id, keys: ["R"], flags: 0 }, timeoutMs);
  if (!isObject(r) || typeof r.R !== "string") throw new BadReplyError(topic, `no R for job ${id}`);
  return parseR(r.R, topic);
}

/** systemd unit properties for an R, from the sdexec-mapper module: property -> string value. */
export async function mapperLookup(client: FluxClient, R: R, timeoutMs?: number): Promise<Record<string, string>> {
  const topic = "sdexec-mapper.lookup";
  const r = await client.rpc(topic, { R: R as unknown as Json }, timeoutMs);
  if (!isObject(r)) throw new BadReplyError(topic, "the answer is not an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) {
    if (typeof v !== "string") throw new BadReplyError(topic, `property ${k} is not a string`);
    out[k] = v;
  }
  return out;
}
