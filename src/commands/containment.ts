// What prolog and housekeeping share: the hook's context (broker, config, lock, skip rules) and
// applying the union of a user's jobs to user-UID.slice.

import { FluxClient } from "../flux/client";
import { type PamConfig, pamConfig } from "../flux/config";
import { Deadline } from "../flux/deadline";
import type { JobId } from "../flux/jobid";
import { formatF58 } from "../flux/jobid";
import { sharesOf } from "../flux/map-union";
import { type R, type RankShare, unionR } from "../flux/r";
import { FluxRpcError } from "../flux/errors";
import { getConfig, getOwner, getRank, listJobs, lookupR, mapperLookup, runningOn } from "../flux/rpc";
import { SYSTEM_URI } from "../flux/uri";
import { clearHookFailure, recordHookFailure } from "../node/hook-failure";
import { getuid, writeText } from "../node/libc";
import { readShares, writeShares } from "../node/job-shares";
import { acquireUidLock, type UidLock } from "../node/lock";
import { checkLockDir, lockDirFromEnv } from "../node/lock-dir";
import { type Passwd, getpwuid } from "../node/passwd";
import type { Systemd } from "../systemd/systemd";
import { type HookInput, hookTag, parseHookInput, unitJobId } from "./hook-env";
import { compareLimit, LIMITS, type Limits } from "../decide/drift";
import { limitsMisfit } from "../decide/node-fit";
import { NODE_IDS } from "../node/cpus";
import { oneLine } from "../wrapper/reply";

const LOCK_TIMEOUT_MS = 60_000;
const BROKER_BUDGET_MS = 30_000;
const EPERM = 1;
/** How long a teardown waits for its slice to empty after SIGKILL, past the grace time. */
export const AFTER_KILL_MS = 10_000;

/**
 * How long a hook (or reconcile) waits for a user's lock: a minute, or, where the site's
 * pam.kill-slice-grace-time is longer, long enough for another hook to finish a whole teardown
 * that waits out the grace time and SIGKILL's wait, with 20 s to spare.
 */
export function lockTimeoutMs(config: PamConfig): number {
  return Math.max(LOCK_TIMEOUT_MS, config.killSliceGraceTime * 1000 + AFTER_KILL_MS + 20_000);
}

/** Why the broker refuses a hook that is not an owner of the instance, and the fix. */
export function notOwner(uri: string, owner: number): string {
  return `root is not an owner of the Flux instance at ${uri} (owner uid ${owner}): set allow-root-owner = true in [access] of the system instance's config (flux-config-pam(5))`;
}

export interface HookOptions {
  dryRun: boolean;
}

/** What the containment steps need about one user on this node: the hooks' and reconcile's. */
export interface UserContext {
  tag: string;
  user: Passwd;
  client: FluxClient;
  rank: number;
  config: PamConfig;
  lockDir: string;
  dryRun: boolean;
  deadline: Deadline;
  /**
   * The command's own time budget, when it has one that its waits for systemd must keep to
   * (reconcile's --timeout). A hook has none: its deadline is the broker's budget (started again
   * once the lock is held), and a wait for systemd cut short by it would bring back what the wait
   * avoids.
   */
  waitBudget?: Deadline;
  sd: Systemd;
  debug(text: string): void;
  warn(text: string): void;
}

/** A hook's context: the user's, and the job the hook runs for. */
export interface HookContext extends UserContext {
  input: HookInput;
  /** The job's own R, asked with the hook's first requests (a prolog's; a job's R never changes). */
  ownR?: Promise<R>;
}

/** A failure that ends the hook: one line on stderr, exit 1 (Flux drains the node). */
export class HookError extends Error {
  override name = "HookError";
}

export function sliceName(uid: number): string {
  return `user-${uid}.slice`;
}

export function userServiceName(uid: number): string {
  return `user@${uid}.service`;
}

/** The warning a hook prints when it finds user@UID.service failed: an earlier start did not succeed. */
export function userServiceFailed(uid: number, then: string): string {
  const unit = userServiceName(uid);
  return `warning: ${unit} is failed: an earlier start did not succeed (journalctl -u ${unit}; slice containment still applies); ${then}`;
}

