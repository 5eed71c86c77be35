// sshd must use PAM at all, or /etc/pam.d/sshd (and pam_flux.so in it) is never read.

import { type Finding, error, ok } from "./finding";
import type { Tree } from "./tree";

export const SSHD_CONFIG = "/etc/ssh/sshd_config";
const MAX_DEPTH = 16;

/** `*` and `?` of a glob, as a regular expression for one path component. */
function globRegExp(pattern: string): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]");
  return new RegExp(`^${re}$`);
}

/** The files an Include names, in the sorted order sshd reads them (globs in the last component only). */
function includeFiles(tree: Tree, pattern: string): string[] {
  const path = pattern.startsWith("/") ? pattern : `/etc/ssh/${pattern}`;
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash) || "/";
  const name = path.slice(slash + 1);
  if (!/[*?]/.test(name)) return [path];
  const re = globRegExp(name);
  return (tree.list(dir) ?? []).filter((n) => re.test(n)).map((n) => `${dir}/${n}`);
}

/**
 * The first UsePAM of the global section (sshd keeps the first value it reads; UsePAM is not
 * allowed inside Match), following Include. Undefined when no file sets it.
 */
export function usePam(tree: Tree, path = SSHD_CONFIG, depth = 0, seen = new Set<string>()): { value: string; at: string } | undefined {
  // A file read once without a UsePAM has none the second time either: each is read once (an
  // Include loop, which sshd refuses, or files fanning out, end at once).
  if (depth > MAX_DEPTH || seen.has(path)) return undefined;
  seen.add(path);
  const text = tree.read(path);
  if (text === undefined) return undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*([A-Za-z]+)(?:\s*=\s*|\s+)(.*?)\s*$/.exec(lines[i]!.replace(/#.*/, ""));
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    if (key === "match") return undefined;
    if (key === "usepam") return { value: m[2]!.replace(/^"(.*)"$/, "$1").toLowerCase(), at: `${path}:${i + 1}` };
    if (key === "include")
      for (const p of m[2]!.split(/\s+/))
        for (const f of includeFiles(tree, p)) {
          const found = usePam(tree, f, depth + 1, seen);
          if (found) return found;
        }
  }
  return undefined;
}

export function auditSshd(tree: Tree): Finding[] {
  if (tree.read(SSHD_CONFIG) === undefined) return [];
  const u = usePam(tree);
  if (u?.value === "yes") return [ok("sshd", `${u.at}: UsePAM yes`)];
  return [
    error(
      "sshd",
      `${u ? `${u.at}: UsePAM ${u.value}` : `${SSHD_CONFIG}: no UsePAM (the default is no)`}: sshd never reads /etc/pam.d/sshd, so pam_flux.so limits nothing`,
      `set "UsePAM yes" in ${SSHD_CONFIG} and restart sshd`,
    ),
  ];
}
