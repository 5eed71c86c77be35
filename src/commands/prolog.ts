// flux-pam prolog: before a job starts on this rank, constrain the user's slice and open it to logins.

import { createMarker } from "../node/marker";
import { applyUnion, HookError, type HookOptions, lookupShare, otherJobs, runHook, userServiceFailed, userServiceName } from "./containment";
import { openSystemd } from "../systemd/systemd";

export async function prolog(opts: HookOptions, env: Record<string, string | undefined>): Promise<number> {
  return runHook("prolog", env, opts, openSystemd, async (ctx) => {
    // All reads: ask logind, systemd and the broker at once; this job's R too (no record has it yet).
    const userService = userServiceName(ctx.user.uid);
    const own = ctx.config.constrainResources ? lookupShare(ctx, ctx.input.jobid) : undefined;
    own?.catch(() => {}); // awaited in applyUnion, unless the prolog fails first
    const [linger, others, userState] = await Promise.all([
      ctx.sd.linger({ name: ctx.user.name, uid: ctx.user.uid }),
      otherJobs(ctx),
      ctx.sd.unitActiveState(userService).catch(() => undefined),
    ]);
    if (linger.enabled)
      throw new HookError(
        `linger is enabled for ${ctx.user.name}: its user manager outlives jobs and lets sessions escape containment (${linger.source === "file" ? "/var/lib/systemd/linger/" + ctx.user.name + "; " : ""}loginctl disable-linger ${ctx.user.name})`,
      );
    ctx.debug(`${others.length} other running job(s) of ${ctx.user.name} on rank ${ctx.rank}`);
    if (own) await applyUnion(ctx, [...others, ctx.input.jobid], new Map([[ctx.input.jobid, own]]));
    if (ctx.dryRun) process.stdout.write(`marker create ${ctx.lockDir}/uid.${ctx.user.uid}.active\n`);
    else createMarker(ctx.lockDir, ctx.user.uid);
    // Best effort: containment is the slice; user@ may fail (e.g. /proc mounted hidepid=2). The job
    // does not wait for it to finish starting: its start job is queued and left to systemd. A start
    // that fails later is reported by the next hook of this user here (below, and in housekeeping),
    // by check-user, and in systemd's journal (journalctl -u user@UID.service).
    const state = userState;
    if (state === "active" || state === "activating" || state === "reloading") {
      ctx.debug(`${userService} is already ${state}`);
      return;
    }
    if (state === "failed") ctx.warn(userServiceFailed(ctx.user.uid, "starting it again"));
    try {
      const queued = await ctx.sd.enqueueStart(userService);
      ctx.debug(`${userService} start queued (${queued.job}), not waited for`);
    } catch (e) {
      ctx.warn(`warning: could not start ${userService} (slice containment still applies): ${(e as Error).message}`);
    }
  });
}
