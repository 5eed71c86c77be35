// flux-pam check-user USER: would USER get in here, and why. The first thing to run when someone cannot log in.

import { decideAdmission, type GuestCandidate } from "../decide/admission";
import { LIMITS } from "../decide/drift";
import { FluxClient } from "../flux/client";
import { type PamConfig, pamConfig } from "../flux/config";
import { Deadline } from "../flux/deadline";
import { formatRanges } from "../flux/idset";
import { formatF58, jobId } from "../flux/jobid";
import { getConfig, getOwner, getRank, type Job, JobState, jobStateName, listJobs } from "../flux/rpc";
import { brokerUri, childLocalUri } from "../flux/uri";
import { childAllowsGuests } from "../flux/user-jobs";
import { jobsElsewhere } from "../flux/jobs-elsewhere";
import { placeItem } from "../decide/job-hint";
import { getuid, writeText } from "../node/libc";
import { type Passwd, getpwnam } from "../node/passwd";
import { checkLockDir, DEFAULT_LOCK_DIR, lockDirFromEnv } from "../node/lock-dir";
import { markerExists, NO_MARKER } from "../node/marker";
import { type HookFailure, hookUnit, readHookFailure } from "../node/hook-failure";

export interface CheckUserOptions {
  user: string;
  json: boolean;
  allowGuestUser: boolean;
  uri?: string;
  timeout: number;
}

interface JobReport {
  id: string;
  f58: string;
  userid: number;
  state: string;
  ranks: string;
  uri?: string;
  counts: boolean;
}

/** This node's containment state for the user: what the prolog set up, what systemd has. */
interface NodeReport {
  lockDir: string;
  lockDirOk: boolean;
  lockDirProblem?: string;
  marker?: boolean;
  markerProblem?: string;
  /** the last prolog/housekeeping of the user that failed here (until one succeeds), and its unit */
  lastFailure?: HookFailure & { unit: string };
  lastFailureProblem?: string;
  systemd?: {
    slice: Record<string, string>;
    userService: string;
    linger: boolean;
    lingerSource: string;
  };
  systemdProblem?: string;
}

interface Report {
  user: string;
  uid?: number;
  admitted: boolean;
  as?: "owner" | "guest";
  reason: string;
  uri: string;
  rank?: number;
  owner?: number;
  jobs: JobReport[];
  guest: { job: string; ok: boolean; why?: string }[];
  /** the user's running jobs on other ranks of the instance: what a denied login is told */
  elsewhere?: { id: string; f58: string; nodelist: string }[];
  elsewhereProblem?: string;
  config?: PamConfig;
  /** the broker's [pam] table as session-open and the hooks would refuse it (the account step does not read it) */
  configError?: string;
  /** why session-open refuses a login the account step admits (with pam.manage-user-slice on) */
  sessionRefused?: string;
  node?: NodeReport;
  error?: string;
}

/** Jobs elsewhere listed by name in the text report. */
const ELSEWHERE_SHOWN = 10;

async function nodeReport(pw: Passwd, env: Record<string, string | undefined>): Promise<NodeReport> {
  const lockDir = getuid() === 0 ? lockDirFromEnv(env) : DEFAULT_LOCK_DIR;
  const r: NodeReport = { lockDir, lockDirOk: true };
  try {
    checkLockDir(lockDir, false);
  } catch (e) {
    r.lockDirOk = false;
    r.lockDirProblem = (e as Error).message;
  }
  try {
    r.marker = markerExists(lockDir, pw.uid);
  } catch (e) {
    r.markerProblem = (e as Error).message;
  }
  try {
    const f = readHookFailure(lockDir, pw.uid);
    if (f) r.lastFailure = { ...f, unit: hookUnit(f) };
  } catch (e) {
    r.lastFailureProblem = (e as Error).message;
  }
  // Loaded only here: the D-Bus library is not needed to decide a login.
  const { openSystemd } = await import("../systemd/systemd");
  let sd;
  try {
    sd = await openSystemd(false, { timeoutMs: 2000 });
    const [props, state, linger] = await Promise.all([
      sd.unitProperties(`user-${pw.uid}.slice`, { names: LIMITS }),
      sd.unitState(`user@${pw.uid}.service`),
      sd.linger({ name: pw.name, uid: pw.uid }),
    ]);
    r.systemd = {
      slice: Object.fromEntries(LIMITS.map((k) => [k, props[k] ?? ""])),
      userService: state.activeState,
      linger: linger.enabled,
      lingerSource: linger.source,
    };
  } catch (e) {
    r.systemdProblem = (e as Error).message;
  } finally {
    await sd?.close();
  }
  return r;
}

