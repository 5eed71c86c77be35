// flux-pam account: may PAM_USER log in here? pam_exec-compatible; pam_flux.so reads the reply.

import { denialMessage } from "./denial";
import { decideAdmission } from "../decide/admission";
import { jobHint } from "../decide/job-hint";
import { FluxClient } from "../flux/client";
import { Deadline } from "../flux/deadline";
import { brokerUri, childLocalUri } from "../flux/uri";
import { jobsElsewhere } from "../flux/jobs-elsewhere";
import { childAllowsGuests, userJobs } from "../flux/user-jobs";
import { formatF58 } from "../flux/jobid";
import { getuid } from "../node/libc";
import { getpwnam } from "../node/passwd";
import { Reply } from "../wrapper/reply";

export interface AccountOptions {
  allowGuestUser: boolean;
  debug: boolean;
  uri?: string;
  /** seconds for the whole decision */
  timeout: number;
  /** tell a denied user where their running jobs are (off with no-job-hint, or silent: PAM_SILENT) */
  jobHint: boolean;
}

export const EXIT_ADMIT = 0;
export const EXIT_DENY = 1;

/** The hint's share of the decision's budget: the denial never waits on it for longer. */
export const HINT_SHARE = 0.2;

export async function account(opts: AccountOptions, env: Record<string, string | undefined>): Promise<number> {
  const reply = Reply.fromEnv(env, "flux-pam account", opts.debug);
  const user = env.PAM_USER;
  if (user === undefined || user === "") {
    reply.log("err", "PAM_USER is not set: run under pam_exec or pam_flux.so, or set PAM_USER");
    reply.result("deny");
    return EXIT_DENY;
  }
  let pw;
  try {
    pw = getpwnam(user);
  } catch (e) {
    // NSS itself failed (sssd down, ...): not "unknown", and never admitted.
    reply.log("err", `access denied for user ${JSON.stringify(user)}: ${(e as Error).message}`);
    reply.say("error", denialMessage(user));
    reply.result("deny");
    return EXIT_DENY;
  }
  if (!pw) {
    reply.log("err", `unknown user ${JSON.stringify(user)}`);
    reply.result("user-unknown");
    return EXIT_DENY;
  }
  const deny = (why: string | undefined, hint?: string): number => {
    reply.log(why === undefined ? "notice" : "err", `access denied for user ${pw.name} (uid=${pw.uid})${why ? `: ${why}` : ""}`);
    reply.say("error", denialMessage(pw.name));
    if (hint !== undefined) {
      reply.say("info", hint);
      reply.log("debug", `told ${pw.name}: ${hint}`);
    }
    reply.result("deny");
    return EXIT_DENY;
  };

  const uri = brokerUri(opts.uri, env.FLUX_URI, getuid());
  const deadline = new Deadline(opts.timeout * 1000);
  reply.log(
    "debug",
    `user=${pw.name} uid=${pw.uid} service=${env.PAM_SERVICE ?? ""} rhost=${env.PAM_RHOST ?? ""} uri=${uri} allow-guest-user=${opts.allowGuestUser}`,
  );
  let client: FluxClient | undefined;
  try {
    client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 2000) });
    const node = await userJobs(client, pw.uid, opts.allowGuestUser, deadline);
    const { admission } = await decideAdmission(
      { uid: pw.uid, owner: node.owner, rank: node.rank, jobs: node.jobs, allowGuestUser: opts.allowGuestUser },
      childLocalUri,
      (child, owner) => childAllowsGuests(child, owner, deadline),
    );
    switch (admission.kind) {
      case "owner":
        reply.log("debug", `access granted for user ${pw.name} (uid=${pw.uid}) as job owner: ${admission.jobs.map((j) => formatF58(j.id)).join(" ")}`);
        reply.result("owner");
        return EXIT_ADMIT;
      case "guest":
        reply.log("debug", `access granted for user ${pw.name} (uid=${pw.uid}) as guest of ${formatF58(admission.job.id)} at ${admission.childUri}`);
        reply.result("guest");
        return EXIT_ADMIT;
      default:
        return deny(undefined, opts.jobHint ? await hintFor(client, pw, node.rank, deadline, opts.timeout, reply) : undefined);
    }
  } catch (e) {
    // Any failure to reach or understand Flux denies: a login is never let through on an error.
    return deny((e as Error).message);
  } finally {
    client?.close();
  }
}

/**
 * Where the denied user's running jobs are, as one line, or undefined. Its own small share of the
 * budget: a broker slow to answer it costs the denial that share at most, and the line is dropped.
 */
async function hintFor(client: FluxClient, pw: { name: string; uid: number }, rank: number, deadline: Deadline, timeout: number, reply: Reply): Promise<string | undefined> {
  try {
    const ms = Math.min(deadline.left("the job hint"), Math.max(timeout * 1000 * HINT_SHARE, 1));
    const { here, jobs } = await jobsElsewhere(client, pw.uid, rank, ms);
    return jobHint(pw.name, here, jobs.map((j) => ({ id: j.id, nodelist: j.nodelist! })));
  } catch (e) {
    reply.log("debug", `no job hint for ${pw.name}: ${(e as Error).message}`);
    return undefined;
  }
}
