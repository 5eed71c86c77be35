// RFC 20 R version 1: a job's resources. flux-pam needs this rank's cores and gpus.

import { BadReplyError } from "./errors";
import { type IdRanges, type Idset, formatIdset, idsetUnion, parseIdRanges, parseIdsetIds, rangesHave, rangesIndexOf, rangesUnion } from "./idset";
import { type Json, isObject, JsonReal, parseJson } from "./json";
import { hostlistNth } from "./hostlist";

export interface RLite {
  rank: string;
  children: { core?: string; gpu?: string; [other: string]: string | undefined };
}

export interface R {
  version: 1;
  execution: {
    R_lite: RLite[];
    nodelist?: string[];
    starttime?: number;
    expiration?: number;
  };
}

/** What one rank holds of a job. */
export interface RankShare {
  cores: Idset;
  gpus: Idset;
  /** the host name of that rank, when R's nodelist says */
  host?: string;
}

export function parseR(text: string | Json, topic = "R"): R {
  let v: Json;
  try {
    // R travels as a JSON string inside the reply: it gets the reply's own bounds (json.ts).
    v = typeof text === "string" ? parseJson(text) : text;
  } catch (e) {
    throw new BadReplyError(topic, `R is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(v) || v.version !== 1) throw new BadReplyError(topic, "R is not version 1");
  const ex = v.execution;
  if (!isObject(ex) || !Array.isArray(ex.R_lite)) throw new BadReplyError(topic, "R has no execution.R_lite");
  for (const e of ex.R_lite) {
    if (!isObject(e) || typeof e.rank !== "string" || !isObject(e.children))
      throw new BadReplyError(topic, "an R_lite entry has no rank or children");
    for (const c of Object.values(e.children))
      if (typeof c !== "string") throw new BadReplyError(topic, "an R_lite child is not an idset");
  }
  if (ex.nodelist !== undefined && (!Array.isArray(ex.nodelist) || ex.nodelist.some((h) => typeof h !== "string")))
    throw new BadReplyError(topic, "R nodelist is not a list of hostlists");
  // The times are reals in R (expiration 0.0): plain numbers to us, as the R type says.
  for (const k of ["starttime", "expiration"] as const) if (ex[k] instanceof JsonReal) ex[k] = ex[k].value;
  return v as unknown as R;
}

/**
 * The cores and gpus that R gives `rank`. Rank idsets are tested as ranges; only this rank's
 * cores and gpus are spelled out. Idsets are read as a real broker writes them (parseIdRanges).
 */
export function rankShare(r: R, rank: number, topic = "job-info.lookup"): RankShare {
  const cores: Idset[] = [];
  const gpus: Idset[] = [];
  const allRanks: IdRanges[] = [];
  try {
    for (const e of r.execution.R_lite) {
      const ranks = parseIdRanges(e.rank);
      allRanks.push(ranks);
      if (!rangesHave(ranks, rank)) continue;
      if (e.children.core) cores.push(parseIdsetIds(e.children.core));
      if (e.children.gpu) gpus.push(parseIdsetIds(e.children.gpu));
    }
  } catch (e) {
    throw new BadReplyError(topic, `R: ${(e as Error).message}`);
  }
  const share: RankShare = { cores: idsetUnion(...cores), gpus: idsetUnion(...gpus) };
  // nodelist names the hosts of R's ranks in ascending rank order.
  const nodelist = r.execution.nodelist;
  if (nodelist) {
    const host = hostlistNth(nodelist, rangesIndexOf(rangesUnion(...allRanks), rank));
    if (host !== undefined) share.host = host;
  }
  return share;
}

/** An R holding the union of shares on one rank: what the mapper turns into slice properties. */
export function unionR(rank: number, shares: RankShare[]): R {
  const core = formatIdset(shares.flatMap((s) => s.cores));
  const gpu = formatIdset(shares.flatMap((s) => s.gpus));
  const children: RLite["children"] = {};
  if (core) children.core = core;
  if (gpu) children.gpu = gpu;
  const host = shares.find((s) => s.host)?.host;
  return {
    version: 1,
    execution: {
      R_lite: [{ rank: String(rank), children }],
      starttime: 0,
      expiration: 0,
      ...(host ? { nodelist: [host] } : {}),
    },
  };
}
