// Is linger on for a user? logind's User.Linger, or the file logind itself reads when logind cannot answer.

import { accessSync } from "node:fs";
import { join } from "node:path";
import type { SystemBus } from "./bus";
import { BadBusReplyError, DBusCallError } from "./errors";
import type { CallOptions, Linger, LingerUser } from "./types";

export const LINGER_DIR = "/var/lib/systemd/linger";
const LOGIN1 = { destination: "org.freedesktop.login1", path: "/org/freedesktop/login1", interface: "org.freedesktop.login1.Manager" };
const NO_SUCH_USER = "org.freedesktop.login1.NoSuchUser";
const DEFAULT_MS = 5_000;

export interface LingerOptions extends CallOptions {
  /** default /var/lib/systemd/linger */
  lingerDir?: string;
}

/**
 * The linger file, read as logind reads it (access(F_OK) on LINGER_DIR/NAME). logind's own Linger
 * property is exactly this check, so the fallback gives the answer logind would.
 */
export function lingerFileExists(name: string, dir = LINGER_DIR): boolean {
  if (name === "" || name === "." || name === ".." || name.includes("/")) throw new TypeError(`${JSON.stringify(name)} is not a user name`);
  try {
    accessSync(join(dir, name));
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw e; // EACCES and the like: we cannot tell, so we do not pretend it is off
  }
}

/**
 * logind: GetUser(uid) -> User.Linger. NoSuchUser (logind has never seen the user) means no linger,
 * which the file check confirms. Without a bus, or when logind does not answer (not installed,
 * masked, stuck), the file decides.
 */
export async function lingerEnabled(user: LingerUser, bus: SystemBus | undefined, opts: LingerOptions = {}): Promise<Linger> {
  const dir = opts.lingerDir ?? LINGER_DIR;
  const fromFile = (detail: string): Linger => ({ enabled: lingerFileExists(user.name, dir), source: "file", detail });
  if (!bus) return fromFile("no system bus");
  const ms = opts.timeoutMs ?? DEFAULT_MS;
  const end = Date.now() + ms;
  const unit = `user ${user.name} (uid ${user.uid})`;
  let path: unknown;
  try {
    [path] = await bus.call({ ...LOGIN1, member: "GetUser", signature: "u", body: [user.uid], unit }, ms);
  } catch (e) {
    if (e instanceof DBusCallError && e.dbusName === NO_SUCH_USER) return fromFile("logind has no such user");
    return fromFile(`logind did not answer: ${(e as Error).message}`);
  }
  if (typeof path !== "string") throw new BadBusReplyError("GetUser", unit, "no object path");
  let linger: unknown;
  try {
    [linger] = await bus.call(
      { destination: LOGIN1.destination, path, interface: "org.freedesktop.DBus.Properties", member: "Get", signature: "ss", body: ["org.freedesktop.login1.User", "Linger"], unit },
      Math.max(end - Date.now(), 1),
    );
  } catch (e) {
    return fromFile(`logind did not answer: ${(e as Error).message}`);
  }
  if (typeof linger !== "boolean") throw new BadBusReplyError("Get Linger", unit, "not a boolean");
  return { enabled: linger, source: "logind" };
}
