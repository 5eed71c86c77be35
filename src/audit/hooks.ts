// The entries in flux-core's prolog.d / housekeeping.d that run flux-pam, as make install puts them there.

import { basename } from "node:path";
import { type Finding, error, errorIf, ok, warning } from "./finding";
import type { Tree } from "./tree";

/** Where flux-core keeps cmd/flux-run-prolog and reads prolog.d (its libexecdir/flux). */
export const FLUX_LIBEXEC_DIRS = ["/usr/libexec/flux", "/usr/lib/flux"];
/** Where a PREFIX=/usr/local install puts the entries, which flux-core does not read. */
const ELSEWHERE = ["/usr/local/libexec/flux", "/usr/local/lib/flux"];
const MAX_SCRIPT = 64 * 1024;

export type HookKind = "prolog" | "housekeeping";

export interface HookContext {
  /** flux-core's libexec dir, when the IMP config names flux-run-prolog's path */
  fluxLibexec?: string;
  /** errors, not warnings, when an entry is missing (pam.manage-user-slice is on) */
  needed: boolean;
}

/** The flux-core libexec dir whose prolog.d flux-run-prolog reads. */
export function fluxLibexecDir(tree: Tree, fromImp?: string): string {
  return (
    fromImp ??
    FLUX_LIBEXEC_DIRS.find((d) => tree.lstat(`${d}/cmd/flux-run-prolog`)) ??
    FLUX_LIBEXEC_DIRS.find((d) => tree.lstat(`${d}/prolog.d`)) ??
    FLUX_LIBEXEC_DIRS[0]!
  );
}

/** Runs as root from every prolog: nobody else may be able to change it. */
function rootOnly(tree: Tree, path: string, kind: HookKind): Finding | undefined {
  const st = tree.lstat(path);
  // A link's own mode means nothing; what it points at is checked on its own.
  if (!st || st.isSymbolicLink()) return undefined;
  const why = st.uid !== 0 ? `owned by uid ${st.uid}` : st.mode & 0o022 ? "group/other writable" : undefined;
  if (!why) return undefined;
  return error("hooks", `${path} is ${why}: whoever can write it runs code as root in every ${kind}`, `chown root:root ${path}; chmod go-w ${path}`);
}

/** What an entry runs: the flux-pam binary (a link or a copy), a script naming flux-pam, or something else. */
function entryRuns(tree: Tree, path: string): { binary: boolean; script?: string; target?: string } {
  const target = tree.resolve(path);
  if (!target) return { binary: false };
  if (basename(target) === "flux-pam" || /^flux-pam-(prolog|housekeeping)$/.test(basename(path))) return { binary: true, target };
  const st = tree.lstat(target);
  if (!st?.isFile() || st.size > MAX_SCRIPT) return { binary: false, target };
  return { binary: false, script: tree.read(target), target };
}

/** What `test -f FILE -a -x FILE` says (a link followed): flux-run-system-scripts runs only such files. */
function isExecutableFile(tree: Tree, path: string): boolean {
  const target = tree.resolve(path);
  const st = target === undefined ? undefined : tree.lstat(target);
  return st !== undefined && st.isFile() && (st.mode & 0o111) !== 0;
}

/** flux-run-system-scripts' own directory for site scripts, read after flux-core's libexec one. */
export const SYSCONF_DIR = "/etc/flux/system";

