// This node's own setup: the lock dir, its tmpfiles.d entry, cgroup v2, systemd's version.

import { parseCgroup2Mount } from "../node/cgroup";
import { DEFAULT_LOCK_DIR, lockDirProblem } from "../node/lock-dir";
import { type Finding, error, ok, warning } from "./finding";
import type { Tree } from "./tree";

/** Later directories are overridden by a file of the same name in an earlier one (tmpfiles.d(5)). */
export const TMPFILES_DIRS = ["/etc/tmpfiles.d", "/run/tmpfiles.d", "/usr/local/lib/tmpfiles.d", "/usr/lib/tmpfiles.d"];
export const TMPFILES_NAME = "flux-pam.conf";
export const MIN_SYSTEMD = 239;

/** The lock dir must be root's alone: whoever can write there can plant a marker and let logins in. */
export function auditLockDir(tree: Tree, dir = DEFAULT_LOCK_DIR): Finding[] {
  const st = tree.lstat(dir);
  if (!st) {
    if (!tree.live) return [ok("lock-dir", `${dir}: not in the tree (a runtime directory: tmpfiles.d creates it at boot)`)];
    return [warning("lock-dir", `${dir} does not exist: sessions are refused until a prolog creates it`, `systemd-tmpfiles --create ${TMPFILES_NAME}`)];
  }
  const problem = lockDirProblem(st);
  if (!problem) return [ok("lock-dir", `${dir}: root-owned, mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}`)];
  const fix = st.isSymbolicLink() || !st.isDirectory()
    ? `remove ${dir}, then systemd-tmpfiles --create ${TMPFILES_NAME}`
    : st.uid !== 0
      ? `chown root:root ${dir} (and find out who made it)`
      : `chmod 0700 ${dir}`;
  return [error("lock-dir", `${dir}: ${problem}: every prolog and every session refuses it`, fix)];
}

/** A tmpfiles.d path as systemd-tmpfiles --boot (the system's) reads it: %t is /run, a trailing / or a doubled one says nothing. */
function tmpfilesPath(p: string): string {
  return p.replace(/%t/g, "/run").replace(/\/{2,}/g, "/").replace(/(.)\/$/, "$1");
}

/** The line of a tmpfiles.d file for `dir`, if any. */
function lineFor(tree: Tree, path: string, dir: string): string | undefined {
  const lines = (tree.read(path) ?? "").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  return lines.find((l) => tmpfilesPath(l.split(/\s+/)[1] ?? "") === dir);
}

/** The files systemd-tmpfiles reads, by name: the first directory's file of each name, a link to /dev/null masking it. */
function effectiveTmpfiles(tree: Tree): Map<string, string> {
  const out = new Map<string, string>();
  const masked = new Set<string>();
  for (const d of TMPFILES_DIRS)
    for (const n of tree.list(d) ?? []) {
      if (!n.endsWith(".conf") || out.has(n) || masked.has(n)) continue;
      if (tree.readlink(`${d}/${n}`) === "/dev/null") masked.add(n);
      else out.set(n, `${d}/${n}`);
    }
  return out;
}

/** Whether `line` of `path` makes `dir` as the lock dir must be: a directory, root:root, 0700. */
function judgeLine(path: string, line: string, dir: string, why = ""): Finding[] {
  const want = `d ${dir} 0700 root root -`;
  // "-" (or a missing field) is tmpfiles.d(5)'s default: a directory 0755, root's
  const field = (v: string | undefined, dflt: string) => (v === undefined || v === "-" ? dflt : v);
  const [type = "", , rawMode, rawUser, rawGroup] = line.split(/\s+/);
  const mode = field(rawMode, "0755");
  const user = field(rawUser, "root");
  const group = field(rawGroup, "root");
  const fix = `make the line "${want}"`;
  if (!/^[dD][!+]*$/.test(type)) return [error("tmpfiles", `${path}: "${line}" does not create a directory${why}`, fix)];
  if (!["root", "0"].includes(user) || !["root", "0"].includes(group))
    return [error("tmpfiles", `${path}: "${line}" gives ${dir} to ${user}:${group}, not root:root${why}`, fix)];
  if (!/^0?[0-7]{3}$/.test(mode)) return [error("tmpfiles", `${path}: "${line}" has mode ${mode}, not 0700${why}`, fix)];
  const bits = parseInt(mode, 8);
  if (bits & 0o022) return [error("tmpfiles", `${path}: "${line}" makes ${dir} group/other writable${why}`, fix)];
  if (bits !== 0o700) return [warning("tmpfiles", `${path}: "${line}" has mode ${mode}, not 0700${why}`, fix)];
  return [ok("tmpfiles", `${path}: ${line}${why}`)];
}