function jobReport(j: Job): JobReport {
  return {
    id: j.id.toString(),
    f58: formatF58(j.id),
    userid: j.userid,
    state: jobStateName(j.state),
    ranks: formatRanges(j.ranks),
    ...(j.uri ? { uri: j.uri } : {}),
    counts: j.state === JobState.RUN,
  };
}

export async function checkUser(opts: CheckUserOptions, env: Record<string, string | undefined>): Promise<number> {
  const uri = brokerUri(opts.uri, env.FLUX_URI, getuid());
  const report: Report = { user: opts.user, admitted: false, reason: "", uri, jobs: [], guest: [] };
  const pw = getpwnam(opts.user);
  if (!pw) {
    report.reason = "no such user (NSS lookup found none): PAM answers PAM_USER_UNKNOWN";
    return emit(report, opts.json);
  }
  report.uid = pw.uid;
  const deadline = new Deadline(opts.timeout * 1000);
  let client: FluxClient | undefined;
  try {
    client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 2000) });
    const [rank, owner, cfg] = await Promise.all([
      getRank(client, deadline.left("attr.get")),
      getOwner(client, deadline.left("attr.get")),
      getConfig(client, deadline.left("config.get")),
    ]);
    Object.assign(report, { rank, owner });
    try {
      report.config = pamConfig(cfg);
    } catch (e) {
      // session-open and the hooks refuse it; the account step never reads [pam]: decided on below
      report.configError = (e as Error).message;
    }
    const userids = opts.allowGuestUser ? [pw.uid, owner] : [pw.uid];
    // RUN and CLEANUP both shown: a CLEANUP job is the usual "but my job is there" surprise.
    const [all, elsewhere] = await Promise.all([
      listJobs(client, { userids, rank, states: [JobState.RUN, JobState.CLEANUP], annotations: true }, deadline.left("job-list.list")),
      jobsElsewhere(client, pw.uid, rank, deadline.left("job-list.list")).catch((e: Error) => e),
    ]);
    if (elsewhere instanceof Error) report.elsewhereProblem = elsewhere.message;
    else report.elsewhere = elsewhere.jobs.map((j) => ({ id: j.id.toString(), f58: formatF58(j.id), nodelist: j.nodelist! }));
    report.jobs = all.filter((j) => j.userid === pw.uid).map(jobReport);
    const running = all.filter((j) => j.state === JobState.RUN);
    const { admission, candidates } = await decideAdmission(
      { uid: pw.uid, owner, rank, jobs: running, allowGuestUser: opts.allowGuestUser },
      childLocalUri,
      (child, owner) => childAllowsGuests(child, owner, deadline),
    );
    report.node = await nodeReport(pw, env);
    report.guest = candidates.map((c: GuestCandidate) => ({ job: formatF58(c.job.id), ok: c.rejected === undefined, ...(c.rejected ? { why: c.rejected } : {}) }));
    switch (admission.kind) {
      case "owner":
        Object.assign(report, { admitted: true, as: "owner", reason: `${admission.jobs.length} running job(s) of ${pw.name} on rank ${rank}` });
        break;
      case "guest":
        Object.assign(report, { admitted: true, as: "guest", reason: `guest of instance ${formatF58(admission.job.id)} (${admission.childUri})` });
        break;
      case "deny":
        report.reason = report.jobs.length
          ? `${pw.name} has jobs on rank ${rank}, but none in RUN`
          : `${pw.name} has no running job on rank ${rank}`;
    }
    const refused = report.admitted ? sessionRefusal(report, report.node) : undefined;
    if (refused) {
      Object.assign(report, { admitted: false, sessionRefused: refused, reason: `the account step admits (${report.reason}), but session-open refuses the login: ${refused}` });
    }
  } catch (e) {
    report.error = (e as Error).message;
    report.reason = `denied: the broker could not be asked (${report.error})`;
  } finally {
    client?.close();
  }
  return emit(report, opts.json);
}

/**
 * Why session-open (pam_flux.so's session line) would refuse a login the account step admitted, as
 * it says it, or undefined: a [pam] table it cannot read, and with pam.manage-user-slice on an
 * unsafe lock dir or no marker (a session line is what README and doctor require then).
 */
