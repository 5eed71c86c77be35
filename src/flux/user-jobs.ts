// What the broker says about a user on this node: rank, instance owner, and their RUN jobs here.

import { FluxClient } from "./client";
import { getConfig, getOwner, getRank, type Job, listJobs } from "./rpc";
import type { Deadline } from "./deadline";
import { isObject } from "./json";
import { socketPath } from "./uri";

export interface UserJobs {
  rank: number;
  owner: number;
  /** RUN jobs on this rank of the user and (when the owner is asked for) of the owner */
  jobs: Job[];
}

/**
 * rank and security.owner are pipelined; then one job-list.list with the RFC 43 constraint
 * userid in {uid, owner}, ranks = [rank], states = [RUN].
 */
export async function userJobs(client: FluxClient, uid: number, withOwner: boolean, deadline: Deadline): Promise<UserJobs> {
  const [rank, owner] = await Promise.all([
    getRank(client, deadline.left("attr.get rank")),
    withOwner ? getOwner(client, deadline.left("attr.get security.owner")) : Promise.resolve(uid),
  ]);
  const jobs = await listJobs(client, { userids: [uid, owner], rank, annotations: true }, deadline.left("job-list.list"));
  return { rank, owner, jobs };
}

/**
 * Does the child instance at `uri`, run by `owner`, admit guests (access.allow-guest-user = true)?
 * Its socket must be the owner's before we believe what answers there.
 */
export async function childAllowsGuests(uri: string, owner: number, deadline: Deadline): Promise<{ allowed: boolean; why?: string }> {
  let client: FluxClient | undefined;
  try {
    // Loaded here: only the guest path needs node:fs.
    const { instanceSocketProblem } = await import("../node/instance-socket");
    const problem = instanceSocketProblem(socketPath(uri), owner);
    if (problem) return { allowed: false, why: problem };
    client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect to child instance"), 2000) });
    const cfg = await getConfig(client, deadline.left("config.get"));
    const access = cfg.access;
    if (isObject(access) && access["allow-guest-user"] === true) return { allowed: true };
    return { allowed: false, why: `the instance at ${uri} does not set access.allow-guest-user = true` };
  } catch (e) {
    return { allowed: false, why: (e as Error).message };
  } finally {
    client?.close();
  }
}
