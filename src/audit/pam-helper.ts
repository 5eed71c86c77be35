// The helper pam_flux.so runs (helper=, else the path compiled into the module), checked as the
// module checks it before every call: a refused helper is a node where every login is denied.

import { DEFAULT_LOCK_DIR } from "../node/lock-dir";
import { type Finding, error, ok, warning } from "./finding";
import type { PamEntry } from "./pam-conf";
import { where } from "./pam-conf";
import type { Tree } from "./tree";

/** Where libpam finds a module named without a path (Debian's multiarch dirs, then the others). */
export const PAM_MODULE_DIRS = [
  "/lib/x86_64-linux-gnu/security",
  "/usr/lib/x86_64-linux-gnu/security",
  "/lib/aarch64-linux-gnu/security",
  "/usr/lib/aarch64-linux-gnu/security",
  "/lib64/security",
  "/usr/lib64/security",
  "/lib/security",
  "/usr/lib/security",
];

/** The module file a line loads, when the tree has it. */
export function moduleFile(tree: Tree, module: string): string | undefined {
  if (module.startsWith("/")) return tree.lstat(module) ? module : undefined;
  return PAM_MODULE_DIRS.map((d) => `${d}/${module}`).find((p) => tree.lstat(p));
}

/**
 * The helper path compiled into pam_flux.so (make's HELPER): the one absolute path ending in
 * /flux-pam among its strings but the lock dir's (/run/flux-pam, its lock-dir= default).
 */
export function compiledHelper(tree: Tree, so: string): string | undefined {
  const text = tree.read(so);
  if (text === undefined) return undefined;
  const found = new Set([...text.matchAll(/(\/[A-Za-z0-9._/+-]+\/flux-pam)\0/g)].map((m) => m[1]!).filter((p) => p !== DEFAULT_LOCK_DIR));
  return found.size === 1 ? [...found][0] : undefined;
}

/**
 * Why pam_flux.so would refuse to run `path`, in its log's words, or undefined: the file it
 * resolves to must be a regular file of root's, writable by root alone, and every directory above
 * it root's, not writable by group or others without the sticky bit.
 */
export function helperProblem(tree: Tree, path: string): string | undefined {
  const real = tree.resolve(path);
  if (real === undefined) return `helper ${path}: No such file or directory`;
  const st = tree.lstat(real)!;
  if (!st.isFile()) return `helper ${real} is not a regular file`;
  if (st.uid !== 0) return `helper ${real} is owned by uid ${st.uid}, not root`;
  if (st.mode & 0o022) return `helper ${real} is group/other writable (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")})`;
  for (let dir = real.slice(0, real.lastIndexOf("/")) || "/"; ; dir = dir.slice(0, dir.lastIndexOf("/")) || "/") {
    const d = tree.lstat(dir);
    if (!d || !d.isDirectory() || d.uid !== 0) return `helper directory ${dir} is not a directory owned by root`;
    if (d.mode & 0o022 && !(d.mode & 0o1000)) return `helper directory ${dir} is group/other writable (mode ${(d.mode & 0o7777).toString(8).padStart(4, "0")})`;
    if (dir === "/") return undefined;
  }
}

/** One finding per distinct helper of the service's pam_flux.so lines (or none to say, for a module not found). */
export function auditHelpers(tree: Tree, lines: readonly PamEntry[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const e of lines) {
    const opt = e.args.find((a) => a.startsWith("helper="))?.slice("helper=".length);
    const so = moduleFile(tree, e.module);
    if (!opt && !so) {
      // (said of the running node only: an image given with --root may hold only its config)
      const key = `module:${e.module}`;
      if (tree.live && !seen.has(key))
        out.push(warning("pam", `${where(e.at)}: ${e.module} is not in ${PAM_MODULE_DIRS.join(", ")}: libpam fails every line that names it`, "install pam_flux.so (make install) where libpam looks for modules"));
      seen.add(key);
      continue;
    }
    const helper = opt ?? (so ? compiledHelper(tree, so) : undefined);
    if (!helper) continue; // (a module whose helper could not be read from it: nothing said)
    if (seen.has(helper)) continue;
    seen.add(helper);
    let problem: string | undefined;
    try {
      problem = helperProblem(tree, helper);
    } catch (e) {
      problem = `helper ${helper}: ${(e as Error).message}`; // (a symlink loop: the module's realpath fails too)
    }
    out.push(
      problem
        ? error("pam", `${where(e.at)}: pam_flux.so refuses its helper (${problem}): every ${e.type} call through this line is denied`, `install flux-pam as make install does (root's, mode 0755, in directories only root can write), or point helper= at such a file`)
        : ok("pam", `${where(e.at)}: pam_flux.so's helper ${helper}${opt ? " (helper=)" : ""}: root's, writable by root alone`),
    );
  }
  return out;
}
