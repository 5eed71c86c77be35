// Shared by the fault matrix: the commands as PAM and Flux run them (the compiled binary, and
// pam_flux.so through real libpam), each with its exact expected outcome, run many at once.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { BINARY } from "../e2e/harness";
import { codes, DRIVER, MODULE, pamConfDir, runDriver } from "../pam/harness";

export const USER = "daemon";
export const UID = 1;
export const JOB = "1227286904832";
export const TAG = "fZEr9Bmq"; // the job as its hook unit names it
export const DENIED = `Access denied: user ${USER} has no active jobs on this node`;
export const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
/** A node as the good broker shows it: a RUN job of UID on rank 0, cores 0, slices managed and constrained. */
export const NODE: Scenario = {
  rank: 0,
  owner: 64999,
  config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } },
  jobs: [{ id: JOB, userid: UID, cores: "0" }],
};
/** The time budget given to account and session-open (and pam_flux.so's timeout=). */
export const BUDGET_S = 2;

/** What every case of the matrix gets: a stand-in systemd, pam_flux.so's helper, a broker that works. */
export interface MatrixEnv {
  /** the address of a stand-in systemd (test/systemd/fake-systemd.ts) for the cases that need one */
  bus: string;
  /** the compiled flux-pam, installed as pam_flux.so accepts a helper */
  helper: string;
  /** the URI of a test broker that answers well: a RUN job of UID on rank 0, slices managed */
  good: string;
  /** a fresh directory (0755) for one case */
  caseDir(): string;
}

/** One cell of the matrix: a fault, a path (command), and the outcome it must have. */
export interface MatrixCase {
  group: string;
  fault: string;
  path: string;
  /** the outcome, in words (the test's name) */
  expect: string;
  /** waits out a deadline (only sleeps): started outside the pool */
  slow?: boolean;
  /** the case must end within this + 1 s */
  deadlineMs?: number;
  run(env: MatrixEnv): Promise<{ ms: number; check(): void }>;
}

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs argv with exactly `env` (plus PATH). With `mountScript`, in a private mount namespace,
 * after that shell script (which sets up mounts: a read-only or full lock dir) has run.
 */
