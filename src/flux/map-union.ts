// This rank's share of jobs, and what sdexec-mapper gives for their union: R of each job not
// already known (LOOKUPS_IN_FLIGHT at a time on one connection, each reduced to this rank's share
// as it arrives), then the mapper's answer for the union. The hooks (to set it) and status (to
// compare with it) both ask it so.

import type { FluxClient } from "./client";
import type { Deadline } from "./deadline";
import type { JobId } from "./jobid";
import { type RankShare, rankShare, unionR } from "./r";
import { lookupR, mapperLookup } from "./rpc";

/** A job's R from the broker, reduced to this rank's share. */
export function lookupShare(client: FluxClient, rank: number, id: JobId, deadline: Deadline): Promise<RankShare> {
  return lookupR(client, id, deadline.left("job-info.lookup")).then((r) => rankShare(r, rank));
}

/** R lookups in flight at once, when many jobs' Rs are asked for. */
export const LOOKUPS_IN_FLIGHT = 64;
/**
 * Replies between two collections of the garbage they leave. Measured (a hook asking 1000 Rs on
 * real systemd, bench/hooks.ts): with all of them in flight, or without collecting, JavaScriptCore
 * grows its heap to ~9 MiB for ~3 MiB of live data and the hook peaks at 46 MiB; collecting every
 * 250 replies, 40.9; every 100, 39.6, at about a quarter more time on that cold path. A hook
 * whose record of shares holds all but the new job's asks one R and never collects.
 */
export const COLLECT_EVERY = 100;

/**
 * The share of each of `ids`, in order: from `known` (shares recorded earlier), from `asked`
 * (lookups already under way), else looked up now, LOOKUPS_IN_FLIGHT at a time, each reduced to
 * this rank's share as it arrives: a thousand full Rs are never held at once. The first failure
 * fails the whole and no further lookup is sent.
 */
export async function sharesOf(
  client: FluxClient,
  rank: number,
  ids: readonly JobId[],
  known: ReadonlyMap<bigint, RankShare>,
  asked: ReadonlyMap<bigint, Promise<RankShare>>,
  deadline: Deadline,
): Promise<RankShare[]> {
  const out: (RankShare | Promise<RankShare> | undefined)[] = ids.map((id) => known.get(id) ?? asked.get(id));
  const todo = out.flatMap((share, i) => (share === undefined ? [i] : []));
  let next = 0;
  let replies = 0;
  let failed = false;
  for (const share of out) if (share instanceof Promise) share.catch(() => (failed = true));
  const worker = async () => {
    while (!failed && next < todo.length) {
      const i = todo[next++]!;
      try {
        out[i] = await lookupShare(client, rank, ids[i]!, deadline);
      } catch (e) {
        failed = true;
        throw e;
      }
      if (++replies % COLLECT_EVERY === 0) Bun.gc(true);
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUPS_IN_FLIGHT, todo.length) }, worker));
  return Promise.all(out as (RankShare | Promise<RankShare>)[]);
}

/** The mapper's properties, as it spells them, for the union of `shares` on `rank`. Its errors are thrown as they are. */
export async function mapUnion(client: FluxClient, rank: number, shares: readonly RankShare[], deadline: Deadline): Promise<Record<string, string>> {
  return mapperLookup(client, unionR(rank, [...shares]), deadline.left("sdexec-mapper.lookup"));
}