/** What every containment command starts from: the broker's config, this rank, the instance owner. */
export async function brokerBasics(client: FluxClient, deadline: Deadline): Promise<{ config: PamConfig; rank: number; owner: number }> {
  const [cfg, rank, owner] = await Promise.all([
    getConfig(client, deadline.left("config.get")),
    getRank(client, deadline.left("attr.get")),
    getOwner(client, deadline.left("attr.get")),
  ]);
  return { config: pamConfig(cfg), rank, owner };
}

/** Where the broker treats us as a guest, not an owner (root without allow-root-owner): what to tell. */
export function guestRole(uri: string, owner: number, config: PamConfig): { uri: string; owner: number } | undefined {
  const me = getuid();
  return me !== owner && !(me === 0 && config.allowRootOwner) ? { uri, owner } : undefined;
}

/** A guest of a private instance is shown only its own jobs: a teardown would see none left. */
export function refuseHiddenJobs(guest: { uri: string; owner: number } | undefined, config: PamConfig): void {
  if (guest && config.privateMode) throw new HookError(`access.private-mode hides other users' jobs from this command: ${notOwner(guest.uri, guest.owner)}`);
}

/** A refusal by the broker (EPERM) of a caller that is only a guest, with what to set. */
export function explainRefusal(e: unknown, guest: { uri: string; owner: number } | undefined): string {
  const message = (e as Error).message;
  return guest && e instanceof FluxRpcError && e.errnum === EPERM ? `${message}: ${notOwner(guest.uri, guest.owner)}` : message;
}

/**
 * Runs a hook body with the broker connected, the config read, the per-uid lock held and
 * the skip rules applied. Every error becomes one stderr line prefixed with the hook's tag.
 */