/**
 * The line systemd-tmpfiles applies for the lock dir must create it 0700 root:root at boot: that
 * of the file whose name sorts first among those with a line for it (tmpfiles.d(5)), which is
 * flux-pam.conf's unless a site file sorts before it.
 */
export function auditTmpfiles(tree: Tree, dir = DEFAULT_LOCK_DIR): Finding[] {
  const rival = [...effectiveTmpfiles(tree)]
    .filter(([n]) => n < TMPFILES_NAME)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, p]) => ({ p, line: lineFor(tree, p, dir) }))
    .find((r) => r.line !== undefined);
  if (rival) return judgeLine(rival.p, rival.line!, dir, ` (its name sorts before ${TMPFILES_NAME}: systemd-tmpfiles applies this line, not flux-pam's)`);
  const path = TMPFILES_DIRS.map((d) => `${d}/${TMPFILES_NAME}`).find((p) => tree.lstat(p));
  const want = `d ${dir} 0700 root root -`;
  if (!path)
    return [
      error(
        "tmpfiles",
        `no ${TMPFILES_NAME} in ${TMPFILES_DIRS.join(", ")}: ${dir} is not created at boot, and a local user can create it first and block every prolog`,
        `install packaging/tmpfiles.d/${TMPFILES_NAME} as /usr/lib/tmpfiles.d/${TMPFILES_NAME} (make install does), then systemd-tmpfiles --create ${TMPFILES_NAME}`,
      ),
    ];
  if (tree.readlink(path) === "/dev/null")
    return [error("tmpfiles", `${path} is masked (a link to /dev/null): ${dir} is not created at boot`, `remove ${path}`)];
  const line = lineFor(tree, path, dir);
  if (!line) return [error("tmpfiles", `${path} has no line for ${dir}: it is not created at boot`, `add "${want}" to ${path}`)];
  return judgeLine(path, line, dir);
}

/** cgroup v2 from /proc/self/mountinfo: unified is fine, hybrid leaves the limits unenforced, v1 alone cannot work. */
export function auditCgroup(mountinfo: string): Finding[] {
  const v2 = parseCgroup2Mount(mountinfo);
  const v1 = mountinfo.split("\n").filter((l) => l.split(" - ")[1]?.startsWith("cgroup ")).length;
  const fix = "boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1 on the kernel command line)";
  if (!v2) return [error("cgroup", "no cgroup2 file system is mounted (cgroup v1 only): no limits on the slice can work", fix)];
  if (v1 > 0 || v2.mountPoint !== "/sys/fs/cgroup")
    return [
      warning(
        "cgroup",
        `hybrid cgroup hierarchy (cgroup2 at ${v2.mountPoint}, ${v1} cgroup v1 mount${v1 === 1 ? "" : "s"}): CPU, memory-node and device limits on the slice are not enforced`,
        fix,
      ),
    ];
  // Not a fault either way (the site weighs it): said so that an admin timing logins knows the knob.
  const dynmods = v2.options.includes("favordynmods")
    ? "mounted favordynmods: moving a login into its scope does not wait for the kernel"
    : "not favordynmods: on Linux 6.0 and later moving each login into its scope waits for an RCU grace period (flux-pam(1), session-open)";
  return [ok("cgroup", `cgroup v2, unified hierarchy at /sys/fs/cgroup, ${dynmods}`)];
}

/** systemd's Version property ("252.30-1~deb12u1", "239 (239-78.el8)") against the 239 flux-pam needs. */
export function auditSystemdVersion(version: string): Finding[] {
  const m = /^v?(\d+)/.exec(version.trim());
  if (!m) return [warning("systemd", `systemd says its version is "${version}": not a number`, `check by hand that systemd is ${MIN_SYSTEMD} or newer`)];
  if (Number(m[1]) < MIN_SYSTEMD)
    return [error("systemd", `systemd ${version} is older than ${MIN_SYSTEMD}: no AllowedCPUs or runtime slice properties`, `upgrade systemd to ${MIN_SYSTEMD} or newer`)];
  return [ok("systemd", `systemd ${version}`)];
}
