// flux-pam session-open: put the login into PREFIX-PID.scope under user-UID.slice, if containment is up.

import { denialMessage } from "./denial";
import { FluxClient } from "../flux/client";
import { pamConfig } from "../flux/config";
import { Deadline } from "../flux/deadline";
import { getConfig } from "../flux/rpc";
import { brokerUri } from "../flux/uri";
import { getuid } from "../node/libc";
import { acquireUidLock, type UidLock } from "../node/lock";
import { checkLockDir, lockDirFromEnv } from "../node/lock-dir";
import { markerExists, NO_MARKER } from "../node/marker";
import { getpwnam } from "../node/passwd";
import { DEFAULT_SYSTEM_BUS, systemBusAddress } from "../systemd/bus";
import { openSystemd, type Systemd } from "../systemd/systemd";
import { Reply } from "../wrapper/reply";

export interface SessionOptions {
  scopePrefix: string;
  lockDir?: string;
  uri?: string;
  debug: boolean;
  /** seconds for the whole setup */
  timeout: number;
}

export const EXIT_SESSION_OK = 0;
export const EXIT_SESSION_ERR = 1;

/** The process the scope must hold: the PAM caller (the wrapper names it; under pam_exec it is our parent). */
function pamPid(env: Record<string, string | undefined>): number {
  const p = env.FLUX_PAM_PID;
  if (p === undefined) return process.ppid;
  if (!/^\d{1,10}$/.test(p) || Number(p) < 2) throw new Error(`FLUX_PAM_PID="${p}" is not a process id`);
  return Number(p);
}

export async function sessionOpen(opts: SessionOptions, env: Record<string, string | undefined>): Promise<number> {
  const t0 = performance.now();
  const reply = Reply.fromEnv(env, "flux-pam session-open", opts.debug);
  if (env.PAM_SERVICE === "systemd-user") {
    // user@UID.service's own PAM stack: scoping it would recurse.
    reply.result("success");
    return EXIT_SESSION_OK;
  }
  const user = env.PAM_USER ?? "";
  const fail = (why: string): number => {
    reply.log("err", `session denied for user ${user}: ${why}`);
    reply.say("error", denialMessage(user));
    reply.result("session-error");
    return EXIT_SESSION_ERR;
  };
  let pw;
  try {
    pw = getpwnam(user);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (!pw) return fail("unknown user");
  const deadline = new Deadline(opts.timeout * 1000);
  let client: FluxClient | undefined;
  let lock: UidLock | undefined;
  let sd: Systemd | undefined;
  let sdPending: Promise<Systemd> | undefined;
  try {
    const pid = pamPid(env);
    const uri = brokerUri(opts.uri, env.FLUX_URI, getuid());
    const lockDir = opts.lockDir ?? (getuid() === 0 ? lockDirFromEnv(env) : lockDirFromEnv({}));
    // DBUS_SYSTEM_BUS_ADDRESS as FLUX_URI: from a root caller only. A bus of the user's making
    // would answer "done" for a scope it never created, and the login would escape containment.
    // Within the session's budget: the wrapper kills us at its deadline, and then our reason is lost.
    // Connected while the broker is asked: loading the D-Bus library is most of a login's wait.
    const address = getuid() === 0 ? systemBusAddress(env) : DEFAULT_SYSTEM_BUS;
    sdPending = openSystemd(false, { address, timeoutMs: deadline.left("connect to the system bus") });
    sdPending.catch(() => {}); // awaited below, or closed in finally
    client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 2000) });
    // Read live, never cached: an admin turning it off takes effect at the next login.
    const config = pamConfig(await getConfig(client, deadline.left("config.get")));
    client.close();
    client = undefined;
    reply.log("debug", `user=${pw.name} uid=${pw.uid} pid=${pid} uri=${uri} lock-dir=${lockDir} manage-user-slice=${config.manageUserSlice}`);
    if (!config.manageUserSlice) {
      reply.result("success");
      return EXIT_SESSION_OK;
    }
    checkLockDir(lockDir, false);
    lock = await acquireUidLock(lockDir, pw.uid, deadline.left("lock"));
    if (!markerExists(lockDir, pw.uid)) return fail(NO_MARKER);
    const scope = `${opts.scopePrefix}-${pid}.scope`;
    sd = await sdPending;
    await sd.startScope(
      { name: scope, slice: `user-${pw.uid}.slice`, pids: [pid], description: `flux-pam session of ${pw.name}` },
      { timeoutMs: deadline.left("StartTransientUnit") },
    );
    lock.release();
    lock = undefined;
    if (reply.debug) {
      const t = sd.busTime();
      reply.log("debug", `pid ${pid} is in ${scope} under user-${pw.uid}.slice (${(performance.now() - t0).toFixed(1)} ms; systemd: ${t.calls} calls, ${t.waitedMs.toFixed(1)} ms waiting)`);
    }
    reply.env("XDG_RUNTIME_DIR", `/run/user/${pw.uid}`);
    reply.env("DBUS_SESSION_BUS_ADDRESS", `unix:path=/run/user/${pw.uid}/bus`);
    reply.result("success");
    return EXIT_SESSION_OK;
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    lock?.release();
    client?.close();
    // Not needed (slice management off) or failed before the scope: it may still be connecting.
    await (sd ?? (await sdPending?.catch(() => undefined)))?.close();
  }
}
