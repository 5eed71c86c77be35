// flux-pam reconcile [USER] [--dry-run]: make this node match the broker, user by user, with the
// hooks' own rules, under the per-uid lock: a user with RUN jobs here gets the union of their
// resources and the marker (what a prolog does), a user without one the last job's teardown (what
// housekeeping does). What a missed or killed hook left behind is repaired; what is right is left
// alone, without a write.

import { fluxPamTraces, type Limits, LIMITS, limitsOf } from "../decide/drift";
import { FluxClient } from "../flux/client";
import { Deadline } from "../flux/deadline";
import { formatF58, type JobId } from "../flux/jobid";
import { listJobs, runningOn } from "../flux/rpc";
import { brokerUri } from "../flux/uri";
import { clearHookFailure } from "../node/hook-failure";
import { getuid, writeText } from "../node/libc";
import { acquireUidLock, type UidLock } from "../node/lock";
import { checkLockDir, lockDirFromEnv, lockDirHas, lockDirUids } from "../node/lock-dir";
import { markerExists } from "../node/marker";
import { getpwnam, getpwuid, type Passwd } from "../node/passwd";
import { scanSlices, slicesWithDropins } from "../node/slice-scan";
import type { Systemd } from "../systemd/types";
import { brokerBasics, explainRefusal, guestRole, lockTimeoutMs, refuseHiddenJobs, sliceName, type UserContext, userServiceName } from "./containment";
import { tearDown } from "./housekeeping";
import { uidArgument, UsageError } from "./pam-args";
import { DEFAULT_SCOPE_PREFIX } from "./pam-words";
import { setUpSlice } from "./prolog";

export interface ReconcileOptions {
  user?: string;
  dryRun: boolean;
  uri?: string;
  scopePrefix?: string;
  /** seconds, for the broker's answers: before the users, then for each user once their lock is held (the lock has its own wait) */
  timeout: number;
}

/** What each write of the systemd client did, in words, for the report. */
const WRITES: Partial<Record<keyof Systemd, string>> = {
  setSliceProperties: "limits set to the jobs' union",
  setUnitProperties: "properties set",
  enqueueStart: "user@ start queued",
  startUnit: "unit started",
  stopUnit: "user@ stopped",
  enqueueStop: "slice stop queued",
  killUnit: "processes signalled",
  resetFailedUnit: "failed unit reset",
  reload: "systemd reloaded",
  removeRuntimeDropins: "runtime drop-ins removed",
  revertUnit: "unit reverted",
};

/**
 * The client, with every call that changed systemd noted in `did` once it succeeded (a call that
 * failed is in the FAILED line's reason, not in what was done; removeRuntimeDropins only when it
 * removed any).
 */
function noting(sd: Systemd, did: string[]): Systemd {
  const note = (words: string) => {
    if (!did.includes(words)) did.push(words);
  };
  return new Proxy(sd, {
    get(target, name, receiver) {
      const v = Reflect.get(target, name, receiver);
      const words = WRITES[name as keyof Systemd];
      if (typeof v !== "function" || words === undefined) return typeof v === "function" ? v.bind(target) : v;
      return (...args: unknown[]) => {
        const r = v.apply(target, args);
        if (r instanceof Promise)
          return r.then((value: unknown) => {
            note(words);
            return value;
          });
        if (!(name === "removeRuntimeDropins" && Array.isArray(r) && r.length === 0)) note(words);
        return r;
      };
    },
  });
}

/** How many users are reconciled at once: systemd's jobs for them overlap, the bus stays one. */
const PARALLEL_USERS = 8;

/** `f` of every item, at most `n` at a time; the results in the items' order. */
async function inBatches<T, R>(items: readonly T[], n: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await f(items[i]!);
      }
    }),
  );
  return results;
}

function out(line: string): void {
  writeText(1, `${line}\n`);
}

