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

/**
 * The job as its hook unit names it: flux-run-prolog / -housekeeping run flux-prolog@fXXXX.service
 * (F58 with a plain ASCII f, `flux job id --to=f58plain`), so an admin can paste it into journalctl.
 */
export function unitJobId(id: JobId): string {
  return formatF58(id, "f");
}

/** The prefix of every line a hook prints: `flux-pam-prolog[fXXXX]:`. */
export function hookTag(hook: "prolog" | "housekeeping", env: Record<string, string | undefined>): string {
  const raw = env.FLUX_JOB_ID;
  let id = raw === undefined || raw === "" ? "?" : oneLine(raw).slice(0, 40);
  try {
    if (raw) id = unitJobId(parseJobId(raw));
  } catch {
    // keep the raw text: the error itself reports the bad id
  }
  return `flux-pam-${hook}[${id}]`;
}

export function parseHookInput(env: Record<string, string | undefined>): HookInput {
  const u = env.FLUX_JOB_USERID;
  if (u === undefined) throw new HookInputError("FLUX_JOB_USERID is not set");
  if (u === "") throw new HookInputError("FLUX_JOB_USERID is empty");
  if (!/^\d{1,10}$/.test(u) || Number(u) > 0xfffffffe) throw new HookInputError(`FLUX_JOB_USERID="${oneLine(u)}" is not a uid`);
  const j = env.FLUX_JOB_ID;
  if (j === undefined) throw new HookInputError("FLUX_JOB_ID is not set");
  // flux-run-prolog sets it empty when it cannot run `flux job id` (flux not on the IMP's PATH).
  if (j === "") throw new HookInputError("FLUX_JOB_ID is empty (flux-run-prolog and flux-run-housekeeping could not convert it: is flux on the IMP's PATH? flux-pam doctor)");
  let jobid: JobId;
  try {
    jobid = parseJobId(j);
  } catch (e) {
    throw new HookInputError(`FLUX_JOB_ID: ${(e as Error).message}`);
  }
  return { uid: Number(u), jobid };
}
