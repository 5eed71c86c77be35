// The per-uid lock: serialises prolog, housekeeping and session setup of one user on this node.

import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { LockTimeoutError, NodeStateError } from "./errors";
import { EINTR, EWOULDBLOCK, LOCK_EX, LOCK_NB, LOCK_UN, flock } from "./libc";

export function lockPath(dir: string, uid: number): string {
  return join(dir, `uid.${uid}.lock`);
}

export interface UidLock {
  readonly path: string;
  release(): void;
}

/**
 * Takes the exclusive flock on DIR/uid.UID.lock (O_NOFOLLOW: a planted symlink is refused),
 * polling until `timeoutMs`. The lock dies with the process, so a crash never leaves it held.
 */
export async function acquireUidLock(dir: string, uid: number, timeoutMs: number): Promise<UidLock> {
  const path = lockPath(dir, uid);
  let fd: number;
  // Bun opens every file O_CLOEXEC: the lock never leaks into a child such as a hook's subprocess.
  // O_NONBLOCK: whatever is planted there (a FIFO) must not hold the open; fstat refuses it below.
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new NodeStateError(path, "lock file is a symbolic link");
    if (code === "EISDIR" || code === "ENXIO") throw new NodeStateError(path, "lock file is not a regular file");
    throw new NodeStateError(path, (e as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NodeStateError(path, "lock file is not a regular file");
    if (st.uid !== 0) throw new NodeStateError(path, `lock file is owned by uid ${st.uid}, not root`);
    const start = Date.now();
    const deadline = start + timeoutMs;
    let wait = 1;
    for (;;) {
      const err = flock(fd, LOCK_EX | LOCK_NB);
      if (err === 0) break;
      if (err !== EWOULDBLOCK && err !== EINTR) throw new NodeStateError(path, `flock failed (errno ${err})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new LockTimeoutError(path, `lock not acquired within ${Math.round(timeoutMs / 1000)} s`);
      await Bun.sleep(Math.min(wait, left));
      // At most 2 ms between looks for the first second: when several jobs of a user end at once,
      // each housekeeping waits for the one before it (some 20 ms each), and the poll adds itself
      // to every handover. Measured with 8 last-job housekeepings at once (bench/hooks.ts, 40
      // pairs, twice): the slowest 0.93-0.95x of a 5 ms poll; a 1 ms poll was slower again (1.05x
      // of 2 ms), its wake-ups taking the CPU the lock's holder needs. A holder that keeps the
      // lock longer is in a teardown's grace time (seconds): then at most 20 ms, 50 looks a second.
      wait = Math.min(wait * 2, Date.now() - start < 1000 ? 2 : 20);
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