export async function reconcile(opts: ReconcileOptions, env: Record<string, string | undefined>): Promise<number> {
  const uri = brokerUri(opts.uri, env.FLUX_URI, getuid());
  const prefix = opts.scopePrefix ?? DEFAULT_SCOPE_PREFIX;
  let only: number | undefined;
  if (opts.user !== undefined) {
    const uid = uidArgument(opts.user, "reconcile");
    const pw = uid !== undefined ? undefined : getpwnam(opts.user);
    if (!pw && uid === undefined) throw new UsageError(`reconcile: no such user ${JSON.stringify(opts.user)}`);
    only = pw?.uid ?? uid;
  }
  const lockDir = lockDirFromEnv(env);
  const deadline = new Deadline(opts.timeout * 1000);
  const { openSystemd } = await import("../systemd/systemd");
  const sdPending = openSystemd(opts.dryRun);
  sdPending.catch(() => {});
  let client: FluxClient | undefined;
  let sd: Systemd | undefined;
  let guest: ReturnType<typeof guestRole>;
  try {
    client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 5000) });
    const { config, rank, owner } = await brokerBasics(client, deadline);
    guest = guestRole(uri, owner, config);
    if (!config.manageUserSlice) {
      out("reconcile: pam.manage-user-slice is off: nothing is contained on this node, nothing to do");
      return 0;
    }
    refuseHiddenJobs(guest, config);
    const running = (await listJobs(client, { rank, ...(only === undefined ? {} : { userids: [only] }) }, deadline.left("job-list.list"))).filter((j) => runningOn(j, rank));
    // Everyone the node holds anything for: jobs here, markers and records, slices, drop-ins.
    const scans = new Map(scanSlices(prefix, only).map((s) => [s.uid, s]));
    const uids = new Set<number>([...running.map((j) => j.userid), ...lockDirUids(lockDir, ["active", "shares", "failed"]), ...scans.keys(), ...slicesWithDropins()]);
    if (only !== undefined) uids.add(only);
    const users = [...uids].filter((u) => (only === undefined || u === only) && u !== 0 && u !== owner).sort((a, b) => a - b);
    if (only === 0 || only === owner) out(`reconcile: uid ${only} is ${only === 0 ? "root" : "the instance owner"}: the hooks never manage its slice`);
    if (!opts.dryRun) checkLockDir(lockDir, true);
    sd = await sdPending;
    // Users are independent (each under their own lock): a few at a time, reported in uid order.
    // (A dry run goes one by one, so that its printed calls stay grouped by user.)
    const results = await inBatches(users, opts.dryRun ? 1 : PARALLEL_USERS, (uid) =>
      reconcileUser({ client: client!, sd: sd!, rank, config, lockDir, dryRun: opts.dryRun, budgetMs: opts.timeout * 1000, uid, guest, scopes: scans.get(uid)?.scopes ?? [] }),
    );
    for (const r of results) out(r.line);
    const failed = results.filter((r) => !r.ok).length;
    if (users.length === 0 && !(only === 0 || only === owner)) out("reconcile: nothing of any user's on this node");
    return failed > 0 ? 1 : 0;
  } catch (e) {
    out(`reconcile: ${explainRefusal(e, guest)}`);
    return 1;
  } finally {
    client?.close();
    await (sd ?? (await sdPending.catch(() => undefined)))?.close();
  }
}

interface UserRun {
  client: FluxClient;
  sd: Systemd;
  rank: number;
  config: UserContext["config"];
  lockDir: string;
  dryRun: boolean;
  /** each user's budget for the broker's answers and systemd's waits, from the moment their lock is held */
  budgetMs: number;
  uid: number;
  guest: ReturnType<typeof guestRole>;
  /** the user's login scopes (PREFIX-PID.scope) the cgroup tree holds */
  scopes: readonly unknown[];
}

/**
 * The limits systemd holds for `slice`, when they are also what its runtime drop-ins say: only then
 * may a write of the same be skipped. Limits in memory alone (drop-ins gone: NeedDaemonReload, a
 * teardown's stop under way) are lifted by the next reload or load: undefined, so they are written.
 */
async function limitsOnDisk(sd: Systemd, slice: string): Promise<Limits | undefined> {
  try {
    const [status, props] = await Promise.all([sd.unitStatus(slice), sd.unitProperties(slice, { names: LIMITS })]);
    if (!status || status.needDaemonReload || status.job !== undefined || sd.runtimeDropins(slice, LIMITS).length === 0) return undefined;
    return limitsOf(props);
  } catch {
    return undefined;
  }
}

/**
 * What of flux-pam's the node holds for a user without jobs here (fluxPamTraces): a slice with none
 * (a lingering account's user manager, a console login through pam_systemd, an administrator's
 * limits in its files) is not ours to tear down. A slice systemd cannot tell about, with nothing
 * else of ours, is not torn down either: a stalled manager is no licence to stop a stranger's slice.
 */
