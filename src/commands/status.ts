// flux-pam status [USER]: every contained user and login on this node, the slice's limits against
// the union of their running jobs, and what drifted. One broker round trip for all users.

import { type Limits, LIMITS, limitsOf, type UserNodeState, type Verdict, verdict } from "../decide/drift";
import { FluxClient } from "../flux/client";
import { type PamConfig, pamConfig } from "../flux/config";
import { Deadline } from "../flux/deadline";
import { formatF58, type JobId } from "../flux/jobid";
import { mapUnion, sharesOf } from "../flux/map-union";
import { readShares } from "../node/job-shares";
import { getConfig, getHostname, getOwner, getRank, type Job, listJobs, runningOn } from "../flux/rpc";
import { brokerUri } from "../flux/uri";
import { type HookFailure, hookUnit, readHookFailure } from "../node/hook-failure";
import { getuid, writeText } from "../node/libc";
import { DEFAULT_LOCK_DIR, lockDirFromEnv, lockDirHas, lockDirUids } from "../node/lock-dir";
import { markerExists } from "../node/marker";
import { getpwnam, getpwuid } from "../node/passwd";
import { type ProcInfo, procInfo } from "../node/proc-info";
import { type SliceScan, scanSlices, slicesWithDropins } from "../node/slice-scan";
import { limitsMisfit } from "../decide/node-fit";
import { NODE_IDS } from "../node/cpus";
import { runtimeDropins } from "../systemd/dropins";
import type { Systemd } from "../systemd/types";
import { DEFAULT_SCOPE_PREFIX } from "./pam-words";
import { uidArgument, UsageError } from "./pam-args";

export interface StatusOptions {
  user?: string;
  json: boolean;
  uri?: string;
  scopePrefix?: string;
  /** seconds */
  timeout: number;
}

export const EXIT_CONSISTENT = 0;
export const EXIT_DRIFT = 1;

/** The report's JSON shape (documented in flux-pam(1)); `version` changes only when it does. */
export interface StatusReport {
  version: 1;
  uri: string;
  rank?: number;
  host?: string;
  owner?: number;
  manageUserSlice?: boolean;
  constrainResources?: boolean;
  /** the broker could not be asked: jobs unknown, nothing judged */
  error?: string;
  consistent: boolean;
  users: UserReport[];
}

export interface UserReport {
  uid: number;
  name?: string;
  consistent: boolean;
  drift: string[];
  notes: string[];
  jobs: { id: string; f58: string; state: "RUN" }[];
  marker: boolean;
  /** the slice's limits in force; null when systemd could not say */
  limits: Limits | null;
  /** what the mapper gives for the union of the RUN jobs; null without jobs or constraints */
  expected: Limits | null;
  userService: string | null;
  linger: boolean;
  logins: { scope: string; processes: ProcInfo[] }[];
  strays: { cgroup: string; processes: ProcInfo[] }[];
  lastFailure?: HookFailure & { unit: string };
}

interface BrokerView {
  rank: number;
  host: string;
  owner: number;
  config: PamConfig;
  jobs: Job[];
  client: FluxClient;
}

async function askBroker(uri: string, deadline: Deadline): Promise<BrokerView> {
  const client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 2000) });
  try {
    const [cfg, rank, owner, host] = await Promise.all([
      getConfig(client, deadline.left("config.get")),
      getRank(client, deadline.left("attr.get")),
      getOwner(client, deadline.left("attr.get")),
      getHostname(client, deadline.left("attr.get")).catch(() => ""),
    ]);
    const jobs = (await listJobs(client, { rank }, deadline.left("job-list.list"))).filter((j) => runningOn(j, rank));
    return { rank, host, owner, config: pamConfig(cfg), jobs, client };
  } catch (e) {
    client.close();
    throw e;
  }
}