export async function runHook(
  hook: "prolog" | "housekeeping",
  env: Record<string, string | undefined>,
  opts: HookOptions,
  openSystemd: (dryRun: boolean) => Promise<Systemd>,
  body: (ctx: HookContext) => Promise<void>,
  /** ask for the job's own R with the first requests (the prolog needs it; root's jobs are skipped) */
  askOwnR = false,
): Promise<number> {
  const t0 = performance.now();
  const tag = hookTag(hook, env);
  let client: FluxClient | undefined;
  let lock: UidLock | undefined;
  let sd: Systemd | undefined;
  let sdPending: Promise<Systemd> | undefined;
  let debugOn = env.FLUX_PAM_SCRIPTS_DEBUG !== undefined;
  // write(2), not process.stderr: Bun builds that stream on first use, which costs a hook milliseconds.
  const say = (text: string) => {
    try {
      writeText(2, `${tag}: ${text}\n`);
    } catch {
      // stderr is gone: there is no one left to tell, and the exit code still says it
    }
  };
  let input: HookInput | undefined;
  let lockDir: string | undefined;
  /** set once we know whether the broker treats us as an owner; a refusal is explained then */
  let guestOf: { uri: string; owner: number } | undefined;
  try {
    input = parseHookInput(env);
    lockDir = lockDirFromEnv(env);
    let user = getpwuid(input.uid);
    if (!user) {
      // The prolog needs the name (the linger file is named after it) and fails closed. Tearing
      // down works by uid alone: a user deleted while their job ran must not drain the node.
      if (hook === "prolog") throw new HookError(`uid ${input.uid} has no passwd entry on this node`);
      user = { name: `uid ${input.uid}`, uid: input.uid, gid: -1, home: "" };
    }
    // The broker's budget, for the answers asked before the lock (a fresh one after it, below).
    let deadline = new Deadline(BROKER_BUDGET_MS);
    // Hooks run from flux-run-prolog/-housekeeping (via the IMP), whose FLUX_URI is Flux's own.
    const uri = env.FLUX_URI || SYSTEM_URI;
    client = await FluxClient.connect(uri, { timeoutMs: 5000 });
    const basics = brokerBasics(client, deadline);
    // The job's own R needs nothing the broker has yet to say: asked now, it is back by the time
    // the union needs it, instead of a round trip after the lock.
    const ownR = askOwnR && input.uid !== 0 ? lookupR(client, input.jobid, deadline.left("job-info.lookup")) : undefined;
    ownR?.catch(() => {}); // awaited in the body, unless the hook is skipped or fails first
    // Only now the bus: its connection (loading the D-Bus code, auth, Hello) overlaps the broker's
    // answers, and the milliseconds of JavaScript it costs do not hold back the requests above.
    sdPending = openSystemd(opts.dryRun);
    sdPending.catch(() => {}); // awaited below, or in finally
    const { config, rank, owner } = await basics;
    debugOn ||= config.debug;
    if (debugOn) say(`broker answered [+${(performance.now() - t0).toFixed(1)} ms]`);
    guestOf = guestRole(uri, owner, config);
    if (debugOn)
      say(`user=${user.name} uid=${user.uid} rank=${rank} owner=${owner} uri=${uri} lock-dir=${lockDir} ${JSON.stringify(config)}`);
    if (!opts.dryRun) {
      checkLockDir(lockDir, true);
      lock = await acquireUidLock(lockDir, input.uid, lockTimeoutMs(config));
      // The wait for the lock is another hook's teardown, not the broker's time: what is asked
      // from here on gets a whole budget (a hook behind a teardown that waited out a 30 s grace
      // time would otherwise find its budget spent and fail, draining a node that was fine).
      deadline = new Deadline(BROKER_BUDGET_MS);
    }
    if (input.uid === owner) {
      if (debugOn) say(`skipped: ${user.name} is the instance owner`);
      return 0;
    }
    if (input.uid === 0) {
      // root's slice holds the admins' own logins: never constrained, never killed by a job's end.
      if (debugOn) say("skipped: root's jobs do not manage user-0.slice");
      return 0;
    }
    if (!config.manageUserSlice) {
      if (debugOn) say("skipped: pam.manage-user-slice is off");
      return 0;
    }
    refuseHiddenJobs(guestOf, config);
    sd = await sdPending;
    if (debugOn) say(`systemd connected [+${(performance.now() - t0).toFixed(1)} ms]`);
    await body({
      tag,
      input,
      user,
      client,
      rank,
      config,
      lockDir,
      dryRun: opts.dryRun,
      deadline,
      sd,
      ...(ownR ? { ownR } : {}),
      debug: (t) => debugOn && say(`${t} [+${(performance.now() - t0).toFixed(1)} ms]`),
      warn: (t) => say(oneLine(t)),
    });
    if (!opts.dryRun) clearHookFailure(lockDir, input.uid);
    if (debugOn) {
      const t = sd.busTime();
      say(`done in ${(performance.now() - t0).toFixed(1)} ms (systemd: ${t.calls} calls, ${t.waitedMs.toFixed(1)} ms waiting; bus connect ${t.connectMs.toFixed(1)} ms)`);
    }
    return 0;
  } catch (e) {
    // One line, whatever the message quotes (an id, a path, a reply): Flux shows it as the reason.
    const message = oneLine(explainRefusal(e, guestOf));
    say(message);
    if (input && lockDir && !opts.dryRun) noteFailure(hook, input, lockDir, message, (t) => debugOn && say(t));
    return 1;
  } finally {
    lock?.release();
    client?.close();
    // Skipped or failed before the bus was needed: it may still be connecting.
    await (sd ?? (await sdPending?.catch(() => undefined)))?.close();
    if (debugOn) say(`closed in ${(performance.now() - t0).toFixed(1)} ms`);
  }
}

/**
 * Leaves the failure where check-user and status find it (DIR/uid.UID.failed), if the lock dir is
 * one we may write in. Best effort, and said only at debug: the hook fails either way, with its own
 * one line of reason.
 */
function noteFailure(hook: "prolog" | "housekeeping", input: HookInput, lockDir: string, message: string, debug: (t: string) => void): void {
  try {
    checkLockDir(lockDir, false);
    recordHookFailure(lockDir, input.uid, { hook, job: unitJobId(input.jobid), time: Math.floor(Date.now() / 1000), message });
  } catch (e) {
    debug(`the failure could not be recorded: ${(e as Error).message}`);
  }
}

/** The user's other RUN jobs on this rank (the hook's own job excluded). */
export async function otherJobs(ctx: HookContext): Promise<JobId[]> {
  const jobs = await listJobs(ctx.client, { userids: [ctx.input.uid], rank: ctx.rank }, ctx.deadline.left("job-list.list"));
  return jobs.filter((j) => j.userid === ctx.input.uid && j.id !== ctx.input.jobid && runningOn(j, ctx.rank)).map((j) => j.id);
}

