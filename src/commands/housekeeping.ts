// flux-pam housekeeping: after a job ends on this rank, shrink the user's slice, or tear it down
// after the user's last job.

import { removeMarker } from "../node/marker";
import { liftDevices } from "../systemd/properties";
import { openSystemd } from "../systemd/systemd";
import { applyUnion, HookError, type HookContext, type HookOptions, otherJobs, runHook, sliceName, userServiceName } from "./containment";
import { pidsInCgroup, userSliceCgroup } from "../node/cgroup";
import { SIGTERM, teardownSlice } from "../decide/slice-teardown";

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
  await liftDeviceFilter(ctx);
  await ctx.sd.revertUnit(sliceName(uid));
}

/**
 * Lets every device through the slice's cgroup before the revert. systemd 252 replaces or removes
 * the kernel's device program (eBPF, cgroup v2) only while the unit has a device policy: after the
 * revert (DevicePolicy=auto, no DeviceAllow) it leaves the last job's program in place, so a
 * process kept in the slice (kill-user-slice off) and every new one would stay held to the last
 * job's devices while systemd reports no restriction. DevicePolicy=auto with char-* and block-*
 * installs a program that refuses nothing, and the revert keeps it. Sent on every last job, not
 * only with sdexec-constrain-resources: the slice may hold a policy set while it was on, and on an
 * empty slice it costs one call whose drop-ins the revert removes. A failure is only a warning:
 * the revert still runs, and the stale program then stays until the next prolog or the slice stops.
 */
async function liftDeviceFilter(ctx: HookContext): Promise<void> {
  const slice = sliceName(ctx.user.uid);
  try {
    await ctx.sd.setUnitProperties(slice, liftDevices(), { runtime: true });
  } catch (e) {
    ctx.warn(`warning: could not lift the device restrictions of ${slice} before its revert: ${(e as Error).message}`);
  }
}

/**
 * Processes left in the slice outside user@UID.service (ssh sessions, strays) get SIGTERM,
 * then SIGKILL after pam.kill-slice-grace-time. Survivors fail the hook: the node drains.
 */
async function killSlice(ctx: HookContext): Promise<void> {
  const uid = ctx.user.uid;
  const slice = sliceName(uid);
  const dir = userSliceCgroup(uid);
  const pids = () => pidsInCgroup(dir, [userServiceName(uid)]);
  if (ctx.dryRun) {
    // Show what would be signalled; nothing dies in a dry run, so there is nothing to wait for.
    if (pids().length > 0) await ctx.sd.killUnit(slice, SIGTERM);
    return;
  }
  const outcome = await teardownSlice(
    {
      pids,
      kill: (signal) => {
        ctx.debug(`${slice}: sending ${signal === SIGTERM ? "SIGTERM" : "SIGKILL"} to ${pids().join(" ")}`);
        return ctx.sd.killUnit(slice, signal);
      },
      sleep: (ms) => Bun.sleep(ms),
      now: () => Date.now(),
    },
    ctx.config.killSliceGraceTime * 1000,
    AFTER_KILL_MS,
  );
  if (outcome.kind === "survivors") throw new HookError(`processes remain in ${slice} after SIGKILL: ${outcome.pids.join(" ")}`);
  if (outcome.kind !== "empty") ctx.debug(`${slice}: ${outcome.kind} ${outcome.pids.join(" ")}`);
}
