// flux-pam housekeeping: after a job ends on this rank, shrink the user's slice, or tear it down
// after the user's last job.

import { removeShares } from "../node/job-shares";
import { writeText } from "../node/libc";
import { markerExists, removeMarker } from "../node/marker";
import { DBusCallError, NO_SUCH_UNIT } from "../systemd/errors";
import { DROPIN_PROPERTIES, liftDevices } from "../systemd/properties";
import { openSystemd } from "../systemd/systemd";
import { AFTER_KILL_MS, applyUnion, HookError, type HookOptions, otherJobs, runHook, sliceName, type UserContext, userServiceFailed, userServiceName } from "./containment";
import { join } from "node:path";
import { childCgroups, pidsInCgroup, userSliceCgroup } from "../node/cgroup";
import { SIGTERM, teardownSlice } from "../decide/slice-teardown";

export async function housekeeping(opts: HookOptions, env: Record<string, string | undefined>): Promise<number> {
  return runHook("housekeeping", env, opts, openSystemd, async (ctx) => {
    const remaining = await otherJobs(ctx);
    if (remaining.length > 0) {
      ctx.debug(`${remaining.length} job(s) of ${ctx.user.name} remain on rank ${ctx.rank}: updating ${sliceName(ctx.user.uid)}`);
      if (ctx.config.constrainResources) await applyUnion(ctx, remaining);
      return;
    }
    await tearDown(ctx);
  });
}

/** systemd's own units in the slice: what they run is not a stray of the user's. */
function managerUnits(uid: number): string[] {
  return [userServiceName(uid), `user-runtime-dir@${uid}.service`];
}

/** Does systemd free `unit` within `ms`? (GetUnit: never loads it.) */
async function freed(ctx: UserContext, unit: string, ms = 300): Promise<boolean> {
  for (const end = Date.now() + ms; ; await Bun.sleep(10)) {
    if ((await ctx.sd.unitStatus(unit)) === undefined) return true;
    if (Date.now() >= end) return false;
  }
}

/** How long a teardown lets a start of user@ under way end before it stops it regardless (or reconcile's budget, if shorter). */
const START_SETTLE_MS = 10_000;

/**
 * user@'s state once a start of it under way has ended: the prolog queues that start and does not
 * wait, so the housekeeping of a job that ended at once finds user@ (or user-runtime-dir@ before it)
 * still starting. The slice's stop would cut that start short, and what it cuts fails
 * (user-runtime-dir@'s start process is killed: result 'signal'); a failed unit keeps systemd
 * holding the slice, with the last job's properties, and shows in systemctl --failed. Stopping
 * user@ itself (strays in the slice) would cut it short the same way. So the stop waits, in this
 * race only, up to START_SETTLE_MS (within reconcile's --timeout: UserContext.waitBudget), then
 * goes ahead all the same (and says so). Undefined when systemd cannot say.
 */
async function startSettled(ctx: UserContext): Promise<string | undefined> {
  const uid = ctx.user.uid;
  const [userService, runtimeDir] = managerUnits(uid);
  const settleMs = Math.min(START_SETTLE_MS, ctx.waitBudget?.remaining() ?? START_SETTLE_MS);
  const end = performance.now() + settleMs;
  for (let waited = false; ; waited = true) {
    let user, dir;
    try {
      [user, dir] = await Promise.all([ctx.sd.unitProgress(userService!), ctx.sd.unitActiveState(runtimeDir!)]);
    } catch {
      return undefined; // not known: the stop goes ahead, as it would have
    }
    const starting = user.job === "start" || user.activeState === "activating" || dir === "activating";
    if (!starting) {
      if (waited) ctx.debug(`${userService} is ${user.activeState}: its start under way has ended`);
      return user.activeState;
    }
    if (performance.now() >= end) {
      ctx.warn(`warning: ${userService} is still starting after ${formatWait(settleMs)}: stopping ${sliceName(uid)} all the same`);
      return user.activeState;
    }
    if (!waited) ctx.debug(`${userService} is starting (${user.activeState}${user.job ? `, a ${user.job} job queued` : ""}; ${runtimeDir} ${dir}): waiting for it before the stop`);
    await Bun.sleep(20);
  }
}

