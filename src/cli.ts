// flux-pam: the entry point. Subcommands only; each loads its own code when it runs.

import { parseTimeout, UsageError } from "./commands/pam-args";
import pkg from "../package.json" with { type: "json" };

const EXIT_USAGE = 2;

/** Hook entries installed in prolog.d / housekeeping.d are links to this binary, known by name. */
const BY_NAME: Record<string, string> = {
  "flux-pam-prolog": "prolog",
  "flux-pam-housekeeping": "housekeeping",
};

type Env = Record<string, string | undefined>;

/**
 * What PAM and Flux run, on every login and every job start: no command-line library, nothing
 * loaded but the command's own code (commands/pam-words.ts parses their words). The cac entries
 * below give them --help.
 */
const HOT: Record<string, (args: string[], env: Env) => Promise<number>> = {
  account: async (args, env) => {
    const { parseAccountArgs } = await import("./commands/pam-words");
    return (await import("./commands/account")).account(parseAccountArgs(args), env);
  },
  "session-open": async (args, env) => {
    // First of all: systemd's move of the login into its scope, milliseconds from now, then finds
    // the kernel's wait for it under way (node/cgroup.ts).
    (await import("./node/cgroup")).warmCgroupMigration();
    const { parseSessionArgs } = await import("./commands/pam-words");
    return (await import("./commands/session-open")).sessionOpen(parseSessionArgs(args), env);
  },
  // systemd removes the scope when its last process exits: nothing to do, whatever the words.
  "session-close": async () => 0,
  prolog: async (args, env) => {
    const { parseHookArgs } = await import("./commands/pam-words");
    return (await import("./commands/prolog")).prolog(parseHookArgs("prolog", args), env);
  },
  status: async (args, env) => {
    const { parseNodeArgs } = await import("./commands/pam-words");
    const { switches, ...o } = parseNodeArgs("status", args, ["json"], "10s");
    return (await import("./commands/status")).status({ ...o, json: switches.has("json") }, env);
  },
  reconcile: async (args, env) => {
    const { parseNodeArgs } = await import("./commands/pam-words");
    const { switches, ...o } = parseNodeArgs("reconcile", args, ["dry-run"], "30s");
    return (await import("./commands/reconcile")).reconcile({ ...o, dryRun: switches.has("dry-run") }, env);
  },
  housekeeping: async (args, env) => {
    const { parseHookArgs } = await import("./commands/pam-words");
    return (await import("./commands/housekeeping")).housekeeping(parseHookArgs("housekeeping", args), env);
  },
};

