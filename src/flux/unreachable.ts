// Why a broker socket could not be connected to, in words, and whether waiting can help.

import { dirname } from "node:path";

export interface Unreachable {
  /** the errno name of the cause */
  code: string;
  /** one clause for the refusal, naming the cause */
  detail: string;
  /** whether a retry can still succeed (a broker that is starting) */
  retry: boolean;
}

/**
 * Tells the causes apart from the failed connect's errno and what is at the path. Linux answers
 * ECONNREFUSED both for a socket nobody listens on and for a path that is no socket at all, so
 * the path is looked at. Only two causes can pass by themselves: a socket not there yet in a
 * directory that is (a broker starting binds it there: flux's system instance gets its run
 * directory from systemd before the broker starts), and a full listen backlog (EAGAIN).
 */
export function unreachable(path: string, code: string | undefined, message: string): Unreachable {
  // node:fs only here, on the way to a refusal: loading it costs every command ~2 ms (it brings
  // node:events), and an admitted login (account) needs nothing else of it.
  const { statSync } = require("node:fs") as typeof import("node:fs");
  let kind: string | undefined;
  try {
    const st = statSync(path);
    kind = st.isSocket() ? "socket" : st.isDirectory() ? "directory" : st.isFile() ? "regular file" : "file that is not a socket";
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === "EACCES") return { code: c, detail: `permission denied (EACCES) on the way to ${path}`, retry: false };
    kind = undefined;
  }
  if (kind === undefined) {
    if (code !== undefined && code !== "ENOENT" && code !== "ECONNREFUSED") return other(code, message);
    const dir = dirname(path);
    let dirThere = false;
    try {
      dirThere = statSync(dir).isDirectory();
    } catch {
      dirThere = false;
    }
    return dirThere
      ? { code: "ENOENT", detail: `broker socket ${path} was not found (ENOENT)`, retry: true }
      : { code: "ENOENT", detail: `broker socket ${path} was not found (ENOENT), nor its directory ${dir}: no broker runs or starts here`, retry: false };
  }
  if (kind !== "socket") return { code: "ENOTSOCK", detail: `${path} is a ${kind}, not a socket (ENOTSOCK)`, retry: false };
  if (code === "ECONNREFUSED")
    return { code, detail: `nobody listens on ${path} (ECONNREFUSED): a socket left by a broker that is not running`, retry: false };
  if (code === "EAGAIN") return { code, detail: `the broker at ${path} accepts no more connections now (EAGAIN)`, retry: true };
  return other(code, message);
}

function other(code: string | undefined, message: string): Unreachable {
  if (code === "ECONNRESET") return { code, detail: "the broker reset the connection (ECONNRESET)", retry: false };
  if (code === "EACCES") return { code, detail: "permission denied (EACCES)", retry: false };
  return { code: code ?? "EIO", detail: code ? `${message} (${code})` : message, retry: false };
}
