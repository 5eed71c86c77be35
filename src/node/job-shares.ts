// DIR/uid.UID.shares: this rank's share (cores, GPUs, host) of each of the user's running jobs, as
// the hooks last computed it from the jobs' R. A running job's R does not change, so a hook asks the
// broker only for the R of jobs it finds no share of here: with a thousand jobs running, a prolog
// looks up one R instead of a thousand. Which jobs run is always the broker's word, never this file's.

import { join } from "node:path";
import type { RankShare } from "../flux/r";
import { readStateFile, removeStateFile, replaceStateFile } from "./state-file";

export function sharesPath(dir: string, uid: number): string {
  return join(dir, `uid.${uid}.shares`);
}

interface Stored {
  rank: number;
  /** decimal job id -> share */
  jobs: Record<string, { cores: number[]; gpus: number[]; host?: string }>;
}

/** A record past this is not one we wrote (some 60 bytes a job): it is ignored, the broker asked. */
const MAX_RECORD = 16 << 20;

const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.every((n) => Number.isSafeInteger(n) && n >= 0);

/**
 * The recorded shares on `rank`, by job id. A record that is missing, of another rank, or not
 * exactly what writeShares writes is no record: the hook then asks the broker for every R.
 */
export function readShares(dir: string, uid: number, rank: number): Map<bigint, RankShare> {
  const out = new Map<bigint, RankShare>();
  let text: string | undefined;
  try {
    text = readStateFile(sharesPath(dir, uid), MAX_RECORD, "a record of shares");
  } catch {
    return out; // not a file we would have written: ask the broker
  }
  if (text === undefined) return out; // none yet
  let stored: Stored;
  try {
    stored = JSON.parse(text) as Stored;
  } catch {
    return out;
  }
  if (typeof stored !== "object" || stored === null || stored.rank !== rank || typeof stored.jobs !== "object" || stored.jobs === null) return out;
  for (const [id, s] of Object.entries(stored.jobs)) {
    if (!/^\d{1,20}$/.test(id) || typeof s !== "object" || s === null || !isIds(s.cores) || !isIds(s.gpus)) return new Map();
    if (s.host !== undefined && typeof s.host !== "string") return new Map();
    out.set(BigInt(id), { cores: s.cores, gpus: s.gpus, ...(s.host !== undefined ? { host: s.host } : {}) });
  }
  return out;
}

/** Replaces the record with `shares` (0600, written beside it and renamed over it). */
export function writeShares(dir: string, uid: number, rank: number, shares: ReadonlyMap<bigint, RankShare>): void {
  const path = sharesPath(dir, uid);
  const stored: Stored = { rank, jobs: {} };
  for (const [id, s] of shares) stored.jobs[id.toString()] = { cores: [...s.cores], gpus: [...s.gpus], ...(s.host !== undefined ? { host: s.host } : {}) };
  replaceStateFile(path, JSON.stringify(stored));
}

/** Forgets the record (the user's last job here ended). Idempotent. */
export function removeShares(dir: string, uid: number): void {
  removeStateFile(sharesPath(dir, uid));
}
