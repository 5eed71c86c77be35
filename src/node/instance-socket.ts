// Is this unix socket really the job owner's Flux instance? Checked before root connects to it.

import { lstatSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Why the socket at `path` cannot be trusted to speak for an instance run by `owner`, or
 * undefined when it can. The path comes from a job annotation (usually /tmp/flux-XXXX/local-0):
 * once the instance has gone, anyone could recreate that directory with a fake broker in it
 * that says guests are welcome. So the socket and its directory must belong to the owner (or
 * root), and nobody else may be able to replace the socket.
 */
export function instanceSocketProblem(path: string, owner: number): string | undefined {
  const trusted = (uid: number) => uid === owner || uid === 0;
  let sock;
  let dir;
  try {
    sock = lstatSync(path);
    dir = lstatSync(dirname(path));
  } catch (e) {
    return `instance socket ${path}: ${(e as Error).message}`;
  }
  if (!sock.isSocket()) return `instance socket ${path} is not a socket`;
  if (!trusted(sock.uid)) return `instance socket ${path} is owned by uid ${sock.uid}, not the instance owner (${owner})`;
  if (!dir.isDirectory()) return `${dirname(path)} is not a directory`;
  if (!trusted(dir.uid)) return `${dirname(path)} is owned by uid ${dir.uid}, not the instance owner (${owner})`;
  const STICKY = 0o1000;
  if (dir.mode & 0o022 && !(dir.mode & STICKY)) return `${dirname(path)} is writable by others: the socket could be replaced`;
  return undefined;
}