function sessionRefusal(r: Report, n: NodeReport | undefined): string | undefined {
  if (r.configError !== undefined) return `the broker's configuration is refused: ${r.configError}`;
  if (!r.config?.manageUserSlice || !n) return undefined;
  if (!n.lockDirOk) return n.lockDirProblem;
  if (n.markerProblem !== undefined) return n.markerProblem;
  if (!n.marker) return NO_MARKER;
  return undefined;
}

/** The user manager's state; a failed one is a start the prolog queued (and did not wait for) that did not succeed. */
function userServiceText(uid: number, state: string): string {
  return state === "failed" ? `failed (its last start did not succeed: journalctl -u user@${uid}.service)` : state;
}

function emit(r: Report, json: boolean): number {
  if (json) writeText(1, `${JSON.stringify(r, null, 2)}\n`);
  else {
    const lines = [
      `user:     ${r.user}${r.uid === undefined ? "" : ` (uid ${r.uid})`}`,
      `verdict:  ${r.admitted ? `ADMITTED as ${r.as}` : "DENIED"}: ${r.reason}`,
      `broker:   ${r.uri}${r.rank === undefined ? "" : ` (rank ${r.rank}, instance owner uid ${r.owner})`}`,
    ];
    if (r.jobs.length) {
      lines.push("jobs here:");
      for (const j of r.jobs) lines.push(`  ${j.f58}  ${j.state.padEnd(8)} ranks ${j.ranks}${j.counts ? "" : "  (does not admit: not RUN)"}`);
    } else if (r.rank !== undefined) lines.push("jobs here: none");
    if (r.elsewhere?.length) {
      const items = r.elsewhere.map((e) => placeItem({ id: jobId(BigInt(e.id)), nodelist: e.nodelist }) ?? `(a nodelist that is not a hostlist) (${e.f58})`);
      const more = items.length > ELSEWHERE_SHOWN ? ` and ${items.length - ELSEWHERE_SHOWN} more` : "";
      lines.push(`elsewhere: ${items.slice(0, ELSEWHERE_SHOWN).join(", ")}${more}`);
    } else if (r.elsewhereProblem) lines.push(`elsewhere: not known: ${r.elsewhereProblem}`);
    for (const g of r.guest) lines.push(`guest via ${g.job}: ${g.ok ? "yes" : `no: ${g.why}`}`);
    if (r.node) {
      const n = r.node;
      lines.push(`lock dir: ${n.lockDirOk ? `${n.lockDir}: ok` : n.lockDirProblem}`);
      lines.push(
        `marker:   ${n.markerProblem ?? (n.marker ? "present (containment set up: logins may enter the slice)" : "absent (no prolog ran here, or the last job ended): sessions are refused when manage-user-slice is on")}`,
      );
      if (n.lastFailure) {
        const f = n.lastFailure;
        lines.push(`failed:   ${f.hook} of ${f.job} at ${new Date(f.time * 1000).toISOString()}: ${f.message} (journalctl -u ${f.unit})`);
      } else if (n.lastFailureProblem) lines.push(`failed:   ${n.lastFailureProblem}`);
      if (n.systemd) {
        const sl = n.systemd.slice;
        lines.push(
          `slice:    user-${r.uid}.slice ${LIMITS.map((k) => `${k}=${sl[k] || "(none)"}`).join(" ")}`,
          `systemd:  user@${r.uid}.service ${userServiceText(r.uid!, n.systemd.userService)}; linger ${n.systemd.linger ? "ENABLED (prologs fail: loginctl disable-linger)" : "off"} (${n.systemd.lingerSource})`,
        );
      } else lines.push(`systemd:  not asked: ${n.systemdProblem}`);
    }
    if (r.configError) lines.push(`config:   refused by session-open and the hooks: ${r.configError}`);
    if (r.config) {
      const c = r.config;
      lines.push(
        `config:   pam.manage-user-slice=${c.manageUserSlice} pam.kill-user-slice=${c.killUserSlice} pam.kill-slice-grace-time=${c.killSliceGraceTime}s pam.debug=${c.debug}`,
        `          exec.sdexec-constrain-resources=${c.constrainResources} access.allow-guest-user=${c.allowGuestUser} access.allow-root-owner=${c.allowRootOwner}`,
      );
    }
    if (r.node) lines.push(`see also: flux-pam status ${r.user} (the slice against the jobs, the logins, any drift; flux-pam reconcile ${r.user} repairs it)`);
    writeText(1, `${lines.join("\n")}\n`);
  }
  return r.admitted ? 0 : 1;
}
