// cgroup v2 reads: where the hierarchy is mounted, which processes live in a subtree, a process's cgroup.

import { readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { NodeStateError } from "./errors";

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface Cgroup2Mount {
  /** where it is mounted, e.g. /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host */
  mountPoint: string;
  /** the part of the hierarchy mounted there; "/" unless in a cgroup namespace of another layout */
  root: string;
  /** the hierarchy's own options (mountinfo's super options), e.g. nsdelegate, favordynmods */
  options: string[];
}

/**
 * The cgroup2 mount in a /proc/PID/mountinfo text. A node normally has one; if several, the one
 * mounting the whole hierarchy ("/") wins, then the first.
 */
export function parseCgroup2Mount(mountinfo: string): Cgroup2Mount | undefined {
  const found: Cgroup2Mount[] = [];
  for (const line of mountinfo.split("\n")) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [fstype, , superOptions = ""] = line.slice(sep + 3).split(" ");
    if (fstype !== "cgroup2") continue;
    const f = line.slice(0, sep).split(" ");
    if (f.length < 6) continue;
    found.push({ root: unescapeMountinfo(f[3]!), mountPoint: unescapeMountinfo(f[4]!), options: superOptions.split(",").filter((o) => o !== "") });
  }
  return found.find((m) => m.root === "/") ?? found[0];
}

/** Where this process sees the cgroup2 hierarchy; throws if there is none (a pure cgroup v1 node). */
export function cgroup2Mount(mountinfoPath = "/proc/self/mountinfo"): string {
  return readCgroup2Mount(mountinfoPath).mountPoint;
}

function readCgroup2Mount(mountinfoPath: string): Cgroup2Mount {
  let text: string;
  try {
    text = readFileSync(mountinfoPath, "utf8");
  } catch (e) {
    throw new NodeStateError(mountinfoPath, (e as Error).message);
  }
  const m = parseCgroup2Mount(text);
  if (!m) throw new NodeStateError(mountinfoPath, "no cgroup2 file system is mounted (flux-pam needs cgroup v2)");
  return m;
}

/** user-UID.slice's cgroup directory, e.g. /sys/fs/cgroup/user.slice/user-1000.slice. */
export function userSliceCgroup(uid: number, mountPoint = cgroup2Mount()): string {
  return join(mountPoint, "user.slice", `user-${uid}.slice`);
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENODEV";
}

/**
 * Every pid in the cgroup directory `dir` and below it, except under the `exclude`d children
 * (names relative to `dir`): the processes of user-UID.slice outside user@UID.service. A cgroup
 * that does not exist holds no processes. Cgroups can vanish while we walk (a scope's last
 * process exits); those are skipped, not errors.
 */
export function pidsInCgroup(dir: string, exclude: readonly string[] = []): number[] {
  const root = dir.replace(/\/+$/, "");
  const skip = new Set(exclude.map((x) => {
    if (x === "" || x.split("/").includes("..")) throw new TypeError(`${JSON.stringify(x)} is not a child cgroup name`);
    return join(root, x);
  }));
  const pids = new Set<number>();
  const walk = (d: string): void => {
    let procs: string;
    try {
      procs = readFileSync(join(d, "cgroup.procs"), "utf8");
    } catch (e) {
      if (isMissing(e)) return;
      throw new NodeStateError(join(d, "cgroup.procs"), (e as Error).message);
    }
    for (const p of procs.split("\n")) if (p !== "") pids.add(Number(p));
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (e) {
      if (isMissing(e)) return;
      throw new NodeStateError(d, (e as Error).message);
    }
    for (const ent of entries) {
      if (!ent.isDirectory()) continue;
      const child = join(d, ent.name);
      if (!skip.has(child)) walk(child);
    }
  };
  walk(root);
  return [...pids].sort((a, b) => a - b);
}

/** The names of the cgroups directly below `dir` (for a slice: its units), sorted; none if it does not exist. */
export function childCgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch (e) {
    if (isMissing(e) || (e as NodeJS.ErrnoException).code === "ENOTDIR") return [];
    throw new NodeStateError(dir, (e as Error).message);
  }
}

/** The cgroup v2 path of a process ("0::" line of /proc/PID/cgroup), or undefined if it is gone. */
export function cgroupOfPid(pid: number | "self"): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  } catch (e) {
    if (isMissing(e) || (e as NodeJS.ErrnoException).code === "ESRCH") return undefined;
    throw e;
  }
  const line = text.split("\n").find((l) => l.startsWith("0::"));
  return line?.slice(3);
}

/**
 * Moves this process, in the background, into the cgroup it is already in: nothing changes for
 * it, but the kernel takes its cgroup migration lock. The first migration after a quiet spell
 * waits for an RCU grace period (the lock's rcu_sync; none when cgroup2 is mounted with
 * favordynmods), and one that comes while that wait is under way, or just after, shares it
 * instead of waiting a grace period of its own. session-open starts this first thing, so that
 * systemd's move of the login into its scope, some milliseconds later, finds the wait mostly
 * paid. Best effort: any failure is ignored (it changes only how long the scope's start takes).
 */
export function warmCgroupMigration(): void {
  try {
    const target = ownProcsFile(cgroupOfPid("self"), readCgroup2Mount("/proc/self/mountinfo"));
    if (target !== undefined) writeFile(target, `${process.pid}\n`).catch(() => {});
  } catch {
    // no cgroup v2, or /proc unreadable: nothing to warm
  }
}

/**
 * The cgroup.procs file of our own cgroup `own` (as /proc/self/cgroup names it, relative to our
 * cgroup namespace) under `mount`, or undefined unless the two agree: our cgroup outside our
 * namespace ("/..", as nsenter -C leaves a process), or a mount of another part of the
 * hierarchy than our namespace's root (a root other than "/": a host's mount seen from a child
 * namespace), and the path would name some other cgroup.
 */
export function ownProcsFile(own: string | undefined, mount: Pick<Cgroup2Mount, "mountPoint" | "root">): string | undefined {
  if (own === undefined || !own.startsWith("/") || own.split("/").includes("..") || mount.root !== "/") return undefined;
  return join(mount.mountPoint, own, "cgroup.procs");
}
