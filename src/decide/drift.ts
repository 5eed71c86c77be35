// Is a user's containment on this node what their running jobs call for? The drift, in words.

import { IdsetError, parseIdset } from "../flux/idset";
import { parseDeviceAllow } from "../systemd/properties";

/** The slice properties containment sets, as the mapper spells them. */
export const LIMITS = ["AllowedCPUs", "AllowedMemoryNodes", "DevicePolicy", "DeviceAllow"] as const;
export type Limits = Partial<Record<(typeof LIMITS)[number], string>>;

/** The containment limits among a unit's properties as systemd answered them ("" for one it left out). */
export function limitsOf(props: Record<string, string>): Limits {
  const out: Limits = {};
  for (const k of LIMITS) out[k] = props[k] ?? "";
  return out;
}

export interface UserNodeState {
  uid: number;
  /** RUN jobs of the user on this rank */
  jobs: number;
  marker: boolean;
  /** exec.sdexec-constrain-resources */
  constrain: boolean;
  /** pam.kill-user-slice: processes left after the last job are ended */
  killUserSlice: boolean;
  /** the slice's limits in force (undefined: systemd could not say) */
  limits?: Limits;
  /**
   * the slice's NeedDaemonReload: its files changed since systemd loaded it (undefined: not known).
   * With no runtime drop-in of a limit and this false, the limits in force are its files' own (an
   * administrator's drop-in in /etc): not flux-pam's.
   */
  needDaemonReload?: boolean;
  /** what the mapper gives for the union of the RUN jobs (with jobs and constraints only) */
  expected?: Limits;
  /** why `expected` could not be had */
  expectedError?: string;
  /** why `expected` would not hold on this node (decide/node-fit.ts): the prolog refuses it */
  misfit?: string;
  /** runtime drop-ins of the slice exist under /run/systemd/system.control */
  dropins: boolean;
  /** among them, drop-ins of the limits containment sets (limitDropins): flux-pam's own */
  limitDropins: boolean;
  /** the lock dir holds a record of the user's jobs' shares (uid.UID.shares) */
  shares: boolean;
  /** the lock dir holds the user's last failed hook (uid.UID.failed) */
  failure: boolean;
  /** user@UID.service's ActiveState (undefined: not asked or not known) */
  userService?: string;
  linger: boolean;
  /** login scopes that hold processes */
  scopes: { name: string; pids: number[] }[];
  /** processes in the slice outside user@ and the login scopes */
  strays: { cgroup: string; pids: number[] }[];
}

export interface Verdict {
  /** what is wrong, one phrase each; empty: consistent */
  drift: string[];
  /** worth saying, not wrong */
  notes: string[];
}

type Compare = "same" | "wider" | "narrower" | "different";

function ids(v: string): Set<number> | undefined {
  try {
    return new Set(parseIdset(v.trim().replace(/\s+/g, ",")));
  } catch (e) {
    if (e instanceof IdsetError) return undefined;
    throw e;
  }
}

/**
 * A DeviceAllow list as what it grants: one "PATH r|w|m" per permission, so that "wr" is "rw", a
 * path listed twice is the union of its entries (as systemd keeps them), and "rwm" is wider than "rw".
 */
function devices(v: string): Set<string> {
  return new Set(v === "" ? [] : parseDeviceAllow(v).flatMap(([p, perms]) => [...perms].map((c) => `${p} ${c}`)));
}

function compareSets<T>(inForce: Set<T>, want: Set<T>): Compare {
  const sub = [...inForce].every((x) => want.has(x));
  const sup = [...want].every((x) => inForce.has(x));
  return sub && sup ? "same" : sup ? "wider" : sub ? "narrower" : "different";
}

/** How a limit in force stands against the jobs' (an empty CPU or node set is no limit: all of them). */
export function compareLimit(name: (typeof LIMITS)[number], inForce = "", want = ""): Compare {
  if (inForce === want) return "same";
  switch (name) {
    case "AllowedCPUs":
    case "AllowedMemoryNodes": {
      if (inForce === "") return "wider";
      if (want === "") return "narrower";
      const a = ids(inForce);
      const b = ids(want);
      return a && b ? compareSets(a, b) : "different";
    }
    case "DevicePolicy": {
      const rank = (p: string) => (p === "strict" ? 2 : p === "closed" ? 1 : 0); // "auto" or "" lets every device through
      const a = rank(inForce);
      const b = rank(want);
      return a === b ? "same" : a < b ? "wider" : "narrower";
    }
    case "DeviceAllow":
      return compareSets(devices(inForce), devices(want));
  }
}

/** A limit that constrains anything: what an ended job's teardown must have lifted. */
function constrains(name: (typeof LIMITS)[number], v: string | undefined): boolean {
  if (v === undefined || v === "") return false;
  return name !== "DevicePolicy" || v !== "auto";
}

/** What of flux-pam's own the node holds for a user, as the teardown of their last job would find it. */
export type Traces = Pick<UserNodeState, "marker" | "shares" | "failure" | "limitDropins" | "limits" | "needDaemonReload"> & {
  /** login scopes under the site's prefix (PREFIX-PID.scope) */
  scopes: readonly unknown[];
};