export async function status(opts: StatusOptions, env: Record<string, string | undefined>): Promise<number> {
  const uri = brokerUri(opts.uri, env.FLUX_URI, getuid());
  const prefix = opts.scopePrefix ?? DEFAULT_SCOPE_PREFIX;
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) throw new UsageError(`status: --scope-prefix "${prefix}" is not usable in a unit name`);
  let only: number | undefined;
  if (opts.user !== undefined) {
    const uid = uidArgument(opts.user, "status");
    const pw = uid !== undefined ? getpwuid(uid) : getpwnam(opts.user);
    if (!pw && uid === undefined) throw new UsageError(`status: no such user ${JSON.stringify(opts.user)}`);
    only = pw?.uid ?? uid;
  }
  const lockDir = getuid() === 0 ? lockDirFromEnv(env) : DEFAULT_LOCK_DIR;
  const deadline = new Deadline(opts.timeout * 1000);
  const report: StatusReport = { version: 1, uri, consistent: true, users: [] };

  // The bus connects while the broker answers (loading the D-Bus library costs milliseconds).
  const { openSystemd } = await import("../systemd/systemd");
  const sdPending = openSystemd(false, { timeoutMs: 2000 });
  sdPending.catch(() => {});
  let broker: BrokerView | undefined;
  let sd: Systemd | undefined;
  try {
    try {
      broker = await askBroker(uri, deadline);
      Object.assign(report, {
        rank: broker.rank,
        host: broker.host || undefined,
        owner: broker.owner,
        manageUserSlice: broker.config.manageUserSlice,
        constrainResources: broker.config.constrainResources,
      });
    } catch (e) {
      report.error = `the broker could not be asked: ${(e as Error).message}`;
    }
    sd = await sdPending.catch((e: Error) => {
      // Without systemd no limit, drop-in or user@ state is judged: "consistent" would be a guess.
      report.error = `${report.error ? `${report.error}; ` : ""}systemd could not be asked: ${e.message}`;
      return undefined;
    });

    const scans = new Map<number, SliceScan>(scanSlices(prefix, only).map((s) => [s.uid, s]));
    const dropins = new Set(slicesWithDropins());
    const jobsOf = new Map<number, JobId[]>();
    for (const j of broker?.jobs ?? []) {
      // (pushed, not copied: a copy per job is quadratic, megabytes of garbage for 1000 jobs)
      const ids = jobsOf.get(j.userid);
      if (ids) ids.push(j.id);
      else jobsOf.set(j.userid, [j.id]);
    }
    const uids = new Set<number>([...jobsOf.keys(), ...lockDirUids(lockDir, ["active", "shares", "failed"]), ...scans.keys(), ...dropins]);
    const skipped = (uid: number) => uid !== only && (uid === 0 || uid === broker?.owner);
    const users = [...uids].filter((u) => (only === undefined || u === only) && !skipped(u)).sort((a, b) => a - b);
    if (only !== undefined && !users.includes(only)) users.push(only);

    const constrain = broker?.config.constrainResources ?? false;
    await Promise.all(
      users.map(async (uid) => {
        const ids = jobsOf.get(uid) ?? [];
        const scan = scans.get(uid) ?? { uid, scopes: [], userServicePids: [], strays: [] };
        const [expected, props, needDaemonReload, unit, linger] = await Promise.all([
          broker && constrain && ids.length ? expectedLimits(broker, lockDir, uid, ids, deadline) : undefined,
          sd?.unitProperties(`user-${uid}.slice`, { names: LIMITS }).then(limitsOf, () => undefined),
          sd?.unitStatus(`user-${uid}.slice`).then((st) => st?.needDaemonReload ?? false, () => undefined),
          sd?.unitState(`user@${uid}.service`).then((s) => s.activeState, () => undefined),
          lingerOf(uid),
        ]);
        let marker = false;
        try {
          marker = markerExists(lockDir, uid);
        } catch {
          // a marker that is not a file is itself drift: check-user names it
        }
        const state: UserNodeState = {
          uid,
          jobs: ids.length,
          marker,
          constrain,
          killUserSlice: broker?.config.killUserSlice ?? false,
          limits: props,
          ...(needDaemonReload === undefined ? {} : { needDaemonReload }),
          ...(expected instanceof Error ? { expectedError: expected.message } : expected ? { expected } : {}),
          ...(expected && !(expected instanceof Error) ? misfitOf(expected) : {}),
          dropins: dropins.has(uid),
          limitDropins: dropins.has(uid) && runtimeDropins(`user-${uid}.slice`, LIMITS).length > 0,
          shares: lockDirHas(lockDir, uid, "shares"),
          failure: lockDirHas(lockDir, uid, "failed"),
          userService: unit,
          linger,
          scopes: scan.scopes,
          strays: scan.strays,
        };
        const v: Verdict = broker ? verdict(state) : { drift: [], notes: ["the broker was not asked: nothing judged"] };
        if (broker && !broker.config.manageUserSlice) {
          v.notes.unshift("pam.manage-user-slice is off: nothing is contained on this node");
          v.drift = v.drift.filter((d) => d.startsWith("processes in") || d.startsWith("linger"));
        }
        let lastFailure: UserReport["lastFailure"];
        try {
          const f = readHookFailure(lockDir, uid);
          if (f) lastFailure = { ...f, unit: hookUnit(f) };
        } catch (e) {
          v.notes.push((e as Error).message);
        }
        if (lastFailure) v.notes.push(`last failed hook: ${lastFailure.hook} of ${lastFailure.job}: ${lastFailure.message} (journalctl -u ${lastFailure.unit})`);
        report.users.push({
          uid,
          ...(getpwuid(uid)?.name ? { name: getpwuid(uid)!.name } : {}),
          consistent: v.drift.length === 0,
          drift: v.drift,
          notes: v.notes,
          jobs: ids.map((id) => ({ id: id.toString(), f58: formatF58(id), state: "RUN" as const })),
          marker,
          limits: props ?? null,
          expected: expected instanceof Error || expected === undefined ? null : expected,
          userService: unit ?? null,
          linger,
          logins: scan.scopes.map((s) => ({ scope: s.name, processes: s.pids.map(procInfo) })),
          strays: scan.strays.map((s) => ({ cgroup: s.cgroup, processes: s.pids.map(procInfo) })),
          ...(lastFailure ? { lastFailure } : {}),
        });
      }),
    );
  } finally {
    broker?.client.close();
    await sd?.close();
  }
  report.users.sort((a, b) => a.uid - b.uid);
  report.consistent = report.error === undefined && report.users.every((u) => u.consistent);
  writeText(1, opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  return report.consistent ? EXIT_CONSISTENT : EXIT_DRIFT;
}

