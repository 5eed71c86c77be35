// What the node holds for users, read from the cgroup tree and /run: each user-UID.slice with its
// login scopes, user@UID.service and stray processes, and the slices with runtime drop-ins.

import { join } from "node:path";
import { cgroup2Mount, childCgroups as names, pidsInCgroup } from "./cgroup";

/** Where SetUnitProperties(runtime=true) writes its drop-ins. */
export const RUNTIME_CONTROL_DIR = "/run/systemd/system.control";

export interface SliceScan {
  uid: number;
  /** PREFIX-PID.scope cgroups under the slice, with their processes */
  scopes: { name: string; pids: number[] }[];
  /** processes of user@UID.service */
  userServicePids: number[];
  /** processes in the slice outside user@UID.service and the login scopes */
  strays: { cgroup: string; pids: number[] }[];
}

const SLICE = /^user-(\d{1,10})\.slice$/;

/** The uids of user-UID.slice names in `entries`. */
function sliceUids(entries: string[], suffix = ""): number[] {
  const out: number[] = [];
  for (const n of entries) {
    const m = SLICE.exec(suffix ? n.slice(0, -suffix.length) : n);
    if (m && (!suffix || n.endsWith(suffix)) && Number(m[1]) <= 0xffffffff) out.push(Number(m[1]));
  }
  return out;
}

/** The uids whose slice has runtime drop-ins (RUNTIME_CONTROL_DIR/user-UID.slice.d). */
export function slicesWithDropins(dir = RUNTIME_CONTROL_DIR): number[] {
  return sliceUids(names(dir), ".d");
}

/**
 * Every user-UID.slice cgroup under user.slice, or only `only`'s. Scopes are the cgroups named
 * PREFIX-NUMBER.scope; anything else under the slice that holds processes (another PAM module's
 * session scope, a process moved there by hand) is a stray.
 */
export function scanSlices(scopePrefix: string, only?: number, mountPoint = cgroup2Mount()): SliceScan[] {
  const base = join(mountPoint, "user.slice");
  const scope = new RegExp(`^${scopePrefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-\\d+\\.scope$`);
  const out: SliceScan[] = [];
  for (const uid of sliceUids(names(base))) {
    if (only !== undefined && uid !== only) continue;
    const dir = join(base, `user-${uid}.slice`);
    const scan: SliceScan = { uid, scopes: [], userServicePids: [], strays: [] };
    // Processes directly in the slice's own cgroup are strays too (cgroup v2 keeps none there normally).
    const own = pidsInCgroup(dir, names(dir));
    if (own.length) scan.strays.push({ cgroup: `user.slice/user-${uid}.slice`, pids: own });
    for (const child of names(dir)) {
      const pids = pidsInCgroup(join(dir, child));
      if (child === `user@${uid}.service`) scan.userServicePids = pids;
      else if (scope.test(child)) scan.scopes.push({ name: child, pids });
      else if (pids.length) scan.strays.push({ cgroup: `user.slice/user-${uid}.slice/${child}`, pids });
    }
    out.push(scan);
  }
  return out;
}
