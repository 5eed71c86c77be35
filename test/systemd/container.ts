// Real systemd for tests: boots the cached Debian rootfs with systemd-nspawn (see shared
// systemd-test-env.md), runs commands inside with nsenter, halts it. One container per rootfs at a
// time, so boots are serialised by a lock file: two test files, or two people, simply take turns.

import { accessSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { EINTR, EWOULDBLOCK, flock, LOCK_EX, LOCK_NB } from "../../src/node/libc";

export const ROOT = resolve(import.meta.dir, "../..");
/** The host dir bound read-only at /opt/flux-pam: the compiled binaries. */
export const BUILD = join(ROOT, "build");
const MAKE_ROOTFS = join(import.meta.dir, "make-rootfs.sh");
const NSPAWN = "/usr/bin/systemd-nspawn";
const CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** test/systemd/client-driver.ts compiled (buildClientDriver), as the container sees it. */
export const CLIENT_DRIVER = "/opt/flux-pam/test/systemd-driver";

/**
 * Compiles test/systemd/client-driver.ts as the Makefile compiles flux-pam (build/compile.ts, the
 * options of make compile-flags: dbus-native's stand-ins included), into build/test/.
 */
export async function buildClientDriver(): Promise<void> {
  const flags = (await Bun.$`make -s -C ${ROOT} compile-flags`.text()).trim().split(/\s+/).filter(Boolean);
  const p = Bun.spawn(
    [process.execPath, join(ROOT, "build/compile.ts"), ...flags, "test/systemd/client-driver.ts", join(BUILD, "test", "systemd-driver")],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`compiling the driver failed: ${err}`);
}

/**
 * Shell functions for a script in the container that runs uid's hooks: settle_up waits for
 * user@UID.service to be active; settle_down for it to be stopped and user-UID.slice freed by
 * systemd (a teardown queues the stop). Each gives up after 5 s, saying which.
 */
export function settleFunctions(uid: number): string {
  return `settle_up() { for i in $(seq 500); do [ "$(systemctl is-active user@${uid}.service)" = active ] && return 0; sleep 0.01; done; echo "user@${uid} did not come up" >&2; exit 1; }
settle_down() { for i in $(seq 500); do ! systemctl is-active -q user@${uid}.service && ! busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager GetUnit s user-${uid}.slice >/dev/null 2>&1 && return 0; sleep 0.01; done; echo "user-${uid}.slice was not freed" >&2; exit 1; }`;
}

export interface Bind {
  host: string;
  container: string;
  readOnly?: boolean;
}

export interface BootOptions {
  /** more host dirs to see inside, e.g. one holding a test broker's unix socket */
  binds?: Bind[];
  /** how long to wait for the rootfs lock held by another container; default 10 min */
  lockTimeoutMs?: number;
  /**
   * The CPUs the container's node has, as flux-pam reads them (/sys/devices/system/cpu/possible
   * and /online, bind-mounted over inside): for tests whose jobs hold more CPUs than this machine
   * has. Only what sysfs says changes: the kernel's cpusets stay this machine's (what a slice is
   * held to is checked in systemd's properties there, and by the kernel only in test/vm).
   */
  cpus?: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** default 30 s; the command is killed after it */
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface Container {
  rootfs: string;
  /** the container's PID 1 as the host sees it */
  leader: number;
  /** ms from starting nspawn to `systemctl is-system-running` saying running/degraded */
  bootMs: number;
  /** Runs cmd inside every namespace of the container, as root, with a clean environment. */
  exec(cmd: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** exec that throws (with the command's stderr) unless it exits 0; returns stdout */
  run(cmd: string[], opts?: ExecOptions): Promise<string>;
  /** Halts the container (clean shutdown, SIGKILL after 20 s) and releases the rootfs. */
  stop(): Promise<void>;
}

/** Why containers cannot run here, or undefined when they can. Only these reasons may skip a test. */
export function containerSkipReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root (systemd-nspawn needs root)";
  try {
    accessSync(NSPAWN, constants.X_OK);
  } catch {
    return `no ${NSPAWN} (apt-get install systemd-container)`;
  }
  return undefined;
}

/**
 * Builds the rootfs once (cached under /var/cache/flux-pam, or FLUX_PAM_CACHE) and returns its
 * path. Under a lock, so test runs that start together on a fresh machine debootstrap only once.
 */
export async function rootfsPath(): Promise<string> {
  const cache = process.env.FLUX_PAM_CACHE || "/var/cache/flux-pam";
  mkdirSync(cache, { recursive: true });
  const unlock = await lockFile(join(cache, "make-rootfs.lock"), 30 * 60_000, "another run is building the rootfs");
  try {
    const p = Bun.spawn(["bash", MAKE_ROOTFS], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`make-rootfs.sh failed (exit ${code}): ${err.trim()}`);
    return out.trim().split("\n").at(-1)!;
  } finally {
    unlock();
  }
}

/** An exclusive flock on `path`, waited for; returns the release. */
async function lockFile(path: string, timeoutMs: number, holder: string): Promise<() => void> {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const err = flock(fd, LOCK_EX | LOCK_NB);
    if (err === 0) return () => closeSync(fd);
    if (err !== EWOULDBLOCK && err !== EINTR) {
      closeSync(fd);
      throw new Error(`flock ${path}: errno ${err}`);
    }
    if (Date.now() > end) {
      closeSync(fd);
      throw new Error(`${path} is still held after ${timeoutMs} ms: ${holder}`);
    }
    await Bun.sleep(200);
  }
}

/** The child of `parent` whose command name is `comm` (what `pgrep -P PARENT -x COMM` finds). */
function childNamed(parent: number, comm: string): number | undefined {
  for (const ent of readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${ent}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split at the last ")".
    const close = stat.lastIndexOf(")");
    const name = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (ppid === parent && name === comm) return Number(ent);
  }
  return undefined;
}

async function collect(p: Subprocess<"ignore", "pipe", "pipe">, timeoutMs: number, what: string): Promise<ExecResult> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (timedOut) throw new Error(`${what}: killed after ${timeoutMs} ms\n${stderr}`);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

export async function bootContainer(opts: BootOptions = {}): Promise<Container> {
  const skip = containerSkipReason();
  if (skip) throw new Error(`cannot boot a container: ${skip}`);
  const rootfs = await rootfsPath();
  // nspawn itself refuses a second boot of a busy tree; waiting our turn is kinder.
  const unlock = await lockFile(`${rootfs}.lock`, opts.lockTimeoutMs ?? 600_000, "another container runs on this rootfs");
  const logDir = mkdtempSync(join(tmpdir(), "flux-pam-nspawn-"));
  const consoleLog = join(logDir, "console.log");
  mkdirSync(BUILD, { recursive: true });
  const binds = [{ host: BUILD, container: "/opt/flux-pam", readOnly: true }, ...(opts.binds ?? [])].map(
    (b) => `--bind${b.readOnly ? "-ro" : ""}=${b.host}:${b.container}`,
  );
  const log = openSync(consoleLog, "w");
  const t0 = performance.now();
  // setpriv --pdeathsig: if the test runner dies, nspawn is told to halt rather than keep the
  // rootfs busy for every later run. setpriv execs nspawn, so the pid is nspawn's own.
  const nspawn = Bun.spawn(
    ["setpriv", "--pdeathsig", "SIGTERM", NSPAWN, "--keep-unit", "--register=no", "-D", rootfs, "--volatile=overlay", "--private-network", "-b", ...binds],
    {
      env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" },
      stdin: "ignore",
      stdout: log,
      stderr: log,
    },
  );
  closeSync(log);
  let stopped = false;
  const killOnExit = () => nspawn.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", killOnExit);
    nspawn.kill("SIGTERM"); // nspawn turns this into a clean halt of the container
    const halted = await Promise.race([nspawn.exited.then(() => true), Bun.sleep(20_000).then(() => false)]);
    if (!halted) {
      nspawn.kill("SIGKILL");
      await nspawn.exited;
    }
    unlock();
    rmSync(logDir, { recursive: true, force: true });
  };
  const consoleTail = () => {
    try {
      return readFileSync(consoleLog, "utf8").split("\n").slice(-20).join("\n");
    } catch {
      return "(no console log)";
    }
  };

  try {
    let leader: number | undefined;
    for (const end = Date.now() + 30_000; leader === undefined; ) {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited with ${nspawn.exitCode}`);
      if (Date.now() > end) throw new Error("the container's systemd did not appear within 30 s");
      leader = childNamed(nspawn.pid, "systemd");
      if (leader === undefined) await Bun.sleep(20);
    }
    // Never nsenter a pid we have not proven to be the container's PID 1: `nsenter -t <host pid>`
    // would run the command on the host.
    if (!(leader > 1) || leader === process.pid) throw new Error(`bad container leader pid ${leader}`);
    const pid1 = leader;

    const exec = (cmd: string[], o: ExecOptions = {}): Promise<ExecResult> => {
      if (stopped) throw new Error("the container is stopped");
      const p = Bun.spawn(["nsenter", "-t", String(pid1), "-a", "--", ...cmd], {
        env: { PATH: CONTAINER_PATH, LANG: "C.UTF-8", ...o.env },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      return collect(p, o.timeoutMs ?? 30_000, cmd.join(" "));
    };
    const run = async (cmd: string[], o?: ExecOptions): Promise<string> => {
      const r = await exec(cmd, o);
      if (r.code !== 0) throw new Error(`in the container, ${cmd.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
      return r.stdout;
    };

    // PID 1 exists before its bus does: retry until systemctl can ask it, then wait for boot to end.
    let state = "";
    for (const end = Date.now() + 60_000; ; ) {
      const r = await exec(["systemctl", "is-system-running", "--wait"], { timeoutMs: 60_000 });
      state = r.stdout.trim();
      if (state === "running" || state === "degraded") break;
      if (Date.now() > end) throw new Error(`the container did not finish booting: is-system-running said "${state}" ${r.stderr.trim()}`);
      await Bun.sleep(50);
    }
    const bootMs = performance.now() - t0;
    if (state === "degraded") {
      const failed = await exec(["systemctl", "--failed", "--no-legend"]);
      process.stderr.write(`container booted degraded; failed units:\n${failed.stdout}`);
    }
    if (opts.cpus !== undefined) {
      if (!/^[0-9,-]+$/.test(opts.cpus)) throw new Error(`cpus ${JSON.stringify(opts.cpus)} is not an idset`);
      const f = "/run/test-cpus";
      await run(["sh", "-c", `printf '%s\\n' ${opts.cpus} >${f} && mount --bind ${f} /sys/devices/system/cpu/possible && mount --bind ${f} /sys/devices/system/cpu/online`]);
    }
    return { rootfs, leader: pid1, bootMs, exec, run, stop };
  } catch (e) {
    const tail = consoleTail();
    await stop();
    throw new Error(`${(e as Error).message}\n--- container console ---\n${tail}`);
  }
}
