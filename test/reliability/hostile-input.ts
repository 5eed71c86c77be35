// The fault matrix, hostile input: PAM_USER, FLUX_JOB_ID, FLUX_JOB_USERID, the module's and the
// commands' options, and the environment variables they read, in every shape: unset, empty, huge,
// control characters, bytes that are not UTF-8, leading dashes, look-alikes. Each is refused
// (never admitted, never a scope, never a marker), in one line that names what was wrong,
// without a stack trace and without echoing control characters.

import { join } from "node:path";
import { BINARY } from "../e2e/harness";
import { MODULE, pamConfDir, runDriver } from "../pam/harness";
import { startFakeSystemd } from "../systemd/fake-systemd";
import {
  expectEq,
  expectLine,
  hookEnv,
  lockDirWithMarker,
  type MatrixCase,
  type MatrixEnv,
  type Outcome,
  PATH,
  sessionArgv,
  sessionEnv,
  TAG,
} from "./harness";

/**
 * A value to put in the environment or on a command line: a string, or bytes that are not UTF-8
 * (passed through printf in a shell: `\377`).
 */
type Value = string | { printf: string; show: string };

const HUGE = "a".repeat(100_000);
// (JSON.stringify leaves DEL as it is: escaped here too, so the name is printable)
const json = (s: string) => JSON.stringify(s).replace(/\x7f/g, "\\u007f");
const show = (v: Value) => (typeof v === "string" ? (v.length > 40 ? `${json(v.slice(0, 20))}... (${v.length} chars)` : json(v)) : v.show);

