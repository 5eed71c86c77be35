// DIR/uid.UID.failed: the last prolog or housekeeping of this user that failed here, until one succeeds.
//
// A failed hook's one line goes to the journal of its unit (flux-prolog@JOBID.service), which
// systemd collects as soon as the unit fails (CollectMode=inactive-or-failed): check-user and
// status read this record to say which unit's journal holds the reason.

import { closeSync, constants, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { NodeStateError } from "./errors";

export interface HookFailure {
  hook: "prolog" | "housekeeping";
  /** the job as its unit names it (F58 with a plain f) */
  job: string;
  /** seconds since the epoch */
  time: number;
  /** the hook's one stderr line, without its tag */
  message: string;
}

const MAX_RECORD = 4096;

export function hookFailurePath(dir: string, uid: number): string {
  return join(dir, `uid.${uid}.failed`);
}

/** The unit whose journal holds the hook's output. */
export function hookUnit(f: Pick<HookFailure, "hook" | "job">): string {
  return `flux-${f.hook}@${f.job}.service`;
}

/**
 * Replaces the record, atomically: written to a new file (O_EXCL, O_NOFOLLOW, 0600) and renamed
 * over the old one, so a reader never sees half of it and a symbolic link in its place is replaced,
 * never followed. The lock dir must have passed checkLockDir.
 */
export function recordHookFailure(dir: string, uid: number, f: HookFailure): void {
  const path = hookFailurePath(dir, uid);
  const tmp = `${path}.${process.pid}`;
  const text = JSON.stringify({ ...f, message: f.message.slice(0, MAX_RECORD / 2) });
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new NodeStateError(tmp, (e as Error).message);
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // the rename's error is the one to report
    }
    throw new NodeStateError(path, (e as Error).message);
  }
}

/** Removes the record (a hook of this user succeeded). Idempotent. */
export function clearHookFailure(dir: string, uid: number): void {
  try {
    unlinkSync(hookFailurePath(dir, uid));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new NodeStateError(hookFailurePath(dir, uid), (e as Error).message);
  }
}

/** The record, or undefined when there is none. One that is not a regular file of ours is an error. */
export function readHookFailure(dir: string, uid: number): HookFailure | undefined {
  const path = hookFailurePath(dir, uid);
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new NodeStateError(path, (e as Error).message);
  }
  if (!st.isFile()) throw new NodeStateError(path, "not a regular file");
  if (st.size > MAX_RECORD) throw new NodeStateError(path, "too large for a failure record");
  let r: unknown;
  try {
    r = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new NodeStateError(path, "not a failure record");
  }
  const o = r as Partial<HookFailure>;
  if (
    (o.hook !== "prolog" && o.hook !== "housekeeping") ||
    typeof o.job !== "string" ||
    !/^f[1-9A-HJ-NP-Za-km-z]{1,12}$/.test(o.job) ||
    typeof o.time !== "number" ||
    typeof o.message !== "string"
  )
    throw new NodeStateError(path, "not a failure record");
  return { hook: o.hook, job: o.job, time: o.time, message: o.message };
}
