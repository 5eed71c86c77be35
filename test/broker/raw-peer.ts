// A hostile "broker" on a unix socket, in plain syscalls, for what Bun's own sockets cannot do:
// leave a socket nobody listens on, close with the client's bytes unread (the client then reads
// ECONNRESET), hang up before the handshake byte. Run as a process:
//   bun test/broker/raw-peer.ts MODE SOCKET     (prints "ready" once the socket is there)
// MODE: stale  bind, never listen, exit: the socket file stays (ECONNREFUSED)
//       reset  accept, write the accepting byte 0x00, wait for the request, close without reading it
//       hup    accept, close at once (no handshake byte)
//       mute   accept, never write a byte

import { dlopen, FFIType, ptr } from "bun:ffi";

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  accept: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
}).symbols;

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const MSG_PEEK = 2;

const [mode, path] = process.argv.slice(2);
if (!mode || !path) {
  process.stderr.write("usage: raw-peer.ts stale|reset|hup|mute SOCKET\n");
  process.exit(2);
}

const fd = libc.socket(AF_UNIX, SOCK_STREAM, 0);
const addr = new Uint8Array(110);
new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
addr.set(Buffer.from(path), 2);
if (libc.bind(fd, ptr(addr), 2 + Buffer.byteLength(path) + 1) !== 0) {
  process.stderr.write(`raw-peer: cannot bind ${path}\n`);
  process.exit(1);
}
if (mode === "stale") {
  process.stdout.write("ready\n");
  process.exit(0);
}
libc.listen(fd, 16);
process.stdout.write("ready\n");
const held: number[] = [];
for (;;) {
  const c = libc.accept(fd, null, null);
  if (c < 0) continue;
  if (mode === "hup") libc.close(c);
  else if (mode === "mute") held.push(c);
  else if (mode === "reset") {
    libc.send(c, ptr(new Uint8Array([0])), 1n, 0);
    // Wait (blocking) until the request is in our receive queue, peek at it, then close: the
    // kernel resets the connection because bytes were left unread.
    const b = new Uint8Array(1);
    libc.recv(c, ptr(b), 1n, MSG_PEEK);
    libc.close(c);
  }
}
