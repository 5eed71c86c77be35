// DIR/uid.UID.failed: the last prolog or housekeeping of this user that failed here, until one succeeds.
//
// A failed hook's one line goes to the journal of its unit (flux-prolog@JOBID.service), which
// systemd collects as soon as the unit fails (CollectMode=inactive-or-failed): check-user and
// status read this record to say which unit's journal holds the reason.

import { join } from "node:path";
import { NodeStateError } from "./errors";
import { readStateFile, removeStateFile, replaceStateFile } from "./state-file";

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

/** Replaces the record, atomically (replaceStateFile). The lock dir must have passed checkLockDir. */
export function recordHookFailure(dir: string, uid: number, f: HookFailure): void {
  replaceStateFile(hookFailurePath(dir, uid), JSON.stringify({ ...f, message: f.message.slice(0, MAX_RECORD / 2) }));
}

/** Removes the record (a hook of this user succeeded). Idempotent. */
export function clearHookFailure(dir: string, uid: number): void {
  removeStateFile(hookFailurePath(dir, uid));
}

/** The record, or undefined when there is none. One that is not a regular file of ours is an error. */
export function readHookFailure(dir: string, uid: number): HookFailure | undefined {
  const path = hookFailurePath(dir, uid);
  const text = readStateFile(path, MAX_RECORD, "a failure record");
  if (text === undefined) return undefined;
  let r: unknown;
  try {
    r = JSON.parse(text);
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
