// Where else in the instance a user has running jobs: one job-list.list over every rank, with each
// job's nodelist, for the hint a denied user gets.

import type { FluxClient } from "./client";
import { BadReplyError } from "./errors";
import { rangesHave } from "./idset";
import { isObject } from "./json";
import { type Job, JobState, getHostname, parseJob } from "./rpc";

export interface JobsElsewhere {
  /** this broker's host name */
  here: string;
  /** the user's RUN jobs that do not hold `rank`, in the broker's order */
  jobs: Job[];
}

/**
 * The user's RUN jobs anywhere in the instance that do not hold this rank, and this node's name,
 * asked at once. Only the user's own jobs: the constraint asks for them, and what comes back is
 * filtered again (a broker that ignores the constraint must not show anyone else's jobs).
 */
export async function jobsElsewhere(client: FluxClient, uid: number, rank: number, timeoutMs: number): Promise<JobsElsewhere> {
  const topic = "job-list.list";
  const [here, r] = await Promise.all([
    getHostname(client, timeoutMs),
    client.rpc(
      topic,
      { max_entries: 0, attrs: ["userid", "state", "ranks", "nodelist"], constraint: { and: [{ userid: [uid] }, { states: [JobState.RUN] }] } },
      timeoutMs,
    ),
  ]);
  if (!isObject(r) || !Array.isArray(r.jobs)) throw new BadReplyError(topic, "no jobs array");
  const jobs = r.jobs
    .map((j) => parseJob(topic, j))
    .filter((j) => j.userid === uid && j.state === JobState.RUN && j.nodelist !== undefined && !rangesHave(j.ranks, rank));
  return { here, jobs };
}
