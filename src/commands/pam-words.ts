// Options of the commands PAM and Flux run (account, session-open, prolog, housekeeping), parsed
// without the command-line library: these are the login and job-start hot paths. pam.d words
// (`debug`, `uri=URI`) and their flag forms (`--debug`, `--uri URI`, `--uri=URI`) are both taken.

import type { AccountOptions } from "./account";
import { parseTimeout, UsageError } from "./pam-args";
import type { SessionOptions } from "./session-open";

interface WordSpec {
  /** words without a value */
  switches: readonly string[];
  /** words that need one */
  values: readonly string[];
}

export interface Words {
  switches: Set<string>;
  values: Map<string, string>;
}

export function parseWords(command: string, args: readonly string[], spec: WordSpec): Words {
  const out: Words = { switches: new Set(), values: new Map() };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const flag = arg.startsWith("--");
    const body = flag ? arg.slice(2) : arg;
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    let value = eq < 0 ? undefined : body.slice(eq + 1);
    if (spec.switches.includes(name)) {
      if (value !== undefined) throw new UsageError(`${command}: ${name} takes no value`);
      out.switches.add(name);
    } else if (spec.values.includes(name)) {
      if (value === undefined && flag) value = args[++i];
      if (value === undefined || value === "") throw new UsageError(`${command}: ${name} needs a value (${name}=...)`);
      out.values.set(name, value);
    } else throw new UsageError(`${command}: unknown option ${JSON.stringify(arg)}`);
  }
  return out;
}

export const ACCOUNT_DEFAULT_TIMEOUT = "5s";
export const SESSION_DEFAULT_TIMEOUT = "10s";
export const DEFAULT_SCOPE_PREFIX = "flux-pam";

export function parseAccountArgs(args: readonly string[]): AccountOptions {
  // silent: pam_flux.so was called with PAM_SILENT, so nothing said is shown: no hint to look up.
  const w = parseWords("account", args, { switches: ["allow-guest-user", "debug", "no-job-hint", "silent"], values: ["uri", "timeout"] });
  return {
    allowGuestUser: w.switches.has("allow-guest-user"),
    debug: w.switches.has("debug"),
    jobHint: !w.switches.has("no-job-hint") && !w.switches.has("silent"),
    ...(w.values.has("uri") ? { uri: w.values.get("uri") } : {}),
    timeout: parseTimeout(w.values.get("timeout") ?? ACCOUNT_DEFAULT_TIMEOUT, "account: timeout"),
  };
}

export function parseSessionArgs(args: readonly string[]): SessionOptions {
  const w = parseWords("session-open", args, { switches: ["debug"], values: ["scope-prefix", "lock-dir", "uri", "timeout"] });
  const prefix = w.values.get("scope-prefix") ?? DEFAULT_SCOPE_PREFIX;
  // The prefix becomes part of a unit name: only what systemd allows there.
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) throw new UsageError(`session-open: scope-prefix="${prefix}" is not usable in a unit name`);
  return {
    scopePrefix: prefix,
    ...(w.values.has("lock-dir") ? { lockDir: w.values.get("lock-dir") } : {}),
    ...(w.values.has("uri") ? { uri: w.values.get("uri") } : {}),
    debug: w.switches.has("debug"),
    timeout: parseTimeout(w.values.get("timeout") ?? SESSION_DEFAULT_TIMEOUT, "session-open: timeout"),
  };
}

export function parseHookArgs(hook: string, args: readonly string[]): { dryRun: boolean } {
  return { dryRun: parseWords(hook, args, { switches: ["dry-run"], values: [] }).switches.has("dry-run") };
}

/** What the admin commands that scan the node share: the user, the broker, the scopes' prefix, the budget; and their switches. */
export interface NodeArgs {
  user?: string;
  uri?: string;
  scopePrefix?: string;
  /** seconds */
  timeout: number;
  switches: ReadonlySet<string>;
}

/**
 * `[USER] [--json] [--uri URI] [--timeout FSD] [--scope-prefix P] [--dry-run]` of the admin commands
 * that scan the node (status, reconcile): flags only in their -- form, at most one USER.
 */
export function parseNodeArgs(command: string, args: readonly string[], switches: readonly string[], defaultTimeout: string): NodeArgs {
  const flags: string[] = [];
  let user: string | undefined;
  const values = ["uri", "timeout", "scope-prefix"];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("--")) {
      flags.push(a);
      if (values.includes(a.slice(2)) && i + 1 < args.length) flags.push(args[++i]!);
    } else if (user === undefined && a !== "") user = a;
    else throw new UsageError(`${command}: one user at most (${JSON.stringify(a)} is a second)`);
  }
  const words = parseWords(command, flags, { switches, values });
  const uri = words.values.get("uri");
  const scopePrefix = words.values.get("scope-prefix");
  return {
    ...(user === undefined ? {} : { user }),
    ...(uri === undefined ? {} : { uri }),
    ...(scopePrefix === undefined ? {} : { scopePrefix }),
    timeout: parseTimeout(words.values.get("timeout") ?? defaultTimeout, `${command}: --timeout`),
    switches: words.switches,
  };
}
