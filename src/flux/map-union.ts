// What sdexec-mapper gives for the union of some jobs' resources on this rank: R of each job
// (pipelined on one connection, each reduced to this rank's share as it arrives), one lookup.

import type { FluxClient } from "./client";
import type { Deadline } from "./deadline";
import type { JobId } from "./jobid";
import { rankShare, unionR } from "./r";
import { lookupR, mapperLookup } from "./rpc";

export interface MappedUnion {
  /** the mapper's properties, as it spells them */
  props: Record<string, string>;
  /** the union's R_lite, for debug lines */
  rlite: unknown;
}

/**
 * The mapper's properties for the union of `ids` on `rank`. A failure of the mapper is thrown as
 * is (the caller says what it means: a failed prolog, a drift it cannot judge).
 */
export async function mapJobsUnion(client: FluxClient, rank: number, ids: readonly JobId[], deadline: Deadline): Promise<MappedUnion> {
  // A thousand full Rs are never held at once: each is cut to this rank's share on arrival.
  const shares = await Promise.all(ids.map((id) => lookupR(client, id, deadline.left("job-info.lookup")).then((r) => rankShare(r, rank))));
  const union = unionR(rank, shares);
  return { props: await mapperLookup(client, union, deadline.left("sdexec-mapper.lookup")), rlite: union.execution.R_lite };
}
