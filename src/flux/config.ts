// The [pam], [exec] and [access] keys flux-pam reads from the broker's config, typed and checked.

import { parseFsd } from "./fsd";
import { type Json, isObject, numberValue } from "./json";

export interface PamConfig {
  manageUserSlice: boolean;
  killUserSlice: boolean;
  /** seconds */
  killSliceGraceTime: number;
  debug: boolean;
  constrainResources: boolean;
  allowGuestUser: boolean;
  /** access.allow-root-owner: root connects as an owner (the hooks read every job's R) */
  allowRootOwner: boolean;
  /** access.private-mode: guests see only their own jobs */
  privateMode: boolean;
}

export const DEFAULT_KILL_SLICE_GRACE_SECONDS = 30;

export class ConfigError extends Error {
  override name = "ConfigError";
}

function table(cfg: { [key: string]: Json }, name: string): { [key: string]: Json } {
  const t = cfg[name];
  if (t === undefined) return {};
  if (!isObject(t)) throw new ConfigError(`broker config: [${name}] is not a table`);
  return t;
}

function bool(t: { [key: string]: Json }, tname: string, key: string): boolean {
  const v = t[key];
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw new ConfigError(`broker config: ${tname}.${key} must be true or false`);
  return v;
}

/** Reads the config; a key of the wrong type is an error (never silently a default). */
export function pamConfig(cfg: { [key: string]: Json }): PamConfig {
  const pam = table(cfg, "pam");
  const exec = table(cfg, "exec");
  const access = table(cfg, "access");
  let grace = DEFAULT_KILL_SLICE_GRACE_SECONDS;
  const raw = pam["kill-slice-grace-time"];
  if (raw !== undefined) {
    // A bare number of seconds may be a TOML float (0.5): the broker sends it as a JSON real.
    const g = typeof raw === "string" ? raw : numberValue(raw);
    if (g === undefined) throw new ConfigError("broker config: pam.kill-slice-grace-time must be a duration such as \"30s\"");
    try {
      grace = parseFsd(g);
    } catch (e) {
      throw new ConfigError(`broker config: pam.kill-slice-grace-time: ${(e as Error).message}`);
    }
    // Housekeeping waits this long before SIGKILL: forever would hang the node's teardown.
    if (!Number.isFinite(grace)) throw new ConfigError("broker config: pam.kill-slice-grace-time must be finite");
  }
  return {
    manageUserSlice: bool(pam, "pam", "manage-user-slice"),
    killUserSlice: bool(pam, "pam", "kill-user-slice"),
    killSliceGraceTime: grace,
    debug: bool(pam, "pam", "debug"),
    constrainResources: bool(exec, "exec", "sdexec-constrain-resources"),
    allowGuestUser: bool(access, "access", "allow-guest-user"),
    allowRootOwner: bool(access, "access", "allow-root-owner"),
    privateMode: bool(access, "access", "private-mode"),
  };
}
