// DIR/uid.UID.shares: this rank's share (cores, GPUs, host) of each of the user's running jobs, as
// the hooks last computed it from the jobs' R. A running job's R does not change, so a hook asks the
// broker only for the R of jobs it finds no share of here: with a thousand jobs running, a prolog
// looks up one R instead of a thousand. Which jobs run is always the broker's word, never this file's.

import { closeSync, constants, fstatSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RankShare } from "../flux/r";
import { NodeStateError } from "./errors";

export function sharesPath(dir: string, uid: number): string {
  return join(dir, `uid.${uid}.shares`);
}

interface Stored {
  rank: number;
  /** decimal job id -> share */
  jobs: Record<string, { cores: number[]; gpus: number[]; host?: string }>;
}

const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.every((n) => Number.isSafeInteger(n) && n >= 0);

/**
 * The recorded shares on `rank`, by job id. A record that is missing, of another rank, or not
 * exactly what writeShares writes is no record: the hook then asks the broker for every R.
 */
export function readShares(dir: string, uid: number, rank: number): Map<bigint, RankShare> {
  const out = new Map<bigint, RankShare>();
  let text: string;
  try {
    const fd = openSync(sharesPath(dir, uid), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if (!fstatSync(fd).isFile()) return out;
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return out; // none yet (ENOENT), or not a file we would have written (ELOOP): ask the broker
  }
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
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    rmSync(tmp, { force: true }); // left by a crashed hook whose pid was ours
    // O_EXCL|O_NOFOLLOW: never write through a name someone else made.
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeFileSync(fd, JSON.stringify(stored));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // never made, or already renamed
    }
    throw new NodeStateError(path, (e as Error).message);
  }
}

/** Forgets the record (the user's last job here ended). Idempotent. */
export function removeShares(dir: string, uid: number): void {
  try {
    unlinkSync(sharesPath(dir, uid));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new NodeStateError(sharesPath(dir, uid), (e as Error).message);
  }
}