/** Runs argv with `env`, where values given as printf formats become their bytes. */
async function runRaw(argv: string[], env: Record<string, Value | undefined>): Promise<Outcome> {
  const plain: Record<string, string> = { PATH };
  const lines: string[] = [];
  let k = 0;
  for (const [name, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (typeof v === "string") plain[name] = v;
    else lines.push(`${name}="$(printf '${v.printf}')"; export ${name}`);
    k++;
  }
  const cmd = lines.length ? ["sh", "-c", `${lines.join("\n")}\nexec "$@"`, "sh", ...argv] : argv;
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { env: plain, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

/** No raw control character and no stack in what a person or a log gets. */
function clean(text: string): void {
  // biome-ignore lint: control characters are what we look for
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(text)) throw new Error(`output holds a control character: ${JSON.stringify(text.slice(0, 200))}`);
  if (/\n\s+at |\bundefined\b/.test(text)) throw new Error(`output holds a stack or "undefined": ${JSON.stringify(text.slice(0, 200))}`);
  for (const line of text.split("\n")) if (Buffer.byteLength(line) > 1100) throw new Error(`a line of ${Buffer.byteLength(line)} bytes`);
}

const USERS: [string, Value][] = [
  ["empty", ""],
  ["huge (100,000 chars)", HUGE],
  ["a newline inside", "dae\nmon"],
  ["an escape sequence", "daemon\u001b[2J"],
  ["DEL", "daemon\u007f"],
  ["bytes that are not UTF-8", { printf: "daemon\\377", show: "daemon\\xff" }],
  ["leading dashes (--help)", "--help"],
  ["leading dashes (--uri=...)", "--uri=local:///tmp/evil.sock"],
  ["a leading dash", "-daemon"],
  ["blanks around", " daemon "],
  ["other case", "DAEMON"],
  ["a look-alike (Cyrillic a)", "dаemon"],
  ["a passwd line", "daemon:x:0:0::/:/bin/sh"],
  ["a path", "../daemon"],
];

const JOB_IDS: [string, Value, RegExp][] = [
  // (flux-run-prolog sets it empty when it cannot run `flux job id`: the reason says so)
  ["empty", "", /^FLUX_JOB_ID is empty \(flux-run-prolog and flux-run-housekeeping could not convert it: is flux on the IMP's PATH\? flux-pam doctor\)$/],
  ["huge (100,000 chars)", HUGE, /^FLUX_JOB_ID: "a{61}\.\.\." is not a job id in any encoding Flux uses$/],
  ["a newline inside", "123\n456", /^FLUX_JOB_ID: "123\\n456" is not a job id in any encoding Flux uses$/],
  ["an escape sequence", "ƒ2\u001b[2J", /^FLUX_JOB_ID: "ƒ2\\u001b\[2J" is not a job id: "\\u001b" is not an F58 digit$/],
  ["bytes that are not UTF-8", { printf: "12\\37734", show: "12\\xff34" }, /^FLUX_JOB_ID: .* is not a job id in any encoding Flux uses$/],
  ["leading dashes (--dry-run)", "--dry-run", /^FLUX_JOB_ID: "--dry-run" is not a job id in any encoding Flux uses$/],
  ["negative", "-1", /^FLUX_JOB_ID: "-1" is not a job id in any encoding Flux uses$/],
  ["past 64 bits (decimal)", "18446744073709551616", /^FLUX_JOB_ID: job id "18446744073709551616" is larger than 64 bits$/],
  ["past 64 bits (F58)", "ƒjpXCZedGfVR", /^FLUX_JOB_ID: job id "ƒjpXCZedGfVR" is larger than 64 bits$/],
  ["hex of 17 digits", "0x10000000000000000", /^FLUX_JOB_ID: "0x10000000000000000" is not a job id in any encoding Flux uses$/],
  ["mnemonic words", "academy-academy-academy--academy-academy-academy", /^FLUX_JOB_ID: job id "[a-z-]+" looks like mnemonic words, which flux-pam does not decode; use the F58 or decimal id$/],
];

const UIDS: [string, Value, RegExp][] = [
  ["empty", "", /^FLUX_JOB_USERID is empty$/],
  ["negative", "-1", /^FLUX_JOB_USERID="-1" is not a uid$/],
  ["a real", "1.0", /^FLUX_JOB_USERID="1\.0" is not a uid$/],
  ["hex", "0x1", /^FLUX_JOB_USERID="0x1" is not a uid$/],
  ["blanks", " 1", /^FLUX_JOB_USERID=" 1" is not a uid$/],
  ["(uid_t)-1", "4294967295", /^FLUX_JOB_USERID="4294967295" is not a uid$/],
  // (hook-env.ts quotes the value whole: the hook's one line is clipped before "is not a uid")
  ["huge", "9".repeat(10_000), /^FLUX_JOB_USERID="9+(\.\.\." is not a uid)?(\.\.\.)?$/],
  ["a newline inside", "1\n2", /^FLUX_JOB_USERID="1\?2" is not a uid$/],
  ["bytes that are not UTF-8", { printf: "1\\377", show: "1\\xff" }, /^FLUX_JOB_USERID=".+" is not a uid$/],
  ["leading dashes (--help)", "--help", /^FLUX_JOB_USERID="--help" is not a uid$/],
  ["a shell command", "1; rm -rf /", /^FLUX_JOB_USERID="1; rm -rf \/" is not a uid$/],
];

function accountCase(what: string, user: Value): MatrixCase {
  return {
    group: "hostile input",
    fault: `PAM_USER ${what}: ${show(user)}`,
    path: "account",
    expect: "not admitted: unknown user, one clean line",
    async run(env) {
      const o = await runRaw([BINARY, "account", `uri=${env.good}`, "timeout=2s"], { PAM_USER: user, PAM_SERVICE: "sshd" });
      return {
        ms: o.ms,
        check() {
          expectEq({ code: o.code, stdout: o.stdout }, { code: 1, stdout: "" });
          expectLine(o.stderr, "flux-pam account: ", user === "" ? /^PAM_USER is not set: run under pam_exec or pam_flux\.so, or set PAM_USER$/ : /^unknown user ".*("|\.\.\.)$/);
          clean(o.stderr);
        },
      };
    },
  };
}

function pamAccountCase(what: string, user: string): MatrixCase {
  return {
    group: "hostile input",
    fault: `PAM_USER ${what}: ${show(user)}`,
    path: "pam account",
    expect: "PAM_USER_UNKNOWN",
    async run(env) {
      const dir = env.caseDir();
      const pam = pamConfDir(dir);
      pam.service("svc", [`account required ${MODULE} helper=${env.helper} uri=${env.good}`]);
      const t0 = performance.now();
      const r = await runDriver({ confdir: pam.path, service: "svc", actions: ["acct"], user });
      return {
        ms: performance.now() - t0,
        check() {
          expectEq(r.calls.map((c) => c.name), ["PAM_USER_UNKNOWN"]);
          expectEq(r.conv, []);
          for (const l of r.syslog) clean(l);
        },
      };
    },
  };
}

function sessionCase(what: string, user: Value): MatrixCase {
  return {
    group: "hostile input",
    fault: `PAM_USER ${what}: ${show(user)}`,
    path: "session-open",
    expect: "refused: unknown user, no scope",
    async run(env) {
      const dir = env.caseDir();
      const fake = await startFakeSystemd(dir);
      try {
        const o = await runRaw(sessionArgv(env.good, lockDirWithMarker(dir, "locks")), { ...sessionEnv(fake.address), PAM_USER: user });
        const scopes = fake.calls.filter((c) => c.member === "StartTransientUnit").length;
        return {
          ms: o.ms,
          check() {
            expectEq({ code: o.code, scopes }, { code: 1, scopes: 0 });
            // (a name of 100,000 characters is clipped before the reason: the line stays under 1000 bytes)
            expectLine(o.stderr, "flux-pam session-open: session denied for user ", /^.*: unknown user$|^a+\.\.\.$/);
            expectLine(o.stdout, "Access denied: user ", /has no active jobs on this node$|\.\.\.$/);
            clean(o.stdout + o.stderr);
          },
        };
      } finally {
        await fake.close();
      }
    },
  };
}

function hookCase(hook: "prolog" | "housekeeping", variable: "FLUX_JOB_ID" | "FLUX_JOB_USERID", what: string, value: Value, reason: RegExp): MatrixCase {
  return {
    group: "hostile input",
    fault: `${variable} ${what}: ${show(value)}`,
    path: hook,
    expect: "fails naming the variable; nothing done",
    async run(env) {
      const dir = env.caseDir();
      const fake = await startFakeSystemd(dir);
      try {
        const e = { ...hookEnv(env.good, join(dir, "locks"), fake.address), [variable]: value } as Record<string, Value>;
        const o = await runRaw([BINARY, hook], e);
        const calls = fake.calls.length;
        return {
          ms: o.ms,
          check() {
            expectEq({ code: o.code, stdout: o.stdout, systemdCalls: calls }, { code: 1, stdout: "", systemdCalls: 0 });
            // the tag shows the job id when it parses, else the raw text made one clean line
            expectLine(o.stderr, `flux-pam-${hook}[`, new RegExp(`^.{0,45}\\]: ${reason.source.slice(1)}`));
            if (variable === "FLUX_JOB_USERID") expectLine(o.stderr, `flux-pam-${hook}[${TAG}]: `, reason);
            clean(o.stderr);
          },
        };
      } finally {
        await fake.close();
      }
    },
  };
}

/** The module's options on the pam.d line: refused as a misconfiguration (PAM_SYSTEM_ERR), the helper not run or refusing. */
const MODULE_OPTIONS: [string, string, "account" | "session", string][] = [
  ["an unknown option", "allow-everyone", "account", "PAM_SYSTEM_ERR"],
  ["uri= empty", "uri=", "account", "PAM_SYSTEM_ERR"],
  ["timeout=0", "timeout=0", "account", "PAM_SYSTEM_ERR"],
  ["timeout negative", "timeout=-1s", "account", "PAM_SYSTEM_ERR"],
  ["timeout past 1 h", "timeout=2h", "account", "PAM_SYSTEM_ERR"],
  ["timeout not a duration", "timeout=soon", "account", "PAM_SYSTEM_ERR"],
  ["helper= relative", "helper=flux-pam", "account", "PAM_SYSTEM_ERR"],
  // taken, and the helper cannot reach a socket by that name: denied
  ["a huge option", `uri=local:///${"x".repeat(5000)}`, "account", "PAM_PERM_DENIED"],
  ["leading dashes", "--allow-guest-user", "account", "PAM_SYSTEM_ERR"],
  ["scope-prefix with a slash", "scope-prefix=../x", "session", "PAM_SYSTEM_ERR"],
  ["lock-dir relative", "lock-dir=run/flux-pam", "session", "PAM_SYSTEM_ERR"],
];

function moduleOptionCase(what: string, option: string, type: "account" | "session", code: string): MatrixCase {
  return {
    group: "hostile input",
    fault: `module option, ${what}: ${show(option)}`,
    path: `pam ${type}`,
    expect: `${code}, nobody admitted`,
    async run(env: MatrixEnv) {
      const dir = env.caseDir();
      const pam = pamConfDir(dir);
      const lockDir = lockDirWithMarker(dir, "locks");
      const lines =
        type === "account"
          ? [`account required ${MODULE} helper=${env.helper} uri=${env.good} ${option}`]
          : [`account required ${MODULE} helper=${env.helper} uri=${env.good}`, `session required ${MODULE} helper=${env.helper} uri=${env.good} lock-dir=${lockDir} ${option}`];
      pam.service("svc", lines);
      const t0 = performance.now();
      const r = await runDriver({ confdir: pam.path, service: "svc", actions: type === "account" ? ["acct"] : ["acct", "open"], user: "daemon" });
      return {
        ms: performance.now() - t0,
        check() {
          expectEq(r.calls.map((c) => `${c.action} ${c.name}`), type === "account" ? [`acct ${code}`] : ["acct PAM_SUCCESS", `open ${code}`]);
          for (const l of r.syslog) clean(l);
        },
      };
    },
  };
}

/** The commands' own words and the variables they read, in bad shapes: a usage error or a refusal, never a default that lets someone in. */
const COMMAND_INPUT: { what: string; path: string; argv: (env: MatrixEnv, dir: string) => string[]; env: (env: MatrixEnv, dir: string, bus: string) => Record<string, Value>; want: { code: number; line: RegExp; prefix: string } }[] = [
  {
    what: "account uri= empty",
    path: "account",
    argv: () => [BINARY, "account", "uri="],
    env: () => ({ PAM_USER: "daemon" }),
    want: { code: 2, prefix: "flux-pam: ", line: /^account: uri needs a value \(uri=\.\.\.\)$/ },
  },
  {
    what: "account timeout=inf",
    path: "account",
    argv: (e) => [BINARY, "account", `uri=${e.good}`, "timeout=inf"],
    env: () => ({ PAM_USER: "daemon" }),
    want: { code: 2, prefix: "flux-pam: ", line: /^account: timeout: "inf" is longer than 1h$/ },
  },
  {
    what: "account, an unknown word",
    path: "account",
    argv: (e) => [BINARY, "account", `uri=${e.good}`, "allow-everyone"],
    env: () => ({ PAM_USER: "daemon" }),
    want: { code: 2, prefix: "flux-pam: ", line: /^account: unknown option "allow-everyone"$/ },
  },
  {
    what: "account uri= not local://",
    path: "account",
    argv: () => [BINARY, "account", "uri=ssh://host/run/flux/local", "timeout=2s"],
    env: () => ({ PAM_USER: "daemon" }),
    want: { code: 1, prefix: "flux-pam account: access denied for user daemon (uid=1): ", line: /^"ssh:\/\/host\/run\/flux\/local" is not a local:\/\/ URI with an absolute socket path$/ },
  },
  {
    what: "FLUX_PAM_REPLY_FD not a descriptor",
    path: "account",
    argv: (e) => [BINARY, "account", `uri=${e.good}`],
    env: () => ({ PAM_USER: "daemon", FLUX_PAM_REPLY_FD: "3; rm -rf /" }),
    want: { code: 1, prefix: "flux-pam: ", line: /^FLUX_PAM_REPLY_FD="3; rm -rf \/" is not a file descriptor number >= 3$/ },
  },
  {
    what: "FLUX_PAM_REPLY_FD is stdout",
    path: "account",
    argv: (e) => [BINARY, "account", `uri=${e.good}`],
    env: () => ({ PAM_USER: "daemon", FLUX_PAM_REPLY_FD: "1" }),
    want: { code: 1, prefix: "flux-pam: ", line: /^FLUX_PAM_REPLY_FD="1" is not a file descriptor number >= 3$/ },
  },
  {
    what: "FLUX_PAM_PID not a pid",
    path: "session-open",
    argv: (e, d) => sessionArgv(e.good, lockDirWithMarker(d, "locks")),
    env: (_e, _d, bus) => ({ ...sessionEnv(bus), FLUX_PAM_PID: "1 2" }),
    want: { code: 1, prefix: "flux-pam session-open: session denied for user daemon: ", line: /^FLUX_PAM_PID="1 2" is not a process id$/ },
  },
  {
    what: "FLUX_PAM_PID is init",
    path: "session-open",
    argv: (e, d) => sessionArgv(e.good, lockDirWithMarker(d, "locks")),
    env: (_e, _d, bus) => ({ ...sessionEnv(bus), FLUX_PAM_PID: "1" }),
    want: { code: 1, prefix: "flux-pam session-open: session denied for user daemon: ", line: /^FLUX_PAM_PID="1" is not a process id$/ },
  },
  {
    what: "DBUS_SYSTEM_BUS_ADDRESS garbage",
    path: "session-open",
    argv: (e, d) => sessionArgv(e.good, lockDirWithMarker(d, "locks")),
    env: (_e, _d, bus) => ({ ...sessionEnv(bus), DBUS_SYSTEM_BUS_ADDRESS: "garbage\u001b[2J" }),
    want: { code: 1, prefix: "flux-pam session-open: session denied for user daemon: ", line: /^.*garbage\?\[2J.*$/ },
  },
  {
    what: "FLUX_URI not local://",
    path: "prolog",
    argv: () => [BINARY, "prolog"],
    env: (e, d, bus) => ({ ...hookEnv(e.good, join(d, "locks"), bus), FLUX_URI: "ssh://host/x" }),
    want: { code: 1, prefix: `flux-pam-prolog[${TAG}]: `, line: /^"ssh:\/\/host\/x" is not a local:\/\/ URI with an absolute socket path$/ },
  },
  {
    what: "FLUX_URI with a newline",
    path: "prolog",
    argv: () => [BINARY, "prolog"],
    env: (e, d, bus) => ({ ...hookEnv(e.good, join(d, "locks"), bus), FLUX_URI: "local:///tmp/x\ny.sock" }),
    want: { code: 1, prefix: `flux-pam-prolog[${TAG}]: `, line: /^"local:\/\/\/tmp\/x\\ny\.sock" is not a local:\/\/ URI with an absolute socket path$/ },
  },
  {
    what: "FLUX_PAM_LOCK_DIR relative",
    path: "prolog",
    argv: () => [BINARY, "prolog"],
    env: (e, _d, bus) => ({ ...hookEnv(e.good, "run/flux-pam", bus) }),
    want: { code: 1, prefix: `flux-pam-prolog[${TAG}]: `, line: /^run\/flux-pam: lock directory must be an absolute path$/ },
  },
  {
    what: "FLUX_PAM_LOCK_DIR huge",
    path: "housekeeping",
    argv: () => [BINARY, "housekeeping"],
    env: (e, d, bus) => ({ ...hookEnv(e.good, join(d, "x".repeat(5000)), bus) }),
    want: { code: 1, prefix: `flux-pam-housekeeping[${TAG}]: `, line: /^\/\S{252}\.\.\.: ENAMETOOLONG: name too long, .+\.\.\.$/ },
  },
  {
    what: "prolog, a word it does not take (--dry-run=yes)",
    path: "prolog",
    argv: () => [BINARY, "prolog", "--dry-run=yes"],
    env: (e, d, bus) => hookEnv(e.good, join(d, "locks"), bus),
    want: { code: 2, prefix: "flux-pam: ", line: /^prolog: dry-run takes no value$/ },
  },
];

function commandCase(c: (typeof COMMAND_INPUT)[number]): MatrixCase {
  return {
    group: "hostile input",
    fault: c.what,
    path: c.path,
    expect: c.want.code === 2 ? "usage error (exit 2), nothing done" : "refused, naming it; nothing done",
    async run(env) {
      const dir = env.caseDir();
      const fake = await startFakeSystemd(dir);
      try {
        const o = await runRaw(c.argv(env, dir), c.env(env, dir, fake.address));
        const writes = fake.calls.filter((x) => !["LoadUnit", "Subscribe"].includes(x.member)).length;
        return {
          ms: o.ms,
          check() {
            expectEq({ code: o.code, systemdWrites: writes }, { code: c.want.code, systemdWrites: 0 });
            if (c.path === "account" && c.want.code === 1 && c.want.prefix.startsWith("flux-pam account")) expectEq({ stdout: o.stdout }, { stdout: "Access denied: user daemon has no active jobs on this node\n" });
            expectLine(o.stderr, c.want.prefix, c.want.line);
            clean(o.stderr);
          },
        };
      } finally {
        await fake.close();
      }
    },
  };
}

export function inputCases(): MatrixCase[] {
  return [
    ...USERS.map(([w, u]) => accountCase(w, u)),
    ...USERS.filter(([, u]) => typeof u === "string" && u !== "").map(([w, u]) => pamAccountCase(w, u as string)),
    ...USERS.filter(([, u]) => u !== "").map(([w, u]) => sessionCase(w, u)),
    ...(["prolog", "housekeeping"] as const).flatMap((h) => [
      ...JOB_IDS.map(([w, v, r]) => hookCase(h, "FLUX_JOB_ID", w, v, r)),
      ...UIDS.map(([w, v, r]) => hookCase(h, "FLUX_JOB_USERID", w, v, r)),
    ]),
    ...MODULE_OPTIONS.map(([w, o, t, c]) => moduleOptionCase(w, o, t, c)),
    ...COMMAND_INPUT.map(commandCase),
  ];
}