/** A wait in seconds, as a warning says it: "10 s", "2.5 s". */
const formatWait = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

/** A unit in one of these states needs nothing from a teardown: it is down, or on its way down. */
const settled = (state: string | undefined) => state === undefined || state === "inactive" || state === "deactivating";

/**
 * After the user's last job here: the marker goes, then what the slice holds, per the hooks' rules.
 * What housekeeping does for the last job, and reconcile for a user without jobs.
 */
export async function tearDown(ctx: UserContext): Promise<void> {
  const uid = ctx.user.uid;
  const slice = sliceName(uid);
  const userService = userServiceName(uid);
  ctx.debug(`last job of ${ctx.user.name} on rank ${ctx.rank} ended: tearing down ${slice}`);
  // The marker goes first: from here on no new login may enter the slice.
  const marked = markerExists(ctx.lockDir, uid);
  if (ctx.dryRun) writeText(1, `marker remove ${ctx.lockDir}/uid.${uid}.active\n`);
  else {
    removeMarker(ctx.lockDir, uid);
    try {
      removeShares(ctx.lockDir, uid);
    } catch (e) {
      // A share left behind is only ever used for a job the broker says runs: harmless.
      ctx.warn(`warning: could not remove the record of the jobs' shares: ${(e as Error).message}`);
    }
  }
  // Only the drop-ins of properties a prolog may set are ours (the mapper's answer may hold any of
  // them): an administrator's runtime properties of other names stay.
  const dropins = ctx.sd.runtimeDropins(slice, DROPIN_PROPERTIES);
  const cgroup = userSliceCgroup(uid);
  const strays = () => pidsInCgroup(cgroup, managerUnits(uid));
  let left = strays();
  let userState: string | undefined;
  let stop = true;
  let held = true;
  let stale = false;
  let kept = false;
  if (!marked) {
    // Without a marker another housekeeping may have torn it all down already: look first, and
    // without loading anything (GetUnit). When many jobs of the user end at once, every
    // housekeeping but the first ends here, having made no write call.
    const [user, seen] = await Promise.all([ctx.sd.unitStatus(userService), ctx.sd.unitStatus(slice)]);
    // Stopped, yet held with stale properties: systemd may be about to free it (it collects a
    // stopped unit nothing refers to right after the stop). Give it that moment before judging.
    const slc = seen?.needDaemonReload && seen.activeState === "inactive" && seen.job === undefined && (await freed(ctx, slice)) ? undefined : seen;
    userState = user?.activeState ?? "inactive";
    // A stop already queued is a teardown under way: the slice says NeedDaemonReload until systemd frees it.
    const stopping = slc?.job === "stop";
    stale = slc !== undefined && !stopping && slc.needDaemonReload;
    // (A user manager in a slice being stopped is on its way down too, even before its own stop began.)
    if ((settled(userState) || stopping) && left.length === 0 && dropins.length === 0 && !stale) {
      ctx.debug(`nothing left to tear down: ${userService} ${userState}, ${slice} ${slc ? `${slc.activeState}${stopping ? " (stopping)" : ""}` : "not loaded"}, no runtime properties, no process`);
      return;
    }
    held = slc !== undefined;
    stop = slc !== undefined && slc.activeState !== "inactive" && !stopping;
    kept = stale && slc?.activeState === "inactive";
  }
  if (left.length > 0) {
    userState ??= await ctx.sd.unitActiveState(userService);
    // user@ is stopped below: a start of it under way ends first (see startSettled).
    if (userState === "activating") userState = (await startSettled(ctx)) ?? userState;
    if (ctx.config.killUserSlice) {
      if (!settled(userState)) await stopUserService(ctx);
      await killSlice(ctx);
      left = ctx.dryRun ? [] : strays();
    }
    if (left.length > 0) return revertKeptSlice(ctx, !settled(userState), dropins.length > 0 || stale);
  }
  // Read before the stop is queued: systemd answers as the jobs left them.
  // (Both at once: a systemd that does not answer costs the call's timeout once, not twice.)
  const inSlice = held ? ctx.sd.sliceUnits(slice).catch(() => [] as string[]) : Promise.resolve([] as string[]);
  const userNow = stop ? await startSettled(ctx) : (userState ?? (await ctx.sd.unitActiveState(userService).catch(() => undefined)));
  await stopSlice(ctx, stop);
  const userFailed = userNow === "failed";
  if (userFailed) ctx.warn(userServiceFailed(uid, "resetting it"));
  // A failed unit stays in systemd's memory, and keeps its slice there with it: its failure is
  // forgotten (a no-op for a unit that did not fail: none of these runs a process any more), so
  // that systemd can free the slice once it is stopped. The journal keeps why it failed.
  const forget = [...(userFailed ? [userService] : []), ...(await inSlice).filter((u) => !managerUnits(uid).includes(u))];
  await Promise.all(forget.map((u) => ctx.sd.resetFailedUnit(u).catch((e: Error) => ctx.warn(`warning: could not reset ${u}: ${e.message}`))));
  if (kept && !(await freed(ctx, slice))) {
    // systemd stopped the slice before, yet still holds it, with the properties of drop-ins that
    // are gone (something still refers to it). Only a reload makes it read its files again.
    ctx.warn(`warning: systemd holds the stopped ${slice} with runtime properties whose drop-ins are gone (systemctl list-dependencies --reverse ${slice}): reloading systemd`);
    await ctx.sd.reload();
  }
}

