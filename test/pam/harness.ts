// Shared by the pam_flux.so tests: PAM config dirs, root-owned helpers, the libpam driver, pamtester.

import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, ROOT } from "../e2e/harness";

export const MODULE = join(ROOT, "build/pam_flux.so");
export const DRIVER = join(ROOT, "build/test/pam-driver");
export const SERVICE = "flux-pam-test";

let built: Promise<void> | undefined;

/**
 * Builds the module and the driver (cheap, C only). The compiled flux-pam must exist already:
 * `make check` builds it; rebuilding it here would race with other test files.
 */
export function ensureBuilt(): Promise<void> {
  built ??= (async () => {
    const make = Bun.spawn(["make", "-s", "-C", ROOT, "build/pam_flux.so", "build/test/pam-driver"], { stdout: "inherit", stderr: "inherit" });
    if ((await make.exited) !== 0) throw new Error("make build/pam_flux.so build/test/pam-driver failed");
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run make check (or make build/flux-pam)`);
  })();
  return built;
}

/** A PAM config dir for pam_start_confdir: `other` denies, so a missing service file cannot pass. */
export function pamConfDir(parent: string, name = "pam.d"): { path: string; service(name: string, lines: string[]): void } {
  const path = join(parent, name);
  mkdirSync(path, { recursive: true, mode: 0o755 });
  const deny = "pam_deny.so";
  writeFileSync(join(path, "other"), ["auth", "account", "password", "session"].map((t) => `${t} required ${deny}`).join("\n") + "\n");
  return {
    path,
    service(name, lines) {
      writeFileSync(join(path, name), lines.join("\n") + "\n");
    },
  };
}

/** What the stack of ignoreVisible() says when pam_flux.so returned PAM_IGNORE. */
export const IGNORED = "PAM_TEXT_INFO pam_flux.so returned PAM_IGNORE";

/**
 * A stack in which pam_flux.so's own PAM_IGNORE can be seen. libpam turns a stack whose every
 * module ignored into PAM_PERM_DENIED, so a lone module's PAM_IGNORE cannot be told from a
 * denial; here an ignore runs pam_echo (IGNORED) and pam_permit, success ends the stack, and
 * any other code ends it with that code.
 */
export function ignoreVisible(type: "account" | "session", args: string): string[] {
  return [
    `${type} [success=done ignore=ignore default=die] ${MODULE} ${args}`,
    `${type} optional pam_echo.so pam_flux.so returned PAM_IGNORE`,
    `${type} required pam_permit.so`,
  ];
}

let helperDirs = 0;

/**
 * Installs `content` (or a copy of `source`) as an executable in a fresh directory of its own,
 * owned by root and mode 0755, as pam_flux.so requires of its helper. Returns the file's path.
 */
export function installHelper(parent: string, opts: { source?: string; content?: string; name?: string; mode?: number; owner?: number }): string {
  const dir = join(parent, `helper-${++helperDirs}`);
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  chownSync(dir, 0, 0);
  const file = join(dir, opts.name ?? "flux-pam");
  if (opts.source) copyFileSync(opts.source, file);
  else writeFileSync(file, opts.content ?? "");
  chownSync(file, opts.owner ?? 0, 0);
  chmodSync(file, opts.mode ?? 0o755);
  return file;
}

/**
 * A copy of the driver installed setuid root in a directory of its own under `parent`, for
 * DriverOptions.setuidCopy. `parent` is made 0711: uid 65534 must reach the copy.
 */
export function setuidDriver(parent: string): string {
  chmodSync(parent, 0o711);
  return installHelper(parent, { source: DRIVER, name: "pam-driver", mode: 0o4755 });
}

/** A stand-in helper: a shell script that writes reply lines to the reply fd. */
export function standIn(parent: string, body: string): string {
  return installHelper(parent, { content: `#!/bin/sh\n${body}\n`, name: "stand-in" });
}

/** A copy of the compiled flux-pam that pam_flux.so will accept as its helper. */
export function realHelper(parent: string): string {
  return installHelper(parent, { source: BINARY });
}

export interface PamCall {
  action: string;
  name: string;
  code: number;
}

export interface DriverResult {
  /** the driver's pid: the PAM process */
  pid: number;
  calls: PamCall[];
  /** conversation messages as "STYLE TEXT" */
  conv: string[];
  /** what the modules logged, as "PRIORITY TEXT" (libpam's own config complaints left out) */
  syslog: string[];
  /** the PAM environment after a successful open */
  env: Record<string, string>;
  lines: string[];
  stderr: string;
  exitCode: number;
}

export interface DriverOptions {
  confdir: string;
  /** PAM calls, in order; `user=NAME` sets PAM_USER between them (as sudo does before its session) */
  actions: ("acct" | "open" | "close" | "auth" | `user=${string}`)[];
  service?: string;
  user?: string;
  rhost?: string;
  tty?: string;
  silent?: boolean;
  /** real uid of the caller (effective uid stays 0), as under su/sudo */
  ruid?: number;
  /**
   * Run as sudo runs: a setuid-root copy of the driver (this path, see setuidDriver) started by
   * uid 65534, which raises its real uid to 0 before its PAM calls and keeps the user's environment.
   */
  setuidCopy?: string;
  careless?: boolean;
  /** (with careless) a child of the driver's own exits this many ms after the start */
  ownChildMs?: number;
  /** a thread of the driver's reaps every child it can, the helper too */
  reaperThread?: boolean;
  /** log one line at LOG_USER first: the control that shows the driver tells facilities apart */
  facilityControl?: boolean;
  repeat?: number;
  timing?: boolean;
  /** the caller's environment (PATH is always set) */
  env?: Record<string, string>;
  /** the caller's working directory */
  cwd?: string;
}

export function driverArgs(o: DriverOptions): string[] {
  const start = o.setuidCopy !== undefined ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", o.setuidCopy, "-S"] : [DRIVER];
  const a = [...start, "-c", o.confdir, "-s", o.service ?? SERVICE, "-u", o.user ?? "nobody"];
  if (o.rhost !== undefined) a.push("-r", o.rhost);
  if (o.tty !== undefined) a.push("-t", o.tty);
  if (o.silent) a.push("-q");
  if (o.ruid !== undefined) a.push("-R", String(o.ruid));
  if (o.careless) a.push("-H");
  if (o.ownChildMs !== undefined) a.push("-K", String(o.ownChildMs));
  if (o.reaperThread) a.push("-W");
  if (o.facilityControl) a.push("-F");
  if (o.repeat !== undefined) a.push("-n", String(o.repeat));
  if (o.timing) a.push("-T");
  return [...a, ...o.actions];
}

/** Runs the libpam driver and parses what it prints. */
export async function runDriver(o: DriverOptions): Promise<DriverResult> {
  const proc = Bun.spawn(driverArgs(o), {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...o.env },
    cwd: o.cwd,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const r: DriverResult = { pid: 0, calls: [], conv: [], syslog: [], env: {}, lines: [], stderr, exitCode };
  for (const line of stdout.split("\n")) {
    if (line === "") continue;
    r.lines.push(line);
    const [head, ...rest] = line.split(" ");
    const tail = rest.join(" ");
    if (head === "pid") r.pid = Number(tail);
    else if (head === "conv") r.conv.push(tail);
    else if (head === "syslog") {
      if (!tail.includes("_pam_init_handlers")) r.syslog.push(tail);
    } else if (head === "env") {
      const eq = tail.indexOf("=");
      r.env[tail.slice(0, eq)] = tail.slice(eq + 1);
    } else if (o.actions.includes(head as DriverOptions["actions"][number])) r.calls.push({ action: head!, name: rest[0]!, code: Number(rest[1]) });
  }
  return r;
}

/** The return code names of the calls, in order: ["acct PAM_SUCCESS", "open PAM_IGNORE"]. */
export function codes(r: DriverResult): string[] {
  return r.calls.map((c) => `${c.action} ${c.name}`);
}

/**
 * Runs pamtester with `pamDir` seen as /etc/pam.d, in a private mount namespace: pamtester
 * has no config-dir option, and the machine's own /etc/pam.d stays untouched.
 */
export async function runPamtester(pamDir: string, service: string, user: string, operation: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = 'mount --bind "$1" /etc/pam.d && exec pamtester "$2" "$3" "$4"';
  const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", pamDir, service, user, operation], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/**
 * A working directory as a user could leave it for su: a bunfig.toml whose preload script, and a
 * .env whose FLUX_URI (default: a socket that is not there; give a broker that vouches for the
 * user to make reading it admit), would act if a root helper read them. `ran` is where the script writes.
 */
export function hostileCwd(parent: string, uri = "local:///nonexistent/evil.sock"): { path: string; ran: string } {
  const path = join(parent, "hostile-cwd");
  const ran = join(path, "preload-ran");
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "evil.js"), `require("node:fs").writeFileSync(${JSON.stringify(ran)}, "yes");\n`);
  writeFileSync(join(path, "bunfig.toml"), 'preload = ["./evil.js"]\n');
  writeFileSync(join(path, ".env"), `FLUX_URI=${uri}\n`);
  return { path, ran };
}

/** True when `pid` is gone (or a zombie nobody reaped yet: it runs no more). */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw e;
  }
}
