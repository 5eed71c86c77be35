// Linger for the users with jobs here: a lingering user manager outlives the jobs, and the prolog refuses it.

import { LINGER_DIR, lingerFileName } from "../systemd/logind";
import type { Linger } from "../systemd/types";
import { type Finding, error, ok, warning } from "./finding";
import type { Tree } from "./tree";

export interface JobUserLinger {
  name: string;
  uid: number;
  linger: Linger;
}

/** Linger (its file, as logind reads it) of each user with a running job on this rank. */
export function auditJobUsersLinger(users: readonly JobUserLinger[], rank: number): Finding[] {
  if (users.length === 0) return [ok("linger", `no user has a running job on rank ${rank}: no linger to check now`)];
  const on = users.filter((u) => u.linger.enabled);
  if (on.length === 0) {
    const sources = [...new Set(users.map((u) => u.linger.source))].join(", ");
    return [ok("linger", `no linger for the ${users.length} user${users.length === 1 ? "" : "s"} with running jobs on rank ${rank} (${sources})`)];
  }
  return on.map((u) =>
    error(
      "linger",
      `linger is enabled for ${u.name} (uid ${u.uid}), who has running jobs here: user@${u.uid}.service outlives the jobs, sessions can escape the slice, and ${u.name}'s next prolog here fails`,
      `loginctl disable-linger ${u.name}`,
    ),
  );
}

/**
 * Without the broker nobody can say who has jobs here: every linger file counts, except the
 * instance owner's (the hooks skip the owner).
 */
export function auditLingerFiles(tree: Tree, owner: string, why: string): Finding[] {
  // (file names are user names as logind escapes them: lingerFileName)
  const names = (tree.list(LINGER_DIR) ?? []).filter((n) => n !== lingerFileName(owner) && !n.startsWith("."));
  if (names.length === 0) return [ok("linger", `${why}: no user lingers (${LINGER_DIR})`)];
  const fix = (n: string) => (tree.live ? `loginctl disable-linger ${n}` : `remove ${LINGER_DIR}/${n}`);
  return names.map((n) =>
    warning("linger", `${why}: linger is enabled for ${n} (${LINGER_DIR}/${n}): every prolog of ${n}'s jobs on this node fails`, fix(n)),
  );
}
