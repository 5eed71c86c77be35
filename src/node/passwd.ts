// User lookup through NSS (getpwnam_r / getpwuid_r), so LDAP and sssd users are found as sshd finds them.

import { ptr, sym } from "./libc";
import { CString } from "bun:ffi";

export interface Passwd {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export class UserLookupError extends Error {
  override name = "UserLookupError";
  constructor(
    readonly user: string,
    readonly errnum: number,
  ) {
    super(`looking up user ${JSON.stringify(user)} failed (errno ${errnum})`);
  }
}

const ERANGE = 34;
// struct passwd on LP64: name, passwd (pointers), uid, gid (u32), gecos, dir, shell (pointers).
const PW_SIZE = 48;

function lookup(call: (pw: Uint8Array, buf: Uint8Array, res: BigUint64Array) => number, what: string): Passwd | undefined {
  for (let size = 4096; size <= 1 << 20; size *= 4) {
    const pw = new Uint8Array(PW_SIZE);
    const buf = new Uint8Array(size);
    const res = new BigUint64Array(1);
    const rc = call(pw, buf, res);
    if (rc === ERANGE) continue;
    if (rc !== 0) throw new UserLookupError(what, rc);
    if (res[0] === 0n) return undefined;
    const v = new DataView(pw.buffer);
    const str = (off: number) => new CString(Number(v.getBigUint64(off, true)) as never).toString();
    return { name: str(0), uid: v.getUint32(16, true), gid: v.getUint32(20, true), home: str(32) };
  }
  throw new UserLookupError(what, ERANGE);
}

/** The user named `name`, or undefined if there is none. Names with control characters never match. */
export function getpwnam(name: string): Passwd | undefined {
  if (name.length === 0 || name.length > 256 || /[\x00-\x1f\x7f]/.test(name)) return undefined;
  const cname = Buffer.from(`${name}\0`, "utf8");
  return lookup((pw, buf, res) => sym().getpwnam_r(ptr(cname), ptr(pw), ptr(buf), BigInt(buf.length), ptr(res)), name);
}

export function getpwuid(uid: number): Passwd | undefined {
  return lookup((pw, buf, res) => sym().getpwuid_r(uid, ptr(pw), ptr(buf), BigInt(buf.length), ptr(res)), `uid ${uid}`);
}
