// The system instance's config on disk: perilog per rank for the hooks, [pam] and [exec] as flux-pam reads them.

import { basename } from "node:path";
import { ConfigError, type PamConfig, pamConfig } from "../flux/config";
import { type Json, isObject } from "../flux/json";
import { type Finding, error, errorIf, ok, warning } from "./finding";
import { lookup, readTomlDir } from "./toml-dir";
import type { Tree } from "./tree";

export const FLUX_CONF_DIR = "/etc/flux/system/conf.d";

export interface FluxConfigAudit {
  findings: Finding[];
  /** the keys flux-pam reads, when the files have them right */
  config?: PamConfig;
}

function perilog(table: { [key: string]: Json }, dir: string, needed: boolean): Finding[] {
  const out: Finding[] = [];
  const plugins = lookup(table, "job-manager.plugins");
  const loaded = Array.isArray(plugins) && plugins.some((p) => isObject(p) && typeof p.load === "string" && basename(p.load) === "perilog.so");
  if (!loaded)
    out.push(
      errorIf(needed, "flux-config", `${dir}: job-manager.plugins does not load perilog.so: no prolog or housekeeping runs`, `add plugins = [ { load = "perilog.so" } ] to [job-manager] (flux-config-pam(5))`),
    );
  for (const s of ["prolog", "housekeeping"] as const) {
    const t = lookup(table, `job-manager.${s}`);
    if (!isObject(t)) {
      out.push(errorIf(needed, "flux-config", `${dir}: no [job-manager.${s}]: flux-pam ${s} never runs`, `add [job-manager.${s}] with per-rank = true`));
      continue;
    }
    if (t["per-rank"] !== true)
      out.push(
        errorIf(
          needed,
          "flux-config",
          `${dir}: job-manager.${s}.per-rank is not true: the ${s} runs on the job's first node only, the other nodes' slices are never ${s === "prolog" ? "set up" : "torn down"}`,
          `set per-rank = true in [job-manager.${s}]`,
        ),
      );
    if (t.command !== undefined)
      out.push(
        warning("flux-config", `${dir}: job-manager.${s}.command is set: flux-pam ${s} runs only if that command runs flux-run-${s}`, `remove command, so the default (flux-imp run ${s}) runs`),
      );
  }
  if (out.length === 0) out.push(ok("flux-config", `${dir}: perilog.so loaded; prolog and housekeeping per-rank`));
  return out;
}

function execTable(table: { [key: string]: Json }, cfg: PamConfig, dir: string): Finding {
  if (!cfg.constrainResources) return ok("flux-config", `${dir}: exec.sdexec-constrain-resources is off: the slice gets no CPU, memory-node or device limits`);
  const service = lookup(table, "exec.service");
  if (service !== "sdexec")
    return error(
      "flux-config",
      `${dir}: exec.sdexec-constrain-resources = true but exec.service is ${service === undefined ? "not set" : JSON.stringify(service)}: jobs do not run under systemd`,
      `set service = "sdexec" in [exec]`,
    );
  return ok("flux-config", `${dir}: exec.service = "sdexec", sdexec-constrain-resources = true`);
}

export function auditFluxConfig(tree: Tree): FluxConfigAudit {
  const d = readTomlDir(tree, FLUX_CONF_DIR, "flux-config", "the broker does not start with it");
  if (!d)
    return {
      findings: [error("flux-config", `no ${FLUX_CONF_DIR}: the system instance has no config here (pam.manage-user-slice is off)`, `create it with [pam] and the perilog tables (flux-config-pam(5))`)],
    };
  const findings = [...d.findings];
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
  findings.push(...perilog(d.table, FLUX_CONF_DIR, cfg?.manageUserSlice ?? true));
  if (cfg) findings.push(execTable(d.table, cfg, FLUX_CONF_DIR));
  return { findings, config: cfg };
}
