// The few libc calls Bun does not offer: NSS user lookup, flock, real uid, a blocking socket read.
// Loaded on first use.

import { dlopen, FFIType, ptr, read } from "bun:ffi";

function load() {
  return dlopen("libc.so.6", {
    getpwnam_r: { args: [FFIType.cstring, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    getpwuid_r: { args: [FFIType.u32, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getuid: { args: [], returns: FFIType.u32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  }).symbols;
}

let libc: ReturnType<typeof load> | undefined;
export function sym(): ReturnType<typeof load> {
  libc ??= load();
  return libc;
}

export function errno(): number {
  return read.i32(sym().__errno_location()!, 0);
}

export function getuid(): number {
  return sym().getuid();
}

/** How long writeAll waits for a full non-blocking descriptor (a pipe nobody reads) to take any more. */
export const WRITE_WAIT_MS = 5000;
const POLLOUT = 4;

/**
 * write(2) of all of `data`, retrying on EINTR and short writes. A descriptor left non-blocking
 * by whoever gave it to us (EAGAIN: its pipe is full) is waited on with poll(2) instead of
 * dropping what is left, until it takes no byte for `waitMs`. Throws with the errno.
 */
export function writeAll(fd: number, data: Uint8Array, waitMs = WRITE_WAIT_MS): void {
  let off = 0;
  let waitEnd: number | undefined;
  while (off < data.length) {
    const n = Number(sym().write(fd, ptr(data.subarray(off)), BigInt(data.length - off)));
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      if (e === EWOULDBLOCK) {
        waitEnd ??= performance.now() + waitMs;
        const left = Math.ceil(waitEnd - performance.now());
        if (left > 0) {
          // struct pollfd { int fd; short events; short revents; }
          const pfd = new Int32Array(2);
          pfd[0] = fd;
          new Int16Array(pfd.buffer)[2] = POLLOUT;
          sym().poll(ptr(pfd), 1n, left);
          continue;
        }
        throw new Error(`write to fd ${fd} failed: nobody read it for ${waitMs} ms (EAGAIN)`);
      }
      throw new Error(`write to fd ${fd} failed (errno ${e})`);
    }
    off += n;
    waitEnd = undefined; // it took some: a slow reader is still a reader
  }
}

/**
 * `text` on `fd` by write(2) (writeAll): what commands print. Not process.stdout/stderr: Bun builds
 * those streams on first use, at milliseconds and MiBs, and output written both ways can interleave.
 */
export function writeText(fd: 1 | 2, text: string): void {
  writeAll(fd, Buffer.from(text));
}

export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const EWOULDBLOCK = 11;
export const EINTR = 4;

/** flock(2); returns 0 or the errno. */
export function flock(fd: number, op: number): number {
  return sym().flock(fd, op) === 0 ? 0 : errno();
}

export { ptr };
