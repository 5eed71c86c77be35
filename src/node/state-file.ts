// The small files the hooks keep in the lock dir beside the marker (the record of the jobs' shares,
// the last failed hook): replaced atomically, read only when they are regular files of ours,
// removed idempotently. The lock dir must have passed checkLockDir.

import { closeSync, constants, fstatSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { NodeStateError } from "./errors";

/**
 * Replaces the file at `path` with `text`: written to a new file beside it (O_EXCL, O_NOFOLLOW,
 * 0600) and renamed over it, so a reader never sees half of it and a symbolic link in its place is
 * replaced, never followed.
 */
export function replaceStateFile(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    rmSync(tmp, { force: true }); // left by a crashed hook whose pid was ours
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeFileSync(fd, text);
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

/**
 * The file's text, or undefined when there is none. Opened O_NOFOLLOW and checked on the open
 * descriptor: a symbolic link, a directory, a fifo or a file larger than `maxBytes` is an error.
 */
export function readStateFile(path: string, maxBytes: number, what: string): string | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a fifo planted in its place must not hang the reader
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new NodeStateError(path, (e as NodeJS.ErrnoException).code === "ELOOP" ? "a symbolic link, not a regular file" : (e as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NodeStateError(path, "not a regular file");
    if (st.size > maxBytes) throw new NodeStateError(path, `too large for ${what}`);
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/** Removes the file; one that is not there is no error. */
export function removeStateFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new NodeStateError(path, (e as Error).message);
  }
}