export async function run(argv: string[], env: Record<string, string>, mountScript?: string): Promise<Outcome> {
  const cmd = mountScript
    ? ["unshare", "--mount", "--propagation", "private", "sh", "-c", `set -e\n${mountScript}\nexec "$@"`, "sh", ...argv]
    : argv;
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { env: { PATH, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

/** At most `n` at once; what waits out a deadline may go around it (it only sleeps). */
export function pool(n: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await f();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

/** A lock dir as the prolog leaves it: 0700 root, the marker of UID in it. */
export function lockDirWithMarker(parent: string, name: string): string {
  const d = join(parent, name);
  mkdirSync(d, { mode: 0o700 });
  writeFileSync(join(d, `uid.${UID}.active`), "", { mode: 0o600 });
  return d;
}

// ---- the commands and what each must say when it refuses ----

export function accountArgv(uri: string, extra: string[] = []): string[] {
  return [BINARY, "account", `uri=${uri}`, `timeout=${BUDGET_S}s`, ...extra];
}

/** account's refusal: exit 1, the denial on stdout, one log line naming the reason. */
export function deniedByAccount(reason: RegExp): (o: Outcome) => void {
  return (o) => {
    expectLine(o.stderr, "flux-pam account: access denied for user daemon (uid=1): ", reason);
    expectEq({ code: o.code, stdout: o.stdout }, { code: 1, stdout: `${DENIED}\n` });
  };
}

export function sessionArgv(uri: string, lockDir: string): string[] {
  return [BINARY, "session-open", `uri=${uri}`, `lock-dir=${lockDir}`, `timeout=${BUDGET_S}s`];
}

export function sessionEnv(bus: string): Record<string, string> {
  return { PAM_USER: USER, PAM_SERVICE: "sshd", FLUX_PAM_PID: String(process.pid), DBUS_SYSTEM_BUS_ADDRESS: bus };
}

/** session-open's refusal: exit 1, the denial on stdout, one log line naming the reason. */
export function deniedBySession(reason: RegExp): (o: Outcome) => void {
  return (o) => {
    expectLine(o.stderr, "flux-pam session-open: session denied for user daemon: ", reason);
    expectEq({ code: o.code, stdout: o.stdout }, { code: 1, stdout: `${DENIED}\n` });
  };
}

export function hookEnv(uri: string, lockDir: string, bus: string, extra: Record<string, string> = {}): Record<string, string> {
  return { FLUX_URI: uri, FLUX_JOB_USERID: String(UID), FLUX_JOB_ID: JOB, FLUX_PAM_LOCK_DIR: lockDir, DBUS_SYSTEM_BUS_ADDRESS: bus, ...extra };
}

/**
 * A hook's failure: exit 1, one stderr line `flux-pam-HOOK[fZEr9Bmq]: REASON`, nothing on stdout.
 * With `warned`: a best-effort step's warning comes first, then the failure: exactly those two lines.
 */
export function hookFailed(hook: "prolog" | "housekeeping", reason: RegExp, tag = TAG, warned?: RegExp): (o: Outcome) => void {
  return (o) => {
    const prefix = `flux-pam-${hook}[${tag}]: `;
    if (warned === undefined) expectLine(o.stderr, prefix, reason);
    else {
      const lines = o.stderr.split("\n").filter((l) => l !== "");
      if (lines.length !== 2) throw new OutcomeError(`expected a warning, then the failure ("${prefix}..."), got ${JSON.stringify(o.stderr)}`);
      expectLine(lines[0]!, prefix, warned);
      expectLine(lines[1]!, prefix, reason);
    }
    expectEq({ code: o.code, stdout: o.stdout }, { code: 1, stdout: "" });
  };
}

/** pam_flux.so's account through libpam: PAM_PERM_DENIED, the denial, the reason in syslog. */
export async function pamAccount(parent: string, name: string, helper: string, options: string, user = USER) {
  const pam = pamConfDir(parent, `pam-${name}`);
  pam.service("svc", [`account required ${MODULE} helper=${helper} ${options}`]);
  const t0 = performance.now();
  const r = await runDriver({ confdir: pam.path, service: "svc", actions: ["acct"], user });
  return { ...r, ms: performance.now() - t0 };
}

/** pam_flux.so's account (admitted by `goodUri`) then session through libpam. */
export async function pamSession(parent: string, name: string, helper: string, goodUri: string, sessionOptions: string) {
  const pam = pamConfDir(parent, `pam-${name}`);
  pam.service("svc", [
    `account required ${MODULE} helper=${helper} uri=${goodUri}`,
    `session required ${MODULE} helper=${helper} timeout=${BUDGET_S}s ${sessionOptions}`,
  ]);
  const t0 = performance.now();
  const r = await runDriver({ confdir: pam.path, service: "svc", actions: ["acct", "open"], user: USER });
  return { ...r, ms: performance.now() - t0 };
}

export type PamResult = Awaited<ReturnType<typeof pamAccount>>;

export function pamDenied(reason: RegExp): (r: PamResult) => void {
  return (r) => {
    expectEq(codes(r), ["acct PAM_PERM_DENIED"]);
    expectEq(r.conv, [`PAM_ERROR_MSG ${DENIED}`]);
    expectLine(r.syslog.join("\n"), "LOG_ERR pam_flux(svc:account): access denied for user daemon (uid=1): ", reason);
  };
}

export function pamSessionRefused(reason: RegExp): (r: PamResult) => void {
  return (r) => {
    expectEq(codes(r), ["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
    expectEq(r.conv, [`PAM_ERROR_MSG ${DENIED}`]);
    expectLine(r.syslog.join("\n"), "LOG_ERR pam_flux(svc:session): session denied for user daemon: ", reason);
  };
}

// ---- exact checks that say which case failed ----

export class OutcomeError extends Error {
  override name = "OutcomeError";
}

export function expectEq(got: unknown, want: unknown): void {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new OutcomeError(`expected ${w}\n     got ${g}`);
}

/** `text` is exactly one line: `prefix` then a reason matching `reason` (no stack, no "undefined"). */
export function expectLine(text: string, prefix: string, reason: RegExp): void {
  const lines = text.split("\n").filter((l) => l !== "");
  if (lines.length !== 1) throw new OutcomeError(`expected one line "${prefix}...", got ${JSON.stringify(text)}`);
  const line = lines[0]!;
  if (!line.startsWith(prefix)) throw new OutcomeError(`expected "${prefix}...", got ${JSON.stringify(line)}`);
  const why = line.slice(prefix.length);
  if (!reason.test(why)) throw new OutcomeError(`reason ${JSON.stringify(why)} does not match ${reason}`);
  if (/\bundefined\b|\n\s+at /.test(why)) throw new OutcomeError(`reason holds "undefined" or a stack: ${JSON.stringify(why)}`);
}

/** The path the compiled libpam driver is at (built by ensureBuilt). */
export { DRIVER };