async function tracesOf(run: UserRun): Promise<string[]> {
  const slice = sliceName(run.uid);
  const [read, status] = await Promise.all([
    run.sd.unitProperties(slice, { names: LIMITS }).catch((e: Error) => e),
    run.sd.unitStatus(slice).catch((e: Error) => e),
  ]);
  const known = !(read instanceof Error) && !(status instanceof Error);
  const traces = fluxPamTraces({
    marker: lockDirHas(run.lockDir, run.uid, "active"),
    shares: lockDirHas(run.lockDir, run.uid, "shares"),
    failure: lockDirHas(run.lockDir, run.uid, "failed"),
    limitDropins: run.sd.runtimeDropins(slice, LIMITS).length > 0,
    ...(known ? { limits: limitsOf(read), needDaemonReload: status?.needDaemonReload ?? false } : {}),
    scopes: run.scopes,
  });
  if (!known && traces.length === 0) {
    const why = read instanceof Error ? read : (status as Error);
    throw new Error(`systemd did not say what ${slice} holds, and nothing else of flux-pam's is there: left alone, not torn down (${why.message})`);
  }
  return traces;
}

/** One user, under their lock: the jobs asked again (a hook may have run since), then set up or torn down. */
async function reconcileUser(run: UserRun): Promise<{ ok: boolean; line: string }> {
  const { uid } = run;
  const pw = getpwuid(uid);
  const who = `${pw?.name ?? `uid ${uid}`} (uid ${uid})`;
  let lock: UidLock | undefined;
  const did: string[] = [];
  const warnings: string[] = [];
  let marked = false;
  try {
    if (!run.dryRun) lock = await acquireUidLock(run.lockDir, uid, lockTimeoutMs(run.config));
    // Started once the lock is held, as the hooks' is: a hook's teardown that held the lock past
    // the budget (a long kill-slice-grace-time) must not leave this user's work no time at all.
    const deadline = new Deadline(run.budgetMs);
    const jobs = (await listJobs(run.client, { userids: [uid], rank: run.rank }, deadline.left("job-list.list")))
      .filter((j) => j.userid === uid && runningOn(j, run.rank))
      .map((j): JobId => j.id);
    const user: Passwd = pw ?? { name: `uid ${uid}`, uid, gid: -1, home: "" };
    const ctx: UserContext = {
      tag: "flux-pam-reconcile",
      user,
      client: run.client,
      rank: run.rank,
      config: run.config,
      lockDir: run.lockDir,
      dryRun: run.dryRun,
      deadline,
      waitBudget: deadline,
      sd: noting(run.sd, did),
      debug: () => {},
      warn: (t) => warnings.push(t.replace(/^warning: /, "")),
    };
    marked = run.dryRun ? false : markerExists(run.lockDir, uid);
    let what: string;
    if (jobs.length > 0) {
      // Set up with the prolog's rules (its passwd entry needed: linger is asked by name).
      if (!pw) throw new Error(`uid ${uid} has no passwd entry on this node, and runs ${jobs.length} job(s) here`);
      const userState = run.sd.unitProgress(userServiceName(uid)).catch(() => undefined);
      const [linger, limits] = await Promise.all([run.sd.linger({ name: pw.name, uid }), run.config.constrainResources ? limitsOnDisk(run.sd, sliceName(uid)) : undefined]);
      await setUpSlice(ctx, jobs, { linger, userState, ...(limits ? { limits } : {}) });
      if (!run.dryRun && !marked) did.unshift("marker created");
      what = `${jobs.length} running job${jobs.length === 1 ? "" : "s"} here (${jobs.map((j) => formatF58(j)).join(" ")})`;
    } else {
      const traces = await tracesOf(run);
      if (traces.length === 0) return { ok: true, line: `${who}: no running job here: left alone (${sliceName(uid)} holds nothing of flux-pam's)` };
      await tearDown(ctx);
      if (!run.dryRun && marked) did.unshift("marker removed");
      what = "no running job here";
    }
    if (!run.dryRun) clearHookFailure(run.lockDir, uid);
    const outcome = run.dryRun ? "the calls above would be made" : did.length ? `repaired: ${did.join(", ")}` : "consistent, nothing to do";
    return { ok: true, line: `${who}: ${what}: ${outcome}${warnings.length ? ` (warning: ${warnings.join("; ")})` : ""}` };
  } catch (e) {
    // (a teardown removes the marker before anything else: say so when it failed after that)
    if (!run.dryRun && marked && !lockDirHas(run.lockDir, uid, "active")) did.unshift("marker removed");
    return { ok: false, line: `${who}: FAILED: ${explainRefusal(e, run.guest)}${did.length ? ` (done before: ${did.join(", ")})` : ""}` };
  } finally {
    lock?.release();
  }
}
