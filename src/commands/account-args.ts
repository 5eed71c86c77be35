// The account command's options, parsed without the command-line library: this is the login hot path.
// Accepts pam.d words (`allow-guest-user`, `debug`, `uri=URI`, `timeout=FSD`) and their flag forms.

import type { AccountOptions } from "./account";
import { parseTimeout, UsageError } from "./pam-args";

export const ACCOUNT_DEFAULT_TIMEOUT = "5s";

export function parseAccountArgs(args: readonly string[]): AccountOptions {
  const o: AccountOptions = { allowGuestUser: false, debug: false, timeout: parseTimeout(ACCOUNT_DEFAULT_TIMEOUT, "account: timeout") };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const flag = arg.startsWith("--");
    const body = flag ? arg.slice(2) : arg;
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    let value = eq < 0 ? undefined : body.slice(eq + 1);
    switch (name) {
      case "allow-guest-user":
      case "debug":
        if (value !== undefined) throw new UsageError(`account: ${name} takes no value`);
        if (name === "debug") o.debug = true;
        else o.allowGuestUser = true;
        break;
      case "uri":
      case "timeout":
        if (value === undefined && flag) value = args[++i];
        if (value === undefined || value === "") throw new UsageError(`account: ${name} needs a value (${name}=...)`);
        if (name === "uri") o.uri = value;
        else o.timeout = parseTimeout(value, "account: timeout");
        break;
      default:
        throw new UsageError(`account: unknown option ${JSON.stringify(arg)}`);
    }
  }
  return o;
}
