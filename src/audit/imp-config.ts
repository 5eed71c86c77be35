// The IMP's config as flux-imp (flux-security 0.15) reads it: [run.prolog] and [run.housekeeping]
// must let the instance owner run flux-run-prolog / flux-run-housekeeping, and survive the IMP's
// merge of its conf.d, which takes each top-level table whole from the last file that has it.

import { isObject } from "../flux/json";
import { type Finding, error, errorIf, ok, warning } from "./finding";
import { lookup, readTomlDir } from "./toml-dir";
import type { Tree } from "./tree";

export const IMP_CONF_DIR = "/etc/flux/imp/conf.d";
/** The IMP always passes these two; everything else only if allowed-environment matches it. */
const ALWAYS_PASSED = ["FLUX_JOB_ID", "FLUX_JOB_USERID"];
/** The PATH the IMP gives what it runs (flux-security src/imp/run.c). */
export const IMP_PATH = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The IMP's allowed-environment patterns are shell globs. */
function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(s);
}

/**
 * Why the IMP would refuse to run `path` for a [run.*] table, in its own words, or undefined. It
 * checks the file (not a symbolic link, a regular file, root's, writable by neither group nor
 * others) and its directory as named (a directory, not a link, root's, not writable by others, nor
 * by a group but root's, without the sticky bit), and dies with "run: PATH: REASON".
 */
export function runPathProblem(tree: Tree, path: string): string | undefined {
  const st = tree.lstat(path);
  if (!st) return "No such file or directory";
  if (st.isSymbolicLink()) return "symbolic link";
  if (!st.isFile()) return "File is not a regular file";
  if (st.uid !== 0) return "insecure file ownership";
  if (st.mode & 0o022) return `bad file permissions (${(st.mode & 0o7777).toString(8).padStart(4, "0")})`;
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const d = tree.lstat(dir);
  if (!d) return "Unable to stat parent directory";
  if (!d.isDirectory()) return "Unable to check parent directory. Unexpected file type";
  if (d.uid !== 0) return "Invalid ownership on parent directory";
  const sticky = (d.mode & 0o1000) !== 0;
  if (d.gid !== 0 && d.mode & 0o020 && !sticky) return "parent directory is group-writable without sticky bit";
  if (d.mode & 0o002 && !sticky) return "parent directory is world-writable without sticky bit";
  return undefined;
}

export interface ImpOwner {
  name: string;
  /** how we know: the broker's security.owner, flux.service's User=, or flux-core's default */
  source: "broker" | "unit" | "assumed";
}

export interface ImpContext {
  owner: ImpOwner;
  /** errors, not warnings, when things are missing (pam.manage-user-slice is on) */
  needed: boolean;
}

export interface ImpAudit {
  findings: Finding[];
  /** flux-core's libexec dir (…/flux), from run.prolog.path = …/flux/cmd/flux-run-prolog */
  fluxLibexec?: string;
}

function ownerWords(o: ImpOwner): string {
  return o.source === "broker" ? `${o.name} (the instance owner)` : o.source === "unit" ? `${o.name} (flux.service's User=)` : `${o.name} (flux-core's default instance owner; no broker or flux.service said otherwise)`;
}

/** A later file's top-level table replaced an earlier one whole: the earlier one's entries are not in force. */
function shadowFindings(shadowed: { table: string; file: string; by: string; lost: string[] }[]): Finding[] {
  return shadowed.map((s) => {
    const lost = s.lost.length ? `, so ${s.lost.map((k) => `[${s.table}.${k}]`).join(", ")} of ${s.file} ${s.lost.length === 1 ? "has" : "have"} no effect` : "";
    return error(
      "imp",
      `${s.file}'s [${s.table}] is replaced whole by ${s.by}'s: the IMP merges its conf.d one top-level table at a time${lost}`,
      `keep every [${s.table}.*] table in one file: move them from ${s.file} into ${s.by} (or the other way round)`,
    );
  });
}

/** flux-run-prolog turns FLUX_JOB_ID into its F58 with `flux job id`, found on the IMP's PATH. */
function fluxOnPath(tree: Tree, needed: boolean): Finding {
  const found = IMP_PATH.map((d) => `${d}/flux`).find((p) => {
    const t = tree.resolve(p);
    return t !== undefined && tree.lstat(t)?.isFile();
  });
  if (found) return ok("imp", `${found}: flux-run-prolog and flux-run-housekeeping find flux on the IMP's PATH`);
  return errorIf(
    needed,
    "imp",
    `no flux in the IMP's PATH (${IMP_PATH.join(":")}): flux-run-prolog and flux-run-housekeeping cannot run "flux job id", so every hook gets an empty FLUX_JOB_ID and fails (flux-core installed outside /usr?)`,
    "ln -s PREFIX/bin/flux /usr/bin/flux, with PREFIX flux-core's install prefix",
  );
}

