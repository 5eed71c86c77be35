// What prolog and housekeeping share: the hook's context (broker, config, lock, skip rules) and
// applying the union of a user's jobs to user-UID.slice.

import { FluxClient } from "../flux/client";
import { type PamConfig, pamConfig } from "../flux/config";
import { Deadline } from "../flux/deadline";
import type { JobId } from "../flux/jobid";
import { formatF58 } from "../flux/jobid";
import { rankShare, unionR } from "../flux/r";
import { getConfig, getOwner, getRank, listJobs, lookupR, mapperLookup, runningOn } from "../flux/rpc";
import { SYSTEM_URI } from "../flux/uri";
import { acquireUidLock, type UidLock } from "../node/lock";
import { checkLockDir, lockDirFromEnv } from "../node/lock-dir";
import { type Passwd, getpwuid } from "../node/passwd";
import type { Systemd } from "../systemd/systemd";
import { type HookInput, hookTag, parseHookInput } from "./hook-env";
import { oneLine } from "../wrapper/reply";

export const LOCK_TIMEOUT_MS = 60_000;
const BROKER_BUDGET_MS = 30_000;

export interface HookOptions {
  dryRun: boolean;
}

export interface HookContext {
  tag: string;
  input: HookInput;
  user: Passwd;
  client: FluxClient;
  rank: number;
  config: PamConfig;
  lockDir: string;
  dryRun: boolean;
  deadline: Deadline;
  sd: Systemd;
  debug(text: string): void;
  warn(text: string): void;
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
): Promise<number> {
  const t0 = performance.now();
  const tag = hookTag(hook, env);
  let client: FluxClient | undefined;
  let lock: UidLock | undefined;
  let sd: Systemd | undefined;
  let sdPending: Promise<Systemd> | undefined;
  let debugOn = env.FLUX_PAM_SCRIPTS_DEBUG !== undefined;
  const say = (text: string) => process.stderr.write(`${tag}: ${text}\n`);
  try {
    const input = parseHookInput(env);
    let user = getpwuid(input.uid);
    if (!user) {
      // The prolog needs the name (the linger file is named after it) and fails closed. Tearing
      // down works by uid alone: a user deleted while their job ran must not drain the node.
      if (hook === "prolog") throw new HookError(`uid ${input.uid} has no passwd entry on this node`);
      user = { name: `uid ${input.uid}`, uid: input.uid, gid: -1, home: "" };
    }
    // The bus connection (loading the D-Bus library, auth, Hello) overlaps the broker's answers.
    sdPending = openSystemd(opts.dryRun);
    sdPending.catch(() => {}); // awaited below, or in finally
    const deadline = new Deadline(BROKER_BUDGET_MS);
    // Hooks run from flux-run-prolog/-housekeeping (via the IMP), whose FLUX_URI is Flux's own.
    const uri = env.FLUX_URI || SYSTEM_URI;
    client = await FluxClient.connect(uri, { timeoutMs: 5000 });
    const [cfg, rank, owner] = await Promise.all([
      getConfig(client, deadline.left("config.get")),
      getRank(client, deadline.left("attr.get")),
      getOwner(client, deadline.left("attr.get")),
    ]);
    const config = pamConfig(cfg);
    debugOn ||= config.debug;
    if (debugOn) say(`broker answered [+${(performance.now() - t0).toFixed(1)} ms]`);
    const lockDir = lockDirFromEnv(env);
    if (debugOn)
      say(`user=${user.name} uid=${user.uid} rank=${rank} owner=${owner} uri=${uri} lock-dir=${lockDir} ${JSON.stringify(config)}`);
    if (!opts.dryRun) {
      checkLockDir(lockDir, true);
      lock = await acquireUidLock(lockDir, input.uid, LOCK_TIMEOUT_MS);
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
      debug: (t) => debugOn && say(`${t} [+${(performance.now() - t0).toFixed(1)} ms]`),
      warn: (t) => say(oneLine(t)),
    });
    if (debugOn) say(`done in ${(performance.now() - t0).toFixed(1)} ms`);
    return 0;
  } catch (e) {
    // One line, whatever the message quotes (an id, a path, a reply): Flux shows it as the reason.
    say(oneLine((e as Error).message));
    return 1;
  } finally {
    lock?.release();
    client?.close();
    // Skipped or failed before the bus was needed: it may still be connecting.
    await (sd ?? (await sdPending?.catch(() => undefined)))?.close();
    if (debugOn) say(`closed in ${(performance.now() - t0).toFixed(1)} ms`);
  }
}

/** The user's other RUN jobs on this rank (the hook's own job excluded). */
export async function otherJobs(ctx: HookContext): Promise<JobId[]> {
  const jobs = await listJobs(ctx.client, { userids: [ctx.input.uid], rank: ctx.rank }, ctx.deadline.left("job-list.list"));
  return jobs.filter((j) => j.userid === ctx.input.uid && j.id !== ctx.input.jobid && runningOn(j, ctx.rank)).map((j) => j.id);
}

/**
 * Sets user-UID.slice to the union of the jobs' resources on this rank: R of every job
 * (pipelined on one connection), one sdexec-mapper.lookup, one SetUnitProperties.
 * Fails closed: a mapper error leaves the hook failing, never the slice silently unconstrained.
 */
export async function applyUnion(ctx: HookContext, ids: JobId[]): Promise<void> {
  // Each R is reduced to this rank's share as it arrives: a thousand full Rs are never held at once.
  const shares = await Promise.all(
    ids.map((id) => lookupR(ctx.client, id, ctx.deadline.left("job-info.lookup")).then((r) => rankShare(r, ctx.rank))),
  );
  const union = unionR(ctx.rank, shares);
  ctx.debug(`union of ${ids.length} job(s) [${ids.map((i) => formatF58(i)).join(" ")}] on rank ${ctx.rank}: ${JSON.stringify(union.execution.R_lite)}`);
  let props: Record<string, string>;
  try {
    props = await mapperLookup(ctx.client, union, ctx.deadline.left("sdexec-mapper.lookup"));
  } catch (e) {
    throw new HookError(
      `exec.sdexec-constrain-resources is on but the resource mapping failed, so ${sliceName(ctx.input.uid)} cannot be constrained: ${(e as Error).message}`,
    );
  }
  if (Object.keys(props).length === 0)
    throw new HookError(`sdexec-mapper.lookup mapped no resources on rank ${ctx.rank}: refusing to leave ${sliceName(ctx.input.uid)} unconstrained`);
  ctx.debug(`${sliceName(ctx.input.uid)}: ${Object.entries(props).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  await ctx.sd.setSliceProperties(sliceName(ctx.input.uid), props);
}
