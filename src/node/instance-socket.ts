// Is this unix socket really the job owner's Flux instance? Checked before root connects to it.

import { lstatSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Why the socket at `path` cannot be trusted to speak for an instance run by `owner`, or
 * undefined when it can. The path comes from a job annotation (usually /tmp/flux-XXXX/local-0):
 * once the instance has gone, anyone could recreate that directory with a fake broker in it
 * that says guests are welcome. So the socket and every directory up to / must belong to the
 * owner (or root), none a symbolic link, and none writable by anyone else (but with the sticky
 * bit, as /tmp): then nobody else can replace any part of the path between this check and the
 * connect that follows it.
 */
export function instanceSocketProblem(path: string, owner: number): string | undefined {
  const trusted = (uid: number) => uid === owner || uid === 0;
  // (".." would let the checks below see other directories than the connect goes through)
  if (!path.startsWith("/") || path.split("/").slice(1).some((c) => c === "" || c === "." || c === ".."))
    return `instance socket ${path}: not a plain absolute path (an empty, "." or ".." component)`;
  let sock;
  try {
    sock = lstatSync(path);
  } catch (e) {
    return `instance socket ${path}: ${(e as Error).message}`;
  }
  if (!sock.isSocket()) return `instance socket ${path} is not a socket`;
  if (!trusted(sock.uid)) return `instance socket ${path} is owned by uid ${sock.uid}, not the instance owner (${owner})`;
  const STICKY = 0o1000;
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    let st;
    try {
      st = lstatSync(dir);
    } catch (e) {
      return `instance socket ${path}: ${(e as Error).message}`;
    }
    if (!st.isDirectory()) return `${dir} is not a directory${st.isSymbolicLink() ? " (a symbolic link)" : ""}`;
    if (!trusted(st.uid)) return `${dir} is owned by uid ${st.uid}, not the instance owner (${owner})`;
    if (st.mode & 0o022 && !(st.mode & STICKY)) return `${dir} is writable by others: the socket could be replaced`;
    if (dir === "/") return undefined;
  }
}
