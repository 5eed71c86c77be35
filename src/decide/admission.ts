// Who may log in: the job owner, a guest of a multi-user instance the owner runs here, or nobody.

import { rangesFirst, rangesHave } from "../flux/idset";
import { type Job, JobState, runningOn } from "../flux/rpc";

export type Admission =
  | { kind: "owner"; jobs: Job[] }
  | { kind: "guest"; job: Job; childUri: string }
  | { kind: "deny" };

/** Why an owner's job did or did not let a guest in (check-user shows these). */
export interface GuestCandidate {
  job: Job;
  /** undefined when the job qualifies */
  rejected?: string;
  childUri?: string;
}

export interface AdmissionInput {
  uid: number;
  /** the instance owner (security.owner); guests are admitted through the owner's jobs */
  owner: number;
  rank: number;
  jobs: Job[];
  allowGuestUser: boolean;
}

/**
 * Asks a child instance (at a local:// URI) whether it admits guests.
 * Resolves true only for access.allow-guest-user = true; errors are a "no" with a reason.
 */
export type ChildGuestCheck = (childUri: string, owner: number) => Promise<{ allowed: boolean; why?: string }>;

export function ownerJobs(input: AdmissionInput): Job[] {
  return input.jobs.filter((j) => j.userid === input.uid && runningOn(j, input.rank));
}

/** The owner's jobs, each with the first of the four guest conditions it fails. */
export function guestCandidates(input: AdmissionInput, childLocalUri: (ssh: string) => string): GuestCandidate[] {
  if (input.owner === input.uid) return [];
  return input.jobs
    .filter((j) => j.userid === input.owner && j.state === JobState.RUN)
    .map((job): GuestCandidate => {
      if (rangesFirst(job.ranks) !== input.rank || !rangesHave(job.ranks, input.rank))
        return { job, rejected: `rank ${input.rank} is not the first rank of the job` };
      if (job.uri === undefined) return { job, rejected: "the job is not a Flux instance (no annotations.user.uri)" };
      try {
        return { job, childUri: childLocalUri(job.uri) };
      } catch (e) {
        return { job, rejected: (e as Error).message };
      }
    });
}

export async function decideAdmission(
  input: AdmissionInput,
  childLocalUri: (ssh: string) => string,
  childAllowsGuests: ChildGuestCheck,
): Promise<{ admission: Admission; candidates: GuestCandidate[] }> {
  const mine = ownerJobs(input);
  if (mine.length > 0) return { admission: { kind: "owner", jobs: mine }, candidates: [] };
  if (!input.allowGuestUser) return { admission: { kind: "deny" }, candidates: [] };
  const candidates = guestCandidates(input, childLocalUri);
  for (const c of candidates) {
    if (c.rejected !== undefined || c.childUri === undefined) continue;
    const answer = await childAllowsGuests(c.childUri, c.job.userid);
    if (answer.allowed) return { admission: { kind: "guest", job: c.job, childUri: c.childUri }, candidates };
    c.rejected = answer.why ?? "the instance does not set access.allow-guest-user = true";
  }
  return { admission: { kind: "deny" }, candidates };
}
