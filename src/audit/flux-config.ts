// The system instance's config on disk, as flux-core 0.88 will take it: the keys its tables accept,
// the prolog per rank and housekeeping through the IMP, the systemd modules, root's owner role,
// and the [pam] / [exec] keys flux-pam reads.

import { basename } from "node:path";
import { ConfigError, type PamConfig, pamConfig } from "../flux/config";
import { type Json, isObject } from "../flux/json";
import { type Area, type Finding, error, errorIf, ok, warning } from "./finding";
import { FLUX_CORE_TABLES, FLUX_PAM_TABLE, keyProblems } from "./flux-core-keys";
import { lookup, readTomlDir } from "./toml-dir";
import type { Tree } from "./tree";

export const FLUX_CONF_DIR = "/etc/flux/system/conf.d";

type Table = { [key: string]: Json };

export interface FluxConfigAudit {
  findings: Finding[];
  /** the keys flux-pam reads, when the files have them right */
  config?: PamConfig;
  /** exec.imp, when set: what perilog and housekeeping run */
  imp?: string;
}

/** Each table flux-core refuses a key of, in the broker's own words: the instance would not start. */
function tableKeys(cfg: Table, dir: string): Finding[] {
  const out: Finding[] = [];
  for (const spec of [...FLUX_CORE_TABLES, FLUX_PAM_TABLE]) {
    const t = lookup(cfg, spec.table);
    if (t === undefined) continue;
    if (!isObject(t)) {
      out.push(error("flux-config", `${dir}: ${spec.table} is not a table`, `make it a [${spec.table}] table (flux-config-pam(5))`));
      continue;
    }
    for (const p of keyProblems(spec, t)) {
      const who = spec === FLUX_PAM_TABLE ? "flux-pam ignores it" : `the broker refuses the table ("${p.broker}") and the instance does not start`;
      out.push(
        (spec === FLUX_PAM_TABLE ? warning : error)("flux-config", `${dir}: ${p.what}: ${who}`, `correct or remove it in [${spec.table}] (flux-config-pam(5))`),
      );
    }
  }
  return out;
}

/**
 * perilog.so runs the prolog (per rank), the job manager itself runs housekeeping (always on every
 * rank of the job); without a `command` both run `<exec.imp> run prolog|housekeeping`, which the
 * IMP turns into flux-run-prolog / flux-run-housekeeping and so into our hooks.
 */
function hooks(cfg: Table, dir: string, needed: boolean): Finding[] {
  const out: Finding[] = [];
  const plugins = lookup(cfg, "job-manager.plugins");
  const perilog = Array.isArray(plugins) && plugins.some((p) => isObject(p) && typeof p.load === "string" && basename(p.load) === "perilog.so");
  if (!perilog)
    out.push(
      errorIf(needed, "flux-config", `${dir}: job-manager.plugins does not load perilog.so: no prolog runs`, `add plugins = [ { load = "perilog.so" } ] to [job-manager] (flux-config-pam(5))`),
    );
  const imp = lookup(cfg, "exec.imp");
  for (const s of ["prolog", "housekeeping"] as const) {
    const t = lookup(cfg, `job-manager.${s}`);
    if (!isObject(t)) {
      const add = s === "prolog" ? "with per-rank = true" : "(an empty table is enough: housekeeping runs on every rank of the job)";
      out.push(errorIf(needed, "flux-config", `${dir}: no [job-manager.${s}]: flux-pam ${s} never runs`, `add [job-manager.${s}] ${add}`));
      continue;
    }
    if (s === "prolog" && t["per-rank"] !== true)
      out.push(
        errorIf(
          needed,
          "flux-config",
          `${dir}: job-manager.prolog.per-rank is not true: the prolog runs on the job's first node only, the other nodes' slices are never set up and their logins are refused`,
          "set per-rank = true in [job-manager.prolog]",
        ),
      );
    if (t.command !== undefined)
      out.push(
        warning("flux-config", `${dir}: job-manager.${s}.command is set: flux-pam ${s} runs only if that command runs flux-run-${s} as root`, `remove command, so the job manager runs "<exec.imp> run ${s}"`),
      );
    else if (typeof imp !== "string") {
      const broker = s === "prolog" ? "[job-manager.prolog]: no command specified and exec.imp not defined" : "job-manager.housekeeping implies IMP but exec.imp is undefined";
      out.push(
        error("flux-config", `${dir}: [job-manager.${s}] has no command and exec.imp is not set: the broker refuses it ("${broker}") and the instance does not start`, `set imp = "/usr/libexec/flux/flux-imp" in [exec]`),
      );
    }
  }
  if (out.length === 0) out.push(ok("flux-config", `${dir}: perilog.so loaded, prolog per-rank; prolog and housekeeping run through ${imp as string} run`));
  return out;
}