/** The entries of one directory that run flux-pam: how many, and what is wrong with each (or ok). */
function hookEntries(tree: Tree, dir: string, kind: HookKind): { found: number; findings: Finding[] } {
  const other: HookKind = kind === "prolog" ? "housekeeping" : "prolog";
  const out: Finding[] = [];
  let found = 0;
  for (const name of tree.list(dir) ?? []) {
    const path = `${dir}/${name}`;
    const r = entryRuns(tree, path);
    const mentions = r.binary || (r.script !== undefined && /flux-pam/.test(r.script));
    if (!mentions) {
      if (!r.target && tree.lstat(path)?.isSymbolicLink() && /flux-pam/.test(name)) {
        found++; // meant to run flux-pam: said once, here, rather than again as "no entry"
        out.push(error("hooks", `${path} is a link to nothing: flux-pam ${kind} does not run`, `reinstall flux-pam (make install), or remove ${path}`));
      }
      continue;
    }
    found++;
    const target = r.target!;
    if (r.binary && name !== `flux-pam-${kind}`) {
      // The binary knows which hook it is only by the name it is run under.
      const runs = name === `flux-pam-${other}` ? `runs flux-pam ${other} at every ${kind}` : "prints its usage and fails";
      out.push(error("hooks", `${path} runs the flux-pam binary under the name ${name}: it ${runs}`, `name the link ${dir}/flux-pam-${kind}`));
      continue;
    }
    if (r.script !== undefined && !new RegExp(`flux-pam(-${kind}\\b|\\S*\\s+${kind}\\b)`).test(r.script))
      out.push(warning("hooks", `${path} names flux-pam but not "flux-pam ${kind}"`, `check by hand that it runs flux-pam ${kind}`));
    const problems: Finding[] = [];
    const st = tree.lstat(target)!;
    if ((st.mode & 0o111) === 0) problems.push(error("hooks", `${target} is not executable: flux-run-${kind} does not run it`, `chmod 0755 ${target}`));
    for (const p of new Set([dir, path, target])) {
      const f = rootOnly(tree, p, kind);
      if (f) problems.push(f);
    }
    out.push(...(problems.length ? problems : [ok("hooks", `${path}${target === path ? "" : ` -> ${target}`}`)]));
  }
  return { found, findings: out };
}

/**
 * flux-run-system-scripts runs every executable file of flux-core's LIBEXEC/flux/KIND.d, then
 * those of /etc/flux/system/KIND.d, unless an executable /etc/flux/system/KIND exists (the
 * legacy script: run instead of that directory). An entry in either runs flux-pam.
 */
function auditHookDir(tree: Tree, base: string, kind: HookKind, needed: boolean): Finding[] {
  const dir = `${base}/${kind}.d`;
  const siteDir = `${SYSCONF_DIR}/${kind}.d`;
  const legacy = `${SYSCONF_DIR}/${kind}`;
  const legacyRuns = isExecutableFile(tree, legacy);
  const own = hookEntries(tree, dir, kind);
  const site = hookEntries(tree, siteDir, kind);
  const out: Finding[] = [...own.findings];
  let found = own.found;
  if (legacyRuns && site.found > 0)
    out.push(
      errorIf(
        needed && own.found === 0,
        "hooks",
        `${siteDir} runs flux-pam ${kind}, but flux-run-${kind} skips that directory: ${legacy} exists and is run instead`,
        `move the entry to ${dir}, or run it from ${legacy}`,
      ),
    );
  else {
    out.push(...site.findings);
    found += site.found;
  }
  const where = [own.found ? dir : undefined, !legacyRuns && site.found ? siteDir : undefined].filter((d) => d !== undefined).join(" and ");
  if (found > 1) out.push(warning("hooks", `${where} ${where.includes(" and ") ? "hold" : "has"} ${found} entries that run flux-pam: the ${kind} runs ${found} times`, "keep one"));
  if (found === 0) {
    const stray = [...FLUX_LIBEXEC_DIRS, ...ELSEWHERE].filter((d) => d !== base && tree.lstat(`${d}/${kind}.d/flux-pam-${kind}`));
    const also = stray.length ? ` (${stray.map((d) => `${d}/${kind}.d`).join(", ")} has one, but flux-run-${kind} reads ${dir})` : "";
    const what = kind === "prolog" ? "slices are not constrained and no marker is made, so sessions are refused" : "slices are never shrunk or torn down after jobs";
    out.push(
      errorIf(
        needed,
        "hooks",
        `no entry in ${dir} (nor ${siteDir}) runs flux-pam ${kind}: ${what}${also}`,
        `make install LIBEXECDIR=${base.replace(/\/flux$/, "")} (or ln -s ../../flux-pam/flux-pam ${dir}/flux-pam-${kind})`,
      ),
    );
  }
  return out;
}

export function auditHooks(tree: Tree, ctx: HookContext): Finding[] {
  const base = fluxLibexecDir(tree, ctx.fluxLibexec);
  return [...auditHookDir(tree, base, "prolog", ctx.needed), ...auditHookDir(tree, base, "housekeeping", ctx.needed)];
}
