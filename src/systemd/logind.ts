// Is linger on for a user? The file logind itself reads for it: /var/lib/systemd/linger/NAME.

import { accessSync } from "node:fs";
import type { Linger, LingerUser } from "./types";

export const LINGER_DIR = "/var/lib/systemd/linger";

export interface LingerOptions {
  /** default /var/lib/systemd/linger */
  lingerDir?: string;
}

/** The escapes of systemd's cescape() for the bytes it names; other bytes below 0x20 or above 0x7e are \NNN, octal. */
const NAMED_ESCAPES: Readonly<Record<number, string>> = { 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 34: '\\"', 39: "\\'", 92: "\\\\" };

/**
 * A user name as logind spells it in the linger file's name: systemd's cescape() of its UTF-8
 * bytes (logind's user_check_linger_file, and loginctl enable-linger's method, both escape it).
 * `DOMAIN\user` (winbind) is the file `DOMAIN\\user`; `josé` is `jos\303\251`.
 */
export function lingerFileName(name: string): string {
  let out = "";
  for (const b of Buffer.from(name, "utf8")) out += NAMED_ESCAPES[b] ?? (b < 0x20 || b >= 0x7f ? `\\${b.toString(8).padStart(3, "0")}` : String.fromCharCode(b));
  return out;
}

/**
 * The linger file, read as logind reads it (access(F_OK) on LINGER_DIR/ESCAPED-NAME): what loginctl
 * enable-linger creates and disable-linger removes.
 */
export function lingerFileExists(name: string, dir = LINGER_DIR): boolean {
  if (name === "" || name === "." || name === ".." || name.includes("/")) throw new TypeError(`${JSON.stringify(name)} is not a user name`);
  try {
    accessSync(`${dir}/${lingerFileName(name)}`);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw e; // EACCES and the like: we cannot tell, so we do not pretend it is off
  }
}

/**
 * Linger for `user`. logind's User.Linger is this very file, checked again on every read
 * (user_check_linger_file in systemd's logind), so it is read here, not asked of logind: the same
 * answer without one or two round trips through the bus to a daemon that, with pam_systemd not stacked,
 * mostly knows no such user and says so.
 */
export function lingerEnabled(user: LingerUser, opts: LingerOptions = {}): Linger {
  return { enabled: lingerFileExists(user.name, opts.lingerDir ?? LINGER_DIR), source: "file" };
}
