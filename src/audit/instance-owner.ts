// Who the system instance runs as, read from its unit files when no broker can be asked (--root).

import type { Tree } from "./tree";

/** Where systemd finds flux.service, most important first (systemd.unit(5)). */
const UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

export interface UnitOwner {
  name: string;
  /** the file whose User= line said so */
  source: string;
}

/** The last User= of a unit file's [Service] section, if any. */
function userOf(text: string): string | undefined {
  let section = "";
  let user: string | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("[")) section = line;
    else if (section === "[Service]") {
      const m = /^User\s*=\s*(\S*)\s*$/.exec(line);
      if (m) user = m[1] || undefined; // an empty User= resets it
    }
  }
  return user;
}

/**
 * The User= of flux.service as systemd would see it: the first flux.service found in the unit
 * path, then its drop-ins (flux.service.d/*.conf of every unit dir, in name order), a later one
 * overriding; no User= means root. flux-core ships User=flux. Undefined when no unit file is there.
 */
export function instanceOwnerFromUnit(tree: Tree): UnitOwner | undefined {
  const unit = UNIT_DIRS.map((d) => `${d}/flux.service`).find((p) => tree.lstat(p));
  if (!unit) return undefined;
  const sources: string[] = [unit];
  const dropins = new Map<string, string>();
  for (const d of [...UNIT_DIRS].reverse())
    for (const n of (tree.list(`${d}/flux.service.d`) ?? []).filter((x) => x.endsWith(".conf"))) dropins.set(n, `${d}/flux.service.d/${n}`);
  sources.push(...[...dropins.keys()].sort().map((n) => dropins.get(n)!));
  // No User= at all: the service runs as root.
  let owner: UnitOwner = { name: "root", source: unit };
  for (const s of sources) {
    const text = tree.read(tree.resolve(s) ?? s);
    const name = text === undefined ? undefined : userOf(text);
    if (name !== undefined) owner = { name, source: s };
  }
  return owner;
}