/**
 * Nothing of the user's runs in the slice any more (systemd's user units aside): its runtime
 * drop-ins go, then its stop is queued, not waited for. The stop takes user@ and user-runtime-dir@
 * with it (the user manager's own shutdown is most of its time); the slice's cgroup goes, and with
 * it the kernel's cpuset and device program; then systemd frees the stopped unit, and whoever loads
 * it next reads its files afresh: without the drop-ins, with NeedDaemonReload "no", without a
 * reload. Until the stop is done systemd still holds the slice with its old properties (and
 * NeedDaemonReload "yes", the drop-ins being gone), with only the user manager's exiting
 * processes left in it.
 */
async function stopSlice(ctx: UserContext, stop: boolean): Promise<void> {
  const slice = sliceName(ctx.user.uid);
  const removed = ctx.sd.removeRuntimeDropins(slice, DROPIN_PROPERTIES);
  if (removed.length > 0) ctx.debug(`${slice}: removed ${removed.join(" ")}`);
  if (!stop) return;
  try {
    const q = await ctx.sd.enqueueStop(slice);
    ctx.debug(`${slice} stop queued (${q.job}), not waited for`);
  } catch (e) {
    // systemd no longer holds it: nothing of it is left in memory, the next load reads its files.
    if (e instanceof DBusCallError && e.dbusName === NO_SUCH_UNIT) {
      ctx.debug(`${slice} is not loaded any more: nothing to stop`);
      return;
    }
    // The stop is what lifts the slice's properties without a reload: without it systemd keeps the
    // ended jobs' limits in memory only (the next daemon-reload drops them), and user@ runs on in
    // the slice. The teardown is not done: say so (the node drains, the next hook tries again).
    throw new HookError(`could not stop ${slice}, so its limits are not lifted and ${userServiceName(ctx.user.uid)} may still run in it: ${(e as Error).message}`);
  }
}

/**
 * Processes remain in the slice (pam.kill-user-slice is off): the slice stays up and systemd keeps
 * it, and systemd 252 has no call that re-reads one loaded unit's drop-ins. One of the two cases of
 * the job paths that take a node-wide reload (the other: a stopped slice systemd still holds, in
 * tearDown), and only when the slice carries runtime properties: lift the device filter (the reload
 * alone would leave the last job's device program in the kernel), remove the drop-ins, reload.
 */
