// Input of the job hooks (prolog, housekeeping): who and which job, from the environment Flux sets.

import { type JobId, formatF58, parseJobId } from "../flux/jobid";
import { oneLine } from "../wrapper/reply";

export interface HookInput {
  uid: number;
  jobid: JobId;
}

export class HookInputError extends Error {
  override name = "HookInputError";
}

/** The prefix of every line a hook prints: `flux-pam-prolog[ƒXXXX]:`. */
export function hookTag(hook: "prolog" | "housekeeping", env: Record<string, string | undefined>): string {
  const raw = env.FLUX_JOB_ID;
  let id = raw === undefined ? "?" : oneLine(raw).slice(0, 40);
  try {
    if (raw !== undefined) id = formatF58(parseJobId(raw));
  } catch {
    // keep the raw text: the error itself reports the bad id
  }
  return `flux-pam-${hook}[${id}]`;
}

export function parseHookInput(env: Record<string, string | undefined>): HookInput {
  const u = env.FLUX_JOB_USERID;
  if (u === undefined || u === "") throw new HookInputError("FLUX_JOB_USERID is not set");
  if (!/^\d{1,10}$/.test(u) || Number(u) > 0xfffffffe) throw new HookInputError(`FLUX_JOB_USERID="${oneLine(u)}" is not a uid`);
  const j = env.FLUX_JOB_ID;
  if (j === undefined || j === "") throw new HookInputError("FLUX_JOB_ID is not set");
  let jobid: JobId;
  try {
    jobid = parseJobId(j);
  } catch (e) {
    throw new HookInputError(`FLUX_JOB_ID: ${(e as Error).message}`);
  }
  return { uid: Number(u), jobid };
}
