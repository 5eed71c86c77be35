// The directory holding the per-uid locks and markers (default /run/flux-pam, FLUX_PAM_LOCK_DIR).

import { type Stats, closeSync, constants, fchmodSync, lstatSync, mkdirSync, openSync, readdirSync } from "node:fs";
import { NodeStateError } from "./errors";
import { join } from "node:path";

export const DEFAULT_LOCK_DIR = "/run/flux-pam";

export function lockDirFromEnv(env: Record<string, string | undefined>): string {
  const d = env.FLUX_PAM_LOCK_DIR;
  return d !== undefined && d !== "" ? d : DEFAULT_LOCK_DIR;
}

/**
 * Checks that `dir` is a real directory owned by root and not group/other writable:
 * anyone who can write there could plant a marker and let logins through.
 * With `create`, a missing directory is made 0700 (the prolog does; a login never does).
 */
export function checkLockDir(dir: string, create: boolean): void {
  if (!dir.startsWith("/")) throw new NodeStateError(dir, "lock directory must be an absolute path");
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new NodeStateError(dir, (e as Error).message);
    if (!create) throw new NodeStateError(dir, "lock directory does not exist (is tmpfiles.d/flux-pam.conf installed?)");
    makeLockDir(dir);
    st = lstatSync(dir);
  }
  const problem = lockDirProblem(st);
  if (problem) throw new NodeStateError(dir, problem);
}

/**
 * mkdir 0700, then the mode set again through a descriptor (mkdir's mode is masked by the umask).
 * Never chmod by path: between the lstat, the mkdir and the chmod the name may have become a
 * symbolic link (wherever the parent is writable by others), and chmod would follow it.
 */
function makeLockDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    // Another prolog may have made it first: this can be racy, so accept EEXIST; the caller's
    // lstat decides, and what someone else made is not ours to chmod.
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new NodeStateError(dir, (e as Error).message);
    return;
  }
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NodeStateError(dir, code === "ELOOP" || code === "ENOTDIR" ? "lock directory was replaced while being created" : (e as Error).message);
  }
  try {
    fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

/** What makes an existing lock directory unsafe (from its lstat), or undefined when it is fine. */
export function lockDirProblem(st: Pick<Stats, "isSymbolicLink" | "isDirectory" | "uid" | "mode">): string | undefined {
  if (st.isSymbolicLink()) return "lock directory is a symbolic link";
  if (!st.isDirectory()) return "lock directory is not a directory";
  if (st.uid !== 0) return `lock directory is owned by uid ${st.uid}, not root`;
  if (st.mode & 0o022) return `lock directory is group/other writable (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")})`;
  return undefined;
}

/** The lock dir's files of a user: uid.UID.active (the marker), .shares (a record of the jobs' shares), .failed (the last failed hook). */
export type LockDirFile = "active" | "shares" | "failed";

/**
 * The uids the lock dir holds a file of one of these kinds for. None when there is no lock dir
 * (check-user and doctor say why).
 */
/** The largest uid (uid_t is 32 bits). */
export const MAX_UID = 0xffffffff;

export function lockDirUids(dir: string, kinds: readonly LockDirFile[]): number[] {
  // A uid as the hooks write it: decimal, no leading zero, at most 2^32 - 1 (uid.01000.active is not uid 1000's).
  const name = new RegExp(`^uid\\.(0|[1-9]\\d{0,9})\\.(?:${kinds.join("|")})$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return [...new Set(names.map((n) => name.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).filter((u) => u <= MAX_UID))];
}

/** Does the lock dir hold uid.UID.KIND (of any file type: what it is, the reader of it checks)? */
export function lockDirHas(dir: string, uid: number, kind: LockDirFile): boolean {
  try {
    lstatSync(join(dir, `uid.${uid}.${kind}`));
    return true;
  } catch {
    return false;
  }
}