async function main(argv: string[]): Promise<number> {
  const env = process.env as Env;
  const argv0 = process.argv0 ?? "";
  const byName = BY_NAME[argv0.slice(argv0.lastIndexOf("/") + 1)];
  let args = argv.slice(2);
  if (byName) args = [byName, ...args];

  if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
    // (cac would print Node's version, which this binary does not have)
    process.stdout.write(`flux-pam/${pkg.version} (bun ${Bun.version}, ${process.platform}-${process.arch})\n`);
    return 0;
  }
  const hot = HOT[args[0] ?? ""];
  if (hot && !args.includes("--help") && !args.includes("-h")) return hot(args.slice(1), env);

  const { cac } = await import("cac");
  const cli = cac("flux-pam");
  let run: (() => Promise<number>) | undefined;

  cli
    .command("account [...words]", "decide whether PAM_USER may log in (pam_exec-compatible)")
    .option("--allow-guest-user", "admit guests of a multi-user instance the owner runs here")
    .option("--no-job-hint", "do not tell a denied user where their running jobs are")
    .option("--silent", "the caller shows nothing (PAM_SILENT): no job hint is looked up")
    .option("--debug", "log every decision")
    .option("--uri <uri>", "broker URI (default: FLUX_URI for a root caller, else local:///run/flux/local)")
    .option("--timeout <fsd>", "time budget for the decision", { default: "5s" });
  // (run through HOT above; these entries are their --help)

  cli
    .command("check-user <user>", "say whether USER would be admitted on this node, and why")
    .option("--json", "machine-readable report")
    .option("--allow-guest-user", "consider the guest path too")
    .option("--uri <uri>", "broker URI")
    .option("--timeout <fsd>", "time budget", { default: "5s" })
    .action((user: string, o) => {
      run = async () =>
        (await import("./commands/check-user")).checkUser(
          { user, json: !!o.json, allowGuestUser: !!o.allowGuestUser, uri: o.uri, timeout: parseTimeout(String(o.timeout), "--timeout") },
          env,
        );
    });

  cli
    .command("status [user]", "every contained user and login on this node, their limits against their jobs, and what drifted")
    .option("--json", "machine-readable report (a stable shape, see flux-pam(1))")
    .option("--uri <uri>", "broker URI")
    .option("--scope-prefix <p>", "the login scopes' prefix, as pam_flux.so's scope-prefix=", { default: "flux-pam" })
    .option("--timeout <fsd>", "time budget for the broker and the bus", { default: "10s" });

  cli
    .command("reconcile [user]", "make this node match the broker, user by user, with the hooks' rules: repair what a missed or killed hook left")
    .option("--dry-run", "print the systemd calls and marker changes instead of making them")
    .option("--uri <uri>", "broker URI")
    .option("--scope-prefix <p>", "the login scopes' prefix, as pam_flux.so's scope-prefix=", { default: "flux-pam" })
    .option("--timeout <fsd>", "time budget for the broker's answers", { default: "30s" });

  cli
    .command("doctor", "audit this node's flux-pam setup and say how to fix each finding")
    .option("--root <dir>", "audit the files under DIR (an image) instead of this node; live checks skipped")
    .option("--json", "machine-readable report")
    .option("--uri <uri>", "broker URI")
    .option("--timeout <fsd>", "time budget for the broker and the bus", { default: "5s" })
    .action((o) => {
      run = async () =>
        (await import("./commands/doctor")).doctor(
          { root: o.root === undefined ? undefined : String(o.root), json: !!o.json, uri: o.uri, timeout: parseTimeout(String(o.timeout), "--timeout") },
          env,
        );
    });

  for (const [name, what] of [
    ["prolog", "job prolog (run by flux-run-prolog): constrain user-UID.slice, open it to logins"],
    ["housekeeping", "job housekeeping (run by flux-run-housekeeping): shrink or tear down user-UID.slice"],
  ] as const)
    cli.command(name, what).option("--dry-run", "print the systemd calls and marker changes instead of making them");

  cli
    .command("session-open [...words]", "PAM session: put the login into a scope of user-UID.slice")
    .option("--scope-prefix <p>", "scope name prefix", { default: "flux-pam" })
    .option("--lock-dir <dir>", "lock and marker directory (default /run/flux-pam)")
    .option("--debug", "log every step")
    .option("--uri <uri>", "broker URI")
    .option("--timeout <fsd>", "time budget", { default: "10s" });
  cli.command("session-close [...words]", "PAM session close: nothing to do (systemd removes the scope)");

  cli.help();
  cli.version(pkg.version);
  const parsed = cli.parse(["node", "flux-pam", ...args], { run: false });
  if (parsed.options.help || parsed.options.version) return 0;
  if (!cli.matchedCommand) {
    if (args.length === 0) {
      cli.outputHelp();
      return EXIT_USAGE;
    }
    throw new UsageError(`unknown command "${args[0]}" (see flux-pam --help)`);
  }
  cli.runMatchedCommand();
  if (!run) return EXIT_USAGE;
  return run();
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    const usage = e instanceof UsageError || e.name === "CACError";
    process.stderr.write(`flux-pam: ${e.message}\n`);
    process.exitCode = usage ? EXIT_USAGE : 1;
  },
);