/** Whether the mapper's answer would hold on this node (what the prolog checks), for the verdict. */
function misfitOf(expected: Limits): { misfit?: string } {
  try {
    const misfit = limitsMisfit(expected, NODE_IDS);
    return misfit ? { misfit } : {};
  } catch (e) {
    return { misfit: (e as Error).message };
  }
}

/** What the mapper gives for the union of the user's RUN jobs (the hooks' record of shares read, never written). */
function expectedLimits(b: BrokerView, lockDir: string, uid: number, ids: JobId[], deadline: Deadline): Promise<Limits | Error> {
  return sharesOf(b.client, b.rank, ids, readShares(lockDir, uid, b.rank), new Map(), deadline)
    .then((shares) => mapUnion(b.client, b.rank, shares, deadline))
    .then(limitsOf, (e: Error) => e);
}

async function lingerOf(uid: number): Promise<boolean> {
  const pw = getpwuid(uid);
  if (!pw) return false;
  try {
    return (await import("../systemd/logind")).lingerFileExists(pw.name);
  } catch {
    return false;
  }
}

function limitsText(l: Limits | null): string {
  if (!l) return "(not known)";
  const set = LIMITS.filter((k) => l[k] && !(k === "DevicePolicy" && l[k] === "auto"));
  return set.length ? set.map((k) => `${k}=${l[k]}`).join(" ") : "none";
}

function proc(p: ProcInfo): string {
  return `${p.pid} ${p.command}${p.tty ? ` ${p.tty}` : ""}${p.start ? ` since ${p.start}` : ""}${p.remote ? ` from ${p.remote}` : ""}`;
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  const where = r.rank === undefined ? r.uri : `rank ${r.rank}${r.host ? ` (${r.host})` : ""}, ${r.uri}`;
  lines.push(`flux-pam status: ${where}: ${r.users.length} user${r.users.length === 1 ? "" : "s"}, ${r.error ? "not judged" : r.consistent ? "consistent" : "DRIFT"}`);
  if (r.error) lines.push(`error: ${r.error}`);
  for (const u of r.users) {
    lines.push("", `${u.name ?? `uid ${u.uid}`} (uid ${u.uid}): ${u.consistent ? "consistent" : "DRIFT"}`);
    for (const d of u.drift) lines.push(`  drift:  ${d}`);
    for (const n of u.notes) lines.push(`  note:   ${n}`);
    lines.push(`  jobs:   ${u.jobs.length ? u.jobs.map((j) => j.f58).join(" ") : "none running here"}`);
    lines.push(`  marker: ${u.marker ? "present" : "absent"}`);
    lines.push(`  slice:  ${limitsText(u.limits)}${u.expected ? `; the jobs hold ${limitsText(u.expected)}` : ""}`);
    lines.push(`  user@:  ${u.userService ?? "(not known)"}; linger ${u.linger ? "ENABLED" : "off"}`);
    for (const l of u.logins) for (const p of l.processes) lines.push(`  login:  ${l.scope}: ${proc(p)}`);
    for (const s of u.strays) for (const p of s.processes) lines.push(`  stray:  ${s.cgroup}: ${proc(p)}`);
  }
  return `${lines.join("\n")}\n`;
}