/**
 * This rank's share of each job. A running job's R does not change: the shares earlier hooks
 * recorded here are reused (not in a dry run, whose lock dir is not checked), and with `record`
 * the record is brought up to these jobs. Each R looked up is reduced to this rank's share as it
 * arrives: a thousand full Rs are never held at once.
 */
export async function jobShares(ctx: UserContext, ids: readonly JobId[], asked: ReadonlyMap<bigint, Promise<RankShare>>, record: boolean): Promise<RankShare[]> {
  const uid = ctx.user.uid;
  const known = ctx.dryRun ? new Map<bigint, RankShare>() : readShares(ctx.lockDir, uid, ctx.rank);
  const shares = await sharesOf(ctx.client, ctx.rank, ids, known, asked, ctx.deadline);
  if (record && (known.size !== ids.length || !ids.every((id) => known.has(id)))) {
    try {
      writeShares(ctx.lockDir, uid, ctx.rank, new Map(ids.map((id, i) => [id, shares[i]!])));
    } catch (e) {
      // Only the next hook's speed depends on it: it asks the broker for every R again.
      ctx.warn(`warning: could not record the jobs' shares: ${(e as Error).message}`);
    }
  }
  return shares;
}

/**
 * The mapper's properties for the union of the jobs' resources on this rank: the R of every job not
 * yet recorded here (sharesOf), then sdexec-mapper.lookup (or its answer the caller already has).
 * Fails closed: a mapper error, or a mapping to nothing, fails the caller, never leaves the slice
 * silently unconstrained.
 */
export async function unionProperties(
  ctx: UserContext,
  ids: JobId[],
  asked: ReadonlyMap<bigint, Promise<RankShare>> = new Map(),
  /** the mapper's answer for exactly this union, when the caller asked it already */
  mapped?: Promise<Record<string, string>>,
): Promise<Record<string, string>> {
  const slice = sliceName(ctx.user.uid);
  const union = unionR(ctx.rank, await jobShares(ctx, ids, asked, !ctx.dryRun));
  ctx.debug(`union of ${ids.length} job(s) [${ids.map((i) => formatF58(i)).join(" ")}] on rank ${ctx.rank}: ${JSON.stringify(union.execution.R_lite)}`);
  let props: Record<string, string>;
  try {
    props = await (mapped ?? mapperLookup(ctx.client, union, ctx.deadline.left("sdexec-mapper.lookup")));
  } catch (e) {
    throw new HookError(`exec.sdexec-constrain-resources is on but the resource mapping failed, so ${slice} cannot be constrained: ${(e as Error).message}`);
  }
  if (Object.keys(props).length === 0) throw new HookError(`sdexec-mapper.lookup mapped no resources on rank ${ctx.rank}: refusing to leave ${slice} unconstrained`);
  const misfit = limitsMisfit(props, NODE_IDS);
  if (misfit) throw new HookError(`the jobs' resources do not fit this node, so ${slice} cannot be constrained: ${misfit}`);
  return props;
}

/**
 * Sets user-UID.slice to the union of the jobs' resources on this rank (unionProperties), with one
 * SetUnitProperties, unless `inForce` (the slice's limits now, when the caller read them) already
 * is exactly that: then nothing is written.
 */
export async function applyUnion(
  ctx: UserContext,
  ids: JobId[],
  asked: ReadonlyMap<bigint, Promise<RankShare>> = new Map(),
  inForce?: Limits,
  mapped?: Promise<Record<string, string>>,
): Promise<void> {
  const slice = sliceName(ctx.user.uid);
  const props = await unionProperties(ctx, ids, asked, mapped);
  const same = inForce !== undefined && Object.keys(props).every((k) => (LIMITS as readonly string[]).includes(k)) && LIMITS.every((k) => compareLimit(k, inForce[k], props[k]) === "same");
  if (same) {
    ctx.debug(`${slice}: already held to ${Object.entries(props).map(([k, v]) => `${k}=${v}`).join(" ")}`);
    return;
  }
  ctx.debug(`${slice}: ${Object.entries(props).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  await ctx.sd.setSliceProperties(slice, props);
}
