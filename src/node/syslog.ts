// syslog(3) at facility authpriv, for the helper run straight from pam_exec (no wrapper to log for it).

import { dlopen, FFIType, ptr } from "bun:ffi";

const LOG_PID = 0x01;
const LOG_AUTHPRIV = 10 << 3;
export const PRIORITY = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;

let lib: ReturnType<typeof load> | undefined;
function load() {
  const l = dlopen("libc.so.6", {
    openlog: { args: [FFIType.ptr, FFIType.i32, FFIType.i32], returns: FFIType.void },
    // syslog is variadic; called with exactly one "%s" argument, which the SysV ABI passes as a plain pointer.
    syslog: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.void },
  }).symbols;
  l.openlog(ptr(IDENT), LOG_PID, LOG_AUTHPRIV);
  return l;
}

// openlog keeps the pointer: these buffers live as long as the process.
const IDENT = Buffer.from("flux-pam\0");
const FORMAT = Buffer.from("%s\0");

export function syslog(priority: keyof typeof PRIORITY, text: string): void {
  lib ??= load();
  const msg = Buffer.from(`${text}\0`);
  lib.syslog(LOG_AUTHPRIV | PRIORITY[priority], ptr(FORMAT), ptr(msg));
}
