// Connect to a unix stream socket and read its first byte, blocking, with a receive timeout.
//
// Why not Bun's sockets: a peer that writes one byte and closes at once (a Flux broker refusing
// the handshake does exactly that) makes Bun report "Failed to connect" and drop the byte. This
// plain-syscall read is used only on that path, to tell a refusal (and its errno) from an absent broker.

import { ptr, sym } from "./libc";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SUN_PATH_MAX = 108;

/** The first byte the listener at `path` sends, or undefined (no listener, closed silently, timeout). */
export function firstByte(path: string, timeoutMs: number): number | undefined {
  const name = Buffer.from(path);
  if (name.length >= SUN_PATH_MAX) return undefined;
  const libc = sym();
  const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    const addr = new Uint8Array(2 + SUN_PATH_MAX);
    new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
    addr.set(name, 2);
    if (libc.connect(fd, ptr(addr), 2 + name.length + 1) !== 0) return undefined;
    const tv = new BigInt64Array([BigInt(Math.floor(timeoutMs / 1000)), BigInt((timeoutMs % 1000) * 1000)]);
    libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, ptr(tv), 16);
    const buf = new Uint8Array(1);
    return libc.recv(fd, ptr(buf), 1n, 0) === 1n ? buf[0] : undefined;
  } finally {
    libc.close(fd);
  }
}
