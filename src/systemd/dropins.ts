// The drop-ins SetUnitProperties(runtime=true) writes: /run/systemd/system.control/UNIT.d/50-NAME.conf.
// Listing them is how housekeeping knows a slice still carries properties; removing them is the
// file half of a revert (systemd's memory is the other half: see commands/housekeeping.ts).

import { readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";

export const RUNTIME_CONTROL_DIR = "/run/systemd/system.control";

/** systemd's unit_write_setting names each file after the property it sets: 50-AllowedCPUs.conf. */
const SETTING_FILE = /^50-[A-Za-z]+\.conf$/;

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** The property a drop-in of that name sets (50-AllowedCPUs.conf: AllowedCPUs). */
function propertyOf(name: string): string {
  return name.slice(3, -5);
}

/**
 * The runtime property drop-ins of `unit` (full paths, sorted), of the given properties only when
 * `properties` is given; none when the directory is missing.
 */
export function runtimeDropins(unit: string, properties?: readonly string[], root = RUNTIME_CONTROL_DIR): string[] {
  const dir = join(root, `${unit}.d`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if (isMissing(e)) return [];
    throw e;
  }
  return names
    .filter((n) => SETTING_FILE.test(n) && (properties === undefined || properties.includes(propertyOf(n))))
    .sort()
    .map((n) => join(dir, n));
}

/**
 * Removes the unit's runtime drop-ins of these properties, and their directory when nothing else
 * is in it. Others are left alone: an administrator's `systemctl set-property --runtime` of
 * another property is theirs, and so is any file SetUnitProperties did not write. Returns what
 * it removed.
 */
export function removeRuntimeDropins(unit: string, properties: readonly string[], root = RUNTIME_CONTROL_DIR): string[] {
  const files = runtimeDropins(unit, properties, root);
  const removed: string[] = [];
  for (const f of files) {
    try {
      unlinkSync(f);
      removed.push(f);
    } catch (e) {
      if (!isMissing(e)) throw e; // gone meanwhile: what we wanted
    }
  }
  try {
    rmdirSync(join(root, `${unit}.d`));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!isMissing(e) && code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
  }
  return removed;
}
