// The marker DIR/uid.UID.active: "containment is set up for this user; logins may enter the slice".

import { closeSync, constants, lstatSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { NodeStateError } from "./errors";

/** Why a session is refused without the marker: session-open's words, which check-user repeats. */
export const NO_MARKER = "no active marker: containment is not set up (no prolog ran, or the last job ended)";

export function markerPath(dir: string, uid: number): string {
  return join(dir, `uid.${uid}.active`);
}

/** Whether the marker exists. A marker that is not a regular file (a symlink) is an error. */
export function markerExists(dir: string, uid: number): boolean {
  const path = markerPath(dir, uid);
  try {
    const st = lstatSync(path);
    if (!st.isFile()) throw new NodeStateError(path, st.isSymbolicLink() ? "marker is a symbolic link" : "marker is not a regular file");
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e instanceof NodeStateError ? e : new NodeStateError(path, (e as Error).message);
  }
}

/**
 * Creates the marker (0600, O_NOFOLLOW). Idempotent. O_NONBLOCK: a FIFO planted in its place
 * would otherwise block the open until some reader came, and the prolog would hang holding the
 * user's lock; it fails at once instead (ENXIO), as a directory does (EISDIR).
 */
export function createMarker(dir: string, uid: number): void {
  const path = markerPath(dir, uid);
  try {
    closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new NodeStateError(path, "marker is a symbolic link");
    if (code === "ENXIO" || code === "EISDIR") throw new NodeStateError(path, "marker is not a regular file");
    throw new NodeStateError(path, (e as Error).message);
  }
  markerExists(dir, uid); // refuses a marker that is something other than a regular file
}

/** Removes the marker. Idempotent; a symlink in its place is refused, not followed or removed. */
export function removeMarker(dir: string, uid: number): void {
  if (!markerExists(dir, uid)) return;
  const path = markerPath(dir, uid);
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new NodeStateError(path, (e as Error).message);
  }
}
