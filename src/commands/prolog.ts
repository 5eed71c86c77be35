// flux-pam prolog: before a job starts on this rank, constrain the user's slice and open it to logins.

import type { JobId } from "../flux/jobid";
import { type RankShare, rankShare } from "../flux/r";
import { writeText } from "../node/libc";
import { createMarker, markerExists } from "../node/marker";
import type { Limits } from "../decide/drift";
import type { Linger, UnitProgress } from "../systemd/types";
import { mapUnion } from "../flux/map-union";
import { lookupR } from "../flux/rpc";
import { applyUnion, HookError, type HookOptions, otherJobs, runHook, type UserContext, userServiceFailed, userServiceName } from "./containment";
import { LINGER_DIR, lingerFileName } from "../systemd/logind";
import { openSystemd } from "../systemd/systemd";

export async function prolog(opts: HookOptions, env: Record<string, string | undefined>): Promise<number> {
  return runHook("prolog", env, opts, openSystemd, async (ctx) => {
    // All reads: the linger file, systemd and the broker at once; this job's R too (no record has it
    // yet), asked already with the hook's first requests.
    const own = ctx.config.constrainResources ? (ctx.ownR ?? lookupR(ctx.client, ctx.input.jobid, ctx.deadline.left("job-info.lookup"))).then((r) => rankShare(r, ctx.rank)) : undefined;
    own?.catch(() => {}); // awaited in applyUnion, unless the prolog fails first
    // No marker: most likely the user's first job here, and alone. The mapper is asked for this
    // job's share while the reads are out; its answer is used only if job-list says no other job
    // of the user runs here, when it is exactly what the union asks (one round trip less).
    const first = firstJobHere(ctx);
    const alone = own && first ? own.then((share) => mapUnion(ctx.client, ctx.rank, [share], ctx.deadline)) : undefined;
    alone?.catch(() => {}); // awaited in applyUnion, or set aside
    // user@'s state is needed only when its start is queued, after the slice: read now, awaited then
    // (systemd loading the unit from disk, the slowest of the reads at times, overlaps the union).
    // Its queued job too (a stop queued by the last teardown means it must be started again); for a
    // first job, where user@ is almost always down, only once its state says it is up (measured:
    // reading Job with every first job cost it 1.10 [1.05-1.18] of its time).
    const service = userServiceName(ctx.user.uid);
    const progress = first ? ctx.sd.unitActiveState(service).then((activeState) => (isUp(activeState) ? ctx.sd.unitProgress(service) : { activeState })) : ctx.sd.unitProgress(service);
    const userState = progress.then(
      (s) => s,
      (e: Error) => e,
    );
    const [linger, others] = await Promise.all([ctx.sd.linger({ name: ctx.user.name, uid: ctx.user.uid }), otherJobs(ctx)]);
    ctx.debug(`${others.length} other running job(s) of ${ctx.user.name} on rank ${ctx.rank}`);
    await setUpSlice(ctx, [...others, ctx.input.jobid], { linger, userState }, own ? new Map([[ctx.input.jobid, own]]) : undefined, others.length === 0 ? alone : undefined);
  }, true);
}

/** A unit state in which its start is not queued again (unless a stop is queued). */
function isUp(state: string): boolean {
  return state === "active" || state === "activating" || state === "reloading";
}

/** No marker for the user (a dry run never guesses: it shows the calls as they come). */
function firstJobHere(ctx: UserContext): boolean {
  if (ctx.dryRun) return false;
  try {
    return !markerExists(ctx.lockDir, ctx.user.uid);
  } catch {
    return false; // not a file: setUpSlice says so
  }
}

/**
 * Opens user-UID.slice to logins under the union of `ids` (the user's RUN jobs here): refused with
 * linger on; the slice constrained (with exec.sdexec-constrain-resources), then the marker, then
 * user@UID.service's start queued. What the prolog does, and reconcile for a user with jobs.
 */
export async function setUpSlice(
  ctx: UserContext,
  ids: JobId[],
  /**
   * read by the caller: linger, user@'s state (being read: awaited only to queue its start; an
   * Error if it could not be read) and (reconcile) the slice's limits in force
   */
  seen: { linger: Linger; userState: Promise<UnitProgress | Error | undefined>; limits?: Limits },
  asked?: ReadonlyMap<bigint, Promise<RankShare>>,
  /** the mapper's answer for exactly these jobs' union, when already asked */
  mapped?: Promise<Record<string, string>>,
): Promise<void> {
  const userService = userServiceName(ctx.user.uid);
  if (seen.linger.enabled)
    throw new HookError(
      `linger is enabled for ${ctx.user.name}: its user manager outlives jobs and lets sessions escape containment (${LINGER_DIR}/${lingerFileName(ctx.user.name)}; loginctl disable-linger ${ctx.user.name})`,
    );
  if (ctx.config.constrainResources) await applyUnion(ctx, ids, asked, seen.limits, mapped);
  if (ctx.dryRun) writeText(1, `marker create ${ctx.lockDir}/uid.${ctx.user.uid}.active\n`);
  else createMarker(ctx.lockDir, ctx.user.uid); // (idempotent: an existing marker is left as it is)
  // Best effort: containment is the slice; user@ may fail (e.g. /proc mounted hidepid=2). The job
  // does not wait for it to finish starting: its start job is queued and left to systemd. A start
  // that fails later is reported by the next hook of this user here (below, and in housekeeping),
  // by check-user, and in systemd's journal (journalctl -u user@UID.service).
  const read = await seen.userState;
  // Not known is not "not active": say so, then queue the start anyway (it is best effort).
  if (read instanceof Error) ctx.warn(`warning: could not read the state of ${userService}: ${read.message}`);
  const state = read instanceof Error ? undefined : read?.activeState;
  // (up, yet with a stop queued: the teardown of the user's last job here, just before this job)
  const stopping = !(read instanceof Error) && read?.job === "stop";
  if (state !== undefined && isUp(state) && !stopping) {
    ctx.debug(`${userService} is already ${state}`);
    return;
  }
  if (stopping) ctx.debug(`${userService} is ${state}, its stop queued: starting it again`);
  if (state === "failed") ctx.warn(userServiceFailed(ctx.user.uid, "starting it again"));
  try {
    const queued = await ctx.sd.enqueueStart(userService);
    ctx.debug(`${userService} start queued (${queued.job}), not waited for`);
  } catch (e) {
    ctx.warn(`warning: could not start ${userService} (slice containment still applies): ${(e as Error).message}`);
  }
}
