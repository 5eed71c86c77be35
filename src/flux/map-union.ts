// This rank's share of jobs, and what sdexec-mapper gives for their union: R of each job not
// already known (pipelined on one connection, each reduced to this rank's share as it arrives),
// one lookup. The hooks (to set it) and status (to compare with it) both ask it so.

import type { FluxClient } from "./client";
import type { Deadline } from "./deadline";
import type { JobId } from "./jobid";
import { type RankShare, rankShare, unionR } from "./r";
import { lookupR, mapperLookup } from "./rpc";

/** A job's R from the broker, reduced to this rank's share. */
export function lookupShare(client: FluxClient, rank: number, id: JobId, deadline: Deadline): Promise<RankShare> {
  return lookupR(client, id, deadline.left("job-info.lookup")).then((r) => rankShare(r, rank));
}

/**
 * The share of each of `ids`, in order: from `known` (shares recorded earlier), from `asked`
 * (lookups already under way), else looked up now. A thousand full Rs are never held at once.
 */
export function sharesOf(
  client: FluxClient,
  rank: number,
  ids: readonly JobId[],
  known: ReadonlyMap<bigint, RankShare>,
  asked: ReadonlyMap<bigint, Promise<RankShare>>,
  deadline: Deadline,
): Promise<RankShare[]> {
  return Promise.all(ids.map((id) => known.get(id) ?? asked.get(id) ?? lookupShare(client, rank, id, deadline)));
}

/** The mapper's properties, as it spells them, for the union of `shares` on `rank`. Its errors are thrown as they are. */
export async function mapUnion(client: FluxClient, rank: number, shares: readonly RankShare[], deadline: Deadline): Promise<Record<string, string>> {
  return mapperLookup(client, unionR(rank, [...shares]), deadline.left("sdexec-mapper.lookup"));
}
