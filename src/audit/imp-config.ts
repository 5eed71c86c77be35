// The IMP's config: it must let the instance owner run flux-run-prolog / flux-run-housekeeping with FLUX_* kept.

import { isObject } from "../flux/json";
import { type Finding, errorIf, ok, warning } from "./finding";
import { lookup, readTomlDir } from "./toml-dir";
import type { Tree } from "./tree";

export const IMP_CONF_DIR = "/etc/flux/imp/conf.d";
/** What the hooks read from their environment; the IMP passes only what allowed-environment matches. */
const HOOK_ENV = ["FLUX_JOB_ID", "FLUX_JOB_USERID"];

/** The IMP's allowed-environment patterns are shell globs. */
function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(s);
}

export interface ImpContext {
  /** the instance owner's name: the broker's security.owner, else "flux" */
  owner: string;
  /** errors, not warnings, when things are missing (pam.manage-user-slice is on) */
  needed: boolean;
}

export interface ImpAudit {
  findings: Finding[];
  /** flux-core's libexec dir (…/flux), from run.prolog.path = …/flux/cmd/flux-run-prolog */
  fluxLibexec?: string;
}

export function auditImpConfig(tree: Tree, ctx: ImpContext): ImpAudit {
  const d = readTomlDir(tree, IMP_CONF_DIR, "imp", "the IMP refuses to run anything with it");
  const { needed, owner } = ctx;
  if (!d)
    return {
      findings: [errorIf(needed, "imp", `no ${IMP_CONF_DIR}: the IMP runs no prolog or housekeeping`, `create ${IMP_CONF_DIR}/pam.toml with [run.prolog] and [run.housekeeping] (flux-config-pam(5))`)],
    };
  const findings = [...d.findings];
  let fluxLibexec: string | undefined;
  for (const s of ["prolog", "housekeeping"] as const) {
    const key = `run.${s}`;
    const t = lookup(d.table, key);
    const before = findings.length;
    if (!isObject(t)) {
      findings.push(errorIf(needed, "imp", `${IMP_CONF_DIR}: no [${key}]: the IMP refuses flux-run-${s}, so every job's ${s} fails`, `add [${key}] (flux-config-pam(5))`));
      continue;
    }
    const users = Array.isArray(t["allowed-users"]) ? t["allowed-users"] : [];
    if (!users.includes(owner))
      findings.push(
        errorIf(needed, "imp", `${IMP_CONF_DIR}: ${key}.allowed-users does not include ${owner} (the instance owner): the IMP refuses to run the ${s}`, `allowed-users = [ "${owner}" ] in [${key}]`),
      );
    const env = (Array.isArray(t["allowed-environment"]) ? t["allowed-environment"] : []).filter((p) => typeof p === "string");
    const blocked = HOOK_ENV.filter((v) => !env.some((p) => globMatch(p, v)));
    if (blocked.length)
      findings.push(
        errorIf(needed, "imp", `${IMP_CONF_DIR}: ${key}.allowed-environment does not pass ${blocked.join(", ")}: flux-pam ${s} cannot tell whose job it is`, `allowed-environment = [ "FLUX_*" ] in [${key}]`),
      );
    const path = t.path;
    if (typeof path !== "string" || !path.startsWith("/"))
      findings.push(errorIf(needed, "imp", `${IMP_CONF_DIR}: ${key}.path is not an absolute path`, `path = "/usr/libexec/flux/cmd/flux-run-${s}" in [${key}]`));
    else {
      const m = /^(.*)\/cmd\/flux-run-(prolog|housekeeping)$/.exec(path);
      if (m && s === "prolog") fluxLibexec = m[1];
      if (!tree.lstat(path))
        findings.push(warning("imp", `${IMP_CONF_DIR}: ${key}.path ${path} does not exist`, `point it at flux-core's flux-run-${s} (e.g. /usr/libexec/flux/cmd/flux-run-${s})`));
    }
    if (findings.length === before) findings.push(ok("imp", `${IMP_CONF_DIR}: [${key}] lets ${owner} run ${path} with ${HOOK_ENV.join(", ")}`));
  }
  return { findings, fluxLibexec };
}
