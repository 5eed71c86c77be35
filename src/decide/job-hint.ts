// The one line a denied user gets about where their jobs do run: "alice has running jobs on
// fluke[12-13] (ƒ2Jbc7Zg5y), not on fluke7". Built only from what the broker said.

import { formatF58, type JobId } from "../flux/jobid";

/** The longest hint line, in characters. */
export const MAX_HINT = 200;

export interface JobPlace {
  id: JobId;
  /** RFC 29 hostlist */
  nodelist: string;
}

// What an RFC 29 hostlist and a host name may hold. Anything else (a broker that lies, escape
// sequences meant for the user's terminal) is not shown.
const HOSTLIST = /^[A-Za-z0-9._-]+(\[[0-9,-]+\][A-Za-z0-9._-]*)*(,[A-Za-z0-9._-]+(\[[0-9,-]+\][A-Za-z0-9._-]*)*)*$/;
const HOSTNAME = /^[A-Za-z0-9._-]{1,255}$/;

/** "fluke[12-13] (ƒ2Jbc7Zg5y)", or undefined for a nodelist that is not a hostlist. */
export function placeItem(j: JobPlace): string | undefined {
  return j.nodelist.length <= 4096 && HOSTLIST.test(j.nodelist) ? `${j.nodelist} (${formatF58(j.id)})` : undefined;
}

function line(user: string, items: string[], more: number, here: string): string {
  const n = items.length + more;
  const list = more > 0 ? `${items.join(", ")} and ${more} more` : items.length > 1 ? `${items.slice(0, -1).join(", ")} and ${items.at(-1)}` : items[0]!;
  return `${user} has ${n === 1 ? "a running job" : "running jobs"} on ${list}, not on ${here}`;
}

/**
 * The hint, or undefined when there is nothing to say (no job elsewhere, a name that is not a
 * host name). As many jobs as fit in MAX_HINT characters, in the broker's order, then "and N more";
 * a first hostlist too long to fit is cut with "...".
 */
export function jobHint(user: string, here: string, jobs: readonly JobPlace[]): string | undefined {
  if (!HOSTNAME.test(here)) return undefined;
  const shown = jobs.filter((j) => placeItem(j) !== undefined);
  if (shown.length === 0) return undefined;
  const items: string[] = [];
  for (const [i, j] of shown.entries()) {
    const item = placeItem(j)!;
    if (line(user, [...items, item], shown.length - i - 1, here).length > MAX_HINT) break;
    items.push(item);
  }
  if (items.length > 0) return line(user, items, shown.length - items.length, here);
  // Not even the first job fits: its hostlist is cut.
  const first = shown[0]!;
  const bare = line(user, [` (${formatF58(first.id)})`], shown.length - 1, here);
  const room = MAX_HINT - bare.length - 3;
  if (room < 1) return undefined;
  return line(user, [`${first.nodelist.slice(0, room)}... (${formatF58(first.id)})`], shown.length - 1, here);
}