/** The IMP that perilog and housekeeping run must be there, and setuid root to run our hooks as root. */
function impBinary(tree: Tree, imp: string, needed: boolean): Finding[] {
  if (!imp.startsWith("/")) return [error("flux-config", `exec.imp = ${JSON.stringify(imp)} is not an absolute path`, `imp = "/usr/libexec/flux/flux-imp" in [exec]`)];
  const st = tree.lstat(imp);
  const target = st?.isSymbolicLink() ? tree.resolve(imp) : imp;
  const tst = target === undefined ? undefined : tree.lstat(target);
  if (!tst) return [errorIf(needed, "flux-config", `exec.imp ${imp} does not exist: every job of another user, every prolog and every housekeeping fails`, "install flux-security's flux-imp there, or correct exec.imp")];
  if (tst.uid !== 0 || (tst.mode & 0o4000) === 0)
    return [errorIf(needed, "flux-config", `exec.imp ${imp} is not setuid root: it cannot run flux-run-prolog and flux-run-housekeeping as root`, `chown root:root ${target}; chmod 4755 ${target}`)];
  return [ok("flux-config", `exec.imp ${imp}: setuid root`)];
}

/** sdexec-constrain-resources needs jobs under sdexec, and sdexec-mapper, which flux-core loads only with systemd.enable. */
function execTable(cfg: Table, pam: PamConfig, dir: string): Finding[] {
  if (!pam.constrainResources) return [ok("flux-config", `${dir}: exec.sdexec-constrain-resources is off: the slice gets no CPU, memory-node or device limits`)];
  const out: Finding[] = [];
  const service = lookup(cfg, "exec.service");
  if (service !== "sdexec")
    out.push(
      error(
        "flux-config",
        `${dir}: exec.sdexec-constrain-resources = true but exec.service is ${service === undefined ? "not set" : JSON.stringify(service)}: jobs do not run under systemd`,
        `set service = "sdexec" in [exec]`,
      ),
    );
  if (lookup(cfg, "systemd.enable") !== true)
    out.push(
      error(
        "flux-config",
        `${dir}: exec.sdexec-constrain-resources = true but systemd.enable is not true: flux-core's systemd support (sdexec, sdexec-mapper) is off, so jobs are not run under systemd and the prolog cannot map their resources`,
        "set enable = true in [systemd]",
      ),
    );
  if (out.length === 0) out.push(ok("flux-config", `${dir}: exec.service = "sdexec", sdexec-constrain-resources = true, systemd.enable = true`));
  return out;
}

/**
 * The hooks run as root. Unless root is an owner of the instance, the broker treats it as a guest:
 * it refuses job-info.lookup of another user's R (EPERM), and with private-mode it lists only
 * root's own jobs, so housekeeping would take every user's slice for empty.
 */
export function rootOwnerFinding(area: Area, pam: PamConfig, where: string, owner: number | undefined): Finding {
  if (owner === 0) return ok(area, `${where}: the instance runs as root: the hooks are its owner`);
  if (pam.allowRootOwner) return ok(area, `${where}: access.allow-root-owner = true: the hooks (run as root) are an owner of the instance`);
  const fatal = pam.constrainResources || pam.privateMode;
  const what = fatal
    ? `${where}: access.allow-root-owner is not true: the hooks run as root, which the broker treats as a guest, so it refuses them ${pam.constrainResources ? "the job's R (job-info.lookup: EPERM): every prolog fails and drains the node" : "every job but root's (access.private-mode): housekeeping would tear down slices of running jobs, so the hooks refuse to run"}`
    : `${where}: access.allow-root-owner is not true: the hooks run as root, a guest of the instance; they work only while exec.sdexec-constrain-resources and access.private-mode are off`;
  return errorIf(fatal && pam.manageUserSlice, area, what, "set allow-root-owner = true in [access]");
}

export function auditFluxConfig(tree: Tree, opts: { owner?: number } = {}): FluxConfigAudit {
  const d = readTomlDir(tree, FLUX_CONF_DIR, "flux-config", "the broker does not start with it");
  if (!d)
    return {
      findings: [error("flux-config", `no ${FLUX_CONF_DIR}: the system instance has no config here (pam.manage-user-slice is off)`, `create it with [pam] and the perilog tables (flux-config-pam(5))`)],
    };
  const findings = [...d.findings, ...tableKeys(d.table, FLUX_CONF_DIR)];
  let cfg: PamConfig | undefined;
  try {
    cfg = pamConfig(d.table);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    findings.push(error("flux-config", `${FLUX_CONF_DIR}: ${e.message}`, "correct the key (flux-config-pam(5))"));
  }
  if (cfg)
    findings.push(
      ok(
        "flux-config",
        `${FLUX_CONF_DIR}: pam.manage-user-slice = ${cfg.manageUserSlice}${cfg.manageUserSlice ? "" : " (logins are admitted by job but not contained)"}, kill-user-slice = ${cfg.killUserSlice}, kill-slice-grace-time = ${cfg.killSliceGraceTime}s`,
      ),
    );
  const needed = cfg?.manageUserSlice ?? true;
  findings.push(...hooks(d.table, FLUX_CONF_DIR, needed));
  const imp = lookup(d.table, "exec.imp");
  if (typeof imp === "string") findings.push(...impBinary(tree, imp, needed));
  if (cfg) findings.push(...execTable(d.table, cfg, FLUX_CONF_DIR), rootOwnerFinding("flux-config", cfg, FLUX_CONF_DIR, opts.owner));
  return { findings, config: cfg, ...(typeof imp === "string" ? { imp } : {}) };
}
