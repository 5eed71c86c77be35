// flux-pam: the entry point. Subcommands only; each loads its own code when it runs.

import { pamWordsToFlags, parseTimeout, UsageError } from "./commands/pam-args";
import pkg from "../package.json" with { type: "json" };

const EXIT_USAGE = 2;

/** Hook entries installed in prolog.d / housekeeping.d are links to this binary, known by name. */
const BY_NAME: Record<string, string> = {
  "flux-pam-prolog": "prolog",
  "flux-pam-housekeeping": "housekeeping",
};

async function main(argv: string[]): Promise<number> {
  const env = process.env as Record<string, string | undefined>;
  const argv0 = process.argv0 ?? "";
  const byName = BY_NAME[argv0.slice(argv0.lastIndexOf("/") + 1)];
  let args = argv.slice(2);
  if (byName) args = [byName, ...args];

  if (args[0] === "account" && !args.includes("--help") && !args.includes("-h")) {
    // The login hot path: no command-line library, nothing loaded but the decision's own code.
    const { parseAccountArgs } = await import("./commands/account-args");
    return (await import("./commands/account")).account(parseAccountArgs(args.slice(1)), env);
  }

  const { cac } = await import("cac");
  const cli = cac("flux-pam");
  let run: (() => Promise<number>) | undefined;

  cli
    .command("account [...words]", "decide whether PAM_USER may log in (pam_exec-compatible)")
    .option("--allow-guest-user", "admit guests of a multi-user instance the owner runs here")
    .option("--debug", "log every decision")
    .option("--uri <uri>", "broker URI (default: FLUX_URI for a root caller, else local:///run/flux/local)")
    .option("--timeout <fsd>", "time budget for the decision", { default: "5s" });
  // (account itself is parsed by commands/account-args.ts, above; this entry is its --help)

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

  const hook = (name: "prolog" | "housekeeping", what: string) =>
    cli
      .command(name, what)
      .option("--dry-run", "print the systemd calls and marker changes instead of making them")
      .action((o) => {
        run = async () =>
          name === "prolog"
            ? (await import("./commands/prolog")).prolog({ dryRun: !!o.dryRun }, env)
            : (await import("./commands/housekeeping")).housekeeping({ dryRun: !!o.dryRun }, env);
      });
  hook("prolog", "job prolog (run by flux-run-prolog): constrain user-UID.slice, open it to logins");
  hook("housekeeping", "job housekeeping (run by flux-run-housekeeping): shrink or tear down user-UID.slice");

  cli
    .command("session-open [...words]", "PAM session: put the login into a scope of user-UID.slice")
    .option("--scope-prefix <p>", "scope name prefix", { default: "flux-pam" })
    .option("--lock-dir <dir>", "lock and marker directory (default /run/flux-pam)")
    .option("--debug", "log every step")
    .option("--uri <uri>", "broker URI")
    .option("--timeout <fsd>", "time budget", { default: "10s" })
    .action((words: string[], o) => {
      if (words.length) throw new UsageError(`session-open: unknown option ${words.map((w) => JSON.stringify(w)).join(" ")}`);
      run = async () => {
        const m = await import("./commands/session-open");
        return m.sessionOpen(
          {
            scopePrefix: m.checkScopePrefix(String(o.scopePrefix)),
            lockDir: o.lockDir,
            uri: o.uri,
            debug: !!o.debug,
            timeout: parseTimeout(String(o.timeout), "--timeout"),
          },
          env,
        );
      };
    });

  cli.command("session-close [...words]", "PAM session close: nothing to do (systemd removes the scope)").action(() => {
    run = async () => 0;
  });

  cli.help();
  cli.version(pkg.version);
  const pamWords: Record<string, string[]> = {
    "session-open": ["scope-prefix", "lock-dir", "debug", "uri", "timeout"],
  };
  const words = pamWords[args[0] ?? ""];
  const parsed = cli.parse(["node", "flux-pam", ...(words ? pamWordsToFlags(args, words) : args)], { run: false });
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
