// flux-pam housekeeping: after a job ends on this rank, shrink the user's slice, or tear it down
// after the user's last job.

import { removeMarker } from "../node/marker";
import { openSystemd } from "../systemd/systemd";
import { applyUnion, HookError, type HookContext, type HookOptions, otherJobs, runHook, sliceName, userServiceName } from "./containment";
import { pidsInCgroup, userSliceCgroup } from "../node/cgroup";

const SIGTERM = 15;
const SIGKILL = 9;
/** How long SIGKILLed processes get to disappear before the node is drained. */
const AFTER_KILL_MS = 10_000;

export async function housekeeping(opts: HookOptions, env: Record<string, string | undefined>): Promise<number> {
  return runHook("housekeeping", env, opts, openSystemd, async (ctx) => {
    const remaining = await otherJobs(ctx);
    if (remaining.length > 0) {
      ctx.debug(`${remaining.length} job(s) of ${ctx.user.name} remain on rank ${ctx.rank}: updating ${sliceName(ctx.user.uid)}`);
      if (ctx.config.constrainResources) await applyUnion(ctx, remaining);
      return;
    }
    await lastJob(ctx);
  });
}

async function lastJob(ctx: HookContext): Promise<void> {
  const uid = ctx.user.uid;
  ctx.debug(`last job of ${ctx.user.name} on rank ${ctx.rank} ended: tearing down ${sliceName(uid)}`);
  // The marker goes first: from here on no new login may enter the slice.
  if (ctx.dryRun) process.stdout.write(`marker remove ${ctx.lockDir}/uid.${uid}.active\n`);
  else removeMarker(ctx.lockDir, uid);
  try {
    await ctx.sd.stopUnit(userServiceName(uid));
  } catch (e) {
    ctx.warn(`warning: could not stop ${userServiceName(uid)}: ${(e as Error).message}`);
  }
  if (ctx.config.killUserSlice) await killSlice(ctx);
  await ctx.sd.revertUnit(sliceName(uid));
}

/**
 * Processes left in the slice outside user@UID.service (ssh sessions, strays) get SIGTERM,
 * then SIGKILL after pam.kill-slice-grace-time. Survivors fail the hook: the node drains.
 */
async function killSlice(ctx: HookContext): Promise<void> {
  const uid = ctx.user.uid;
  const slice = sliceName(uid);
  const dir = userSliceCgroup(uid);
  const left = () => pidsInCgroup(dir, [userServiceName(uid)]);
  if (left().length === 0) return;
  ctx.debug(`${slice}: sending SIGTERM to ${left().join(" ")}`);
  await ctx.sd.killUnit(slice, SIGTERM);
  if (ctx.dryRun || (await emptied(left, ctx.config.killSliceGraceTime * 1000))) return;
  ctx.debug(`${slice}: still running after ${ctx.config.killSliceGraceTime}s, sending SIGKILL to ${left().join(" ")}`);
  await ctx.sd.killUnit(slice, SIGKILL);
  if (await emptied(left, AFTER_KILL_MS)) return;
  throw new HookError(`processes remain in ${slice} after SIGKILL: ${left().join(" ")}`);
}

async function emptied(left: () => number[], ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (left().length === 0) return true;
    if (Date.now() >= end) return false;
    await Bun.sleep(Math.min(100, Math.max(end - Date.now(), 1)));
  }
}