export function auditImpConfig(tree: Tree, ctx: ImpContext): ImpAudit {
  const d = readTomlDir(tree, IMP_CONF_DIR, "imp", "the IMP refuses to run anything with it", "top-level");
  const { needed, owner } = ctx;
  if (!d)
    return {
      findings: [errorIf(needed, "imp", `no ${IMP_CONF_DIR}: the IMP runs no prolog or housekeeping`, `create ${IMP_CONF_DIR}/imp.toml with [run.prolog] and [run.housekeeping] (flux-config-pam(5))`)],
    };
  const findings = [...d.findings, ...shadowFindings(d.shadowed)];
  const run = d.table.run;
  if (isObject(run) && Object.keys(run).length > 0)
    findings.push(ok("imp", `in force: ${Object.keys(run).map((k) => `[run.${k}]`).join(", ")} from ${d.origins.run}`));
  let fluxLibexec: string | undefined;
  let tables = 0;
  for (const s of ["prolog", "housekeeping"] as const) {
    const key = `run.${s}`;
    const t = lookup(d.table, key);
    const before = findings.length;
    if (!isObject(t)) {
      findings.push(errorIf(needed, "imp", `${IMP_CONF_DIR}: no [${key}] in force: the IMP refuses flux-run-${s} ("run: ${s}: no configuration found"), so every job's ${s} fails`, `add [${key}] to the file that holds your other [run.*] tables (flux-config-pam(5))`));
      continue;
    }
    tables++;
    const users = Array.isArray(t["allowed-users"]) ? t["allowed-users"] : [];
    if (!users.includes(owner.name))
      // Only a guess at the owner is not worth an error: the broker or flux.service would know.
      findings.push(
        errorIf(
          needed && owner.source !== "assumed",
          "imp",
          `${IMP_CONF_DIR}: ${key}.allowed-users [${users.map((u) => JSON.stringify(u)).join(", ")}] does not include ${ownerWords(owner)}: the IMP refuses to run the ${s} ("run: permission denied")`,
          `allowed-users = [ "${owner.name}" ] in [${key}]`,
        ),
      );
    const env = (Array.isArray(t["allowed-environment"]) ? t["allowed-environment"] : []).filter((p): p is string => typeof p === "string");
    if (!env.some((p) => globMatch(p, "FLUX_URI")))
      findings.push(
        warning(
          "imp",
          `${IMP_CONF_DIR}: ${key}.allowed-environment does not pass FLUX_URI: flux-pam ${s} and flux-run-system-scripts ask the default broker, local:///run/flux/local`,
          `allowed-environment = [ "FLUX_*" ] in [${key}]`,
        ),
      );
    const path = t.path;
    if (typeof path !== "string" || !path.startsWith("/"))
      findings.push(errorIf(needed, "imp", `${IMP_CONF_DIR}: ${key}.path is not an absolute path ("run: ${s}: path is missing or invalid")`, `path = "/usr/libexec/flux/cmd/flux-run-${s}" in [${key}]`));
    else {
      const m = /^(.*)\/cmd\/flux-run-(prolog|housekeeping)$/.exec(path);
      if (m && s === "prolog") fluxLibexec = m[1];
      const problem = runPathProblem(tree, path);
      if (problem)
        findings.push(
          errorIf(
            needed,
            "imp",
            `${IMP_CONF_DIR}: ${key}.path ${path}: the IMP refuses to run it ("run: ${path}: ${problem}"): every ${s} fails${s === "prolog" ? " and the node drains" : ""}`,
            problem === "No such file or directory"
              ? `point it at flux-core's flux-run-${s} (e.g. /usr/libexec/flux/cmd/flux-run-${s})`
              : `make ${path} a regular file of root's, writable by root alone, in a directory of root's nobody else can write to (point path at the file itself, not a link)`,
          ),
        );
    }
    if (findings.length === before)
      findings.push(ok("imp", `${d.origins.run}: [${key}] lets ${owner.name} run ${path as string} with ${[...ALWAYS_PASSED, "FLUX_URI"].join(", ")}`));
  }
  if (tables > 0) findings.push(fluxOnPath(tree, needed));
  return { findings, fluxLibexec };
}