/**
 * What flux-pam left for a user on this node, one phrase each; empty: nothing. A user without
 * jobs here whose slice holds nothing of flux-pam's (a lingering account's user manager, an
 * administrator's console session through pam_systemd) is not flux-pam's to judge or tear down.
 * Limits in force count when systemd holds them in memory only (a teardown cut short after its
 * drop-ins went: NeedDaemonReload=yes), or when it did not say; limits its files give (an
 * administrator's drop-in in /etc, NeedDaemonReload=no) do not.
 */
export function fluxPamTraces(t: Traces): string[] {
  const out: string[] = [];
  if (t.marker) out.push("a marker");
  if (t.shares) out.push("a record of its jobs' shares");
  if (t.failure) out.push("a failed hook's record");
  if (t.limitDropins) out.push("runtime drop-ins of its limits");
  if (!t.limitDropins && t.limits && t.needDaemonReload !== false && LIMITS.some((n) => constrains(n, t.limits![n])))
    out.push(t.needDaemonReload ? "limits held in systemd's memory only" : "limits");
  if (t.scopes.length) out.push("a login scope");
  return out;
}

const show = (v: string | undefined) => (v === undefined || v === "" ? "(none)" : v);

export function verdict(u: UserNodeState): Verdict {
  const drift: string[] = [];
  const notes: string[] = [];
  const slice = `user-${u.uid}.slice`;
  // (limits systemd could not tell may be flux-pam's: judged as ever)
  if (u.jobs === 0 && u.limits !== undefined && fluxPamTraces(u).length === 0) {
    const held = [...u.strays.map((s) => `processes in ${s.cgroup}: ${s.pids.join(" ")}`), ...(u.userService === "active" || u.userService === "activating" ? [`user@${u.uid}.service ${u.userService}`] : [])];
    if (held.length || u.linger)
      notes.push(`${slice} holds nothing of flux-pam's (no job, marker, record, limit, drop-in of one or login scope of its own): not managed here, left alone by reconcile${held.length ? `: ${held.join("; ")}` : ""}${u.linger ? " (linger is enabled: a job of this user here would be refused)" : ""}`);
    return { drift, notes };
  }
  if (u.jobs > 0 && !u.marker) drift.push("running job without a marker: logins are refused");
  if (u.jobs === 0 && u.marker) drift.push("marker without a running job");
  if (u.linger) drift.push("linger is enabled: its user manager outlives the jobs (loginctl disable-linger)");
  if (u.jobs > 0 && u.constrain) {
    if (u.expectedError !== undefined) drift.push(`the jobs' resources cannot be mapped: ${u.expectedError}`);
    if (u.misfit !== undefined) drift.push(`the jobs' resources do not fit this node: ${u.misfit}`);
    else if (u.expected && u.limits)
      for (const name of LIMITS) {
        const c = compareLimit(name, u.limits[name], u.expected[name]);
        if (c === "same") continue;
        const words = c === "different" ? "limits differ from the jobs" : `limits ${c} than the jobs`;
        drift.push(`${words}: ${name}=${show(u.limits[name])}, jobs hold ${show(u.expected[name])}`);
      }
  }
  if (u.jobs > 0 && u.constrain && !u.limitDropins && u.limits && LIMITS.some((n) => constrains(n, u.limits![n])))
    drift.push("systemd holds the slice's limits in memory only (no runtime drop-in of them): the next daemon-reload lifts them");
  if (u.jobs === 0) {
    const limited = u.limits ? LIMITS.filter((n) => constrains(n, u.limits![n])) : [];
    const fromFiles = !u.limitDropins && u.needDaemonReload === false;
    const shown = limited.map((n) => `${n}=${u.limits![n]}`).join(" ");
    // (the unit's own files' limits: what a teardown cannot and must not lift)
    if (limited.length && fromFiles) notes.push(`limits from ${slice}'s own unit files, not flux-pam's: ${shown}`);
    else if (limited.length) drift.push(`limits left from ended jobs: ${shown}`);
    // (only the four limits' drop-ins count as traces here: a runtime property of another name may
    // be an administrator's, though the teardown removes those a prolog may set too)
    if (u.limitDropins) drift.push(`runtime drop-ins of its limits left: /run/systemd/system.control/${slice}.d`);
    // Without kill-user-slice the site keeps what outlives the last job (uncontained): said, not drift.
    const left = (what: string) => (u.killUserSlice ? drift : notes).push(u.killUserSlice ? what : `${what} (kept: pam.kill-user-slice is off)`);
    for (const s of u.scopes) if (s.pids.length) left(`login scope ${s.name} without a running job: ${s.pids.join(" ")}`);
    for (const s of u.strays) left(`processes in ${s.cgroup} without a running job: ${s.pids.join(" ")}`);
    if (u.userService === "active" || u.userService === "activating") drift.push(`user@${u.uid}.service is ${u.userService} without a running job`);
  } else {
    if (u.userService === "failed") notes.push(`user@${u.uid}.service failed to start (journalctl -u user@${u.uid}.service); the slice still contains the logins`);
    // Still in the slice, so held to the jobs' limits: only outside the login scopes.
    for (const s of u.strays) notes.push(`processes in ${s.cgroup}, outside user@ and the login scopes (still held by the slice): ${s.pids.join(" ")}`);
  }
  if (u.limits === undefined) notes.push(`systemd did not say what ${slice} holds: its limits were not compared`);
  return { drift, notes };
}
