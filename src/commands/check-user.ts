// flux-pam check-user USER: would USER get in here, and why. The first thing to run when someone cannot log in.

import { decideAdmission, type GuestCandidate } from "../decide/admission";
import { FluxClient } from "../flux/client";
import { type PamConfig, pamConfig } from "../flux/config";
import { Deadline } from "../flux/deadline";
import { formatIdset } from "../flux/idset";
import { formatF58 } from "../flux/jobid";
import { getConfig, getOwner, getRank, type Job, JobState, jobStateName, listJobs } from "../flux/rpc";
import { brokerUri, childLocalUri } from "../flux/uri";
import { childAllowsGuests } from "../flux/user-jobs";
import { getuid } from "../node/libc";
import { getpwnam } from "../node/passwd";

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
  config?: PamConfig;
  error?: string;
}

function jobReport(j: Job): JobReport {
  return {
    id: j.id.toString(),
    f58: formatF58(j.id),
    userid: j.userid,
    state: jobStateName(j.state),
    ranks: formatIdset(j.ranks),
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
    report.config = pamConfig(cfg);
    const userids = opts.allowGuestUser ? [pw.uid, owner] : [pw.uid];
    // RUN and CLEANUP both shown: a CLEANUP job is the usual "but my job is there" surprise.
    const all = await listJobs(client, { userids, rank, states: [JobState.RUN, JobState.CLEANUP] }, deadline.left("job-list.list"));
    report.jobs = all.filter((j) => j.userid === pw.uid).map(jobReport);
    const running = all.filter((j) => j.state === JobState.RUN);
    const { admission, candidates } = await decideAdmission(
      { uid: pw.uid, owner, rank, jobs: running, allowGuestUser: opts.allowGuestUser },
      childLocalUri,
      (child) => childAllowsGuests(child, deadline),
    );
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
  } catch (e) {
    report.error = (e as Error).message;
    report.reason = `denied: the broker could not be asked (${report.error})`;
  } finally {
    client?.close();
  }
  return emit(report, opts.json);
}

function emit(r: Report, json: boolean): number {
  if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
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
    for (const g of r.guest) lines.push(`guest via ${g.job}: ${g.ok ? "yes" : `no: ${g.why}`}`);
    if (r.config) {
      const c = r.config;
      lines.push(
        `config:   pam.manage-user-slice=${c.manageUserSlice} pam.kill-user-slice=${c.killUserSlice} pam.kill-slice-grace-time=${c.killSliceGraceTime}s pam.debug=${c.debug}`,
        `          exec.sdexec-constrain-resources=${c.constrainResources} access.allow-guest-user=${c.allowGuestUser}`,
      );
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  return r.admitted ? 0 : 1;
}