async function revertKeptSlice(ctx: UserContext, userUp: boolean, constrained: boolean): Promise<void> {
  const slice = sliceName(ctx.user.uid);
  if (userUp) await stopUserService(ctx);
  if (!constrained) return;
  ctx.debug(`processes remain in ${slice} (pam.kill-user-slice is off): reverting it with a reload`);
  await liftDeviceFilter(ctx);
  ctx.sd.removeRuntimeDropins(slice, DROPIN_PROPERTIES);
  await ctx.sd.reload();
}

async function stopUserService(ctx: UserContext): Promise<void> {
  try {
    await ctx.sd.stopUnit(userServiceName(ctx.user.uid));
  } catch (e) {
    ctx.warn(`warning: could not stop ${userServiceName(ctx.user.uid)}: ${(e as Error).message}`);
  }
}

/**
 * Lets every device through the slice's cgroup before a revert that keeps the slice up. systemd 252
 * replaces or removes the kernel's device program (eBPF, cgroup v2) only while the unit has a
 * device policy: after the revert (DevicePolicy=auto, no DeviceAllow) it leaves the last job's
 * program in place, so a process kept in the slice (kill-user-slice off) and every new one would
 * stay held to the last job's devices while systemd reports no restriction. DevicePolicy=auto with
 * char-* and block-* installs a program that refuses nothing, and the revert keeps it. (A slice
 * that stops needs none of this: its cgroup, and the program with it, goes away.) A failure is
 * only a warning: the revert still runs, and the stale program then stays until the next prolog
 * or the slice stops.
 */
async function liftDeviceFilter(ctx: UserContext): Promise<void> {
  const slice = sliceName(ctx.user.uid);
  try {
    await ctx.sd.setUnitProperties(slice, liftDevices(), { runtime: true });
  } catch (e) {
    ctx.warn(`warning: could not lift the device restrictions of ${slice} before its revert: ${(e as Error).message}`);
  }
}

/**
 * The units of the slice that hold its processes outside systemd's own user units (login scopes,
 * strays): what gets the signals. Never the slice as a whole: that would signal user-runtime-dir@'s
 * own control process too, when its stop is under way, and a user-runtime-dir@ killed so fails and
 * keeps systemd holding the slice with the last job's properties. Processes in the slice's own
 * cgroup, outside every unit (none, normally), are reached through the slice.
 */
function strayUnits(uid: number): string[] {
  const dir = userSliceCgroup(uid);
  const units = childCgroups(dir).filter((u) => !managerUnits(uid).includes(u) && pidsInCgroup(join(dir, u)).length > 0);
  if (pidsInCgroup(dir, childCgroups(dir)).length > 0) units.push(sliceName(uid));
  return units;
}

/**
 * Processes left in the slice outside user@UID.service (ssh sessions, strays) get SIGTERM,
 * then SIGKILL after pam.kill-slice-grace-time. Survivors fail the hook: the node drains.
 */
async function killSlice(ctx: UserContext): Promise<void> {
  const uid = ctx.user.uid;
  const slice = sliceName(uid);
  const dir = userSliceCgroup(uid);
  const pids = () => pidsInCgroup(dir, managerUnits(uid));
  const signal = async (sig: number) => {
    await Promise.all(
      strayUnits(uid).map(async (unit) => {
        try {
          await ctx.sd.killUnit(unit, sig);
        } catch (e) {
          // systemd freed the unit since we looked: its processes are gone with it.
          if (!(e instanceof DBusCallError && e.dbusName === NO_SUCH_UNIT)) throw e;
        }
      }),
    );
  };
  if (ctx.dryRun) {
    // Show what would be signalled; nothing dies in a dry run, so there is nothing to wait for.
    await signal(SIGTERM);
    return;
  }
  const outcome = await teardownSlice(
    {
      pids,
      kill: async (sig) => {
        ctx.debug(`${slice}: sending ${sig === SIGTERM ? "SIGTERM" : "SIGKILL"} to ${pids().join(" ")} (${strayUnits(uid).join(" ")})`);
        await signal(sig);
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
