// A real kernel for the enforcement test: the QEMU VM of ../shared/vm (Debian 12, systemd 252 as
// PID 1, cgroup v2 with every controller). Built once with make-image.sh into /var/cache/vmref
// (or VMREF_DIR) when missing, booted once per test run in run-in-vm.sh's persistent mode, with a
// host dir shared read-write at /mnt/host. The scripts are not copied into this repo: they are
// used from shared/ beside it (FLUX_PAM_VM_SCRIPTS overrides the path).

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const VM_SCRIPTS = process.env.FLUX_PAM_VM_SCRIPTS || resolve(ROOT, "../shared/vm");
export const VMREF_DIR = process.env.VMREF_DIR || "/var/cache/vmref";

/** Why the VM cannot run here (the scripts are missing, not root), or undefined when it can. */
export function vmProblem(): string | undefined {
  for (const f of ["make-image.sh", "run-in-vm.sh"])
    if (!existsSync(join(VM_SCRIPTS, f)))
      return `${join(VM_SCRIPTS, f)} is missing: the VM tests use the scripts of shared/vm beside the repo (../shared/vm), or FLUX_PAM_VM_SCRIPTS=DIR`;
  if (process.getuid?.() !== 0) return "not root (make-image.sh needs root, and so does the VM's QEMU setup)";
  return undefined;
}

export interface VmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Vm {
  /** the host dir the guest sees at /mnt/host */
  share: string;
  /** ms from starting QEMU to the first ssh login done */
  bootMs: number;
  /** Runs a shell command string in the guest as root (over ssh). */
  exec(script: string, timeoutMs?: number): Promise<VmResult>;
  /** exec that throws unless it exits 0; returns stdout */
  run(script: string, timeoutMs?: number): Promise<string>;
  /** ACPI power-off; removes the state dir (and the share, when bootVm made it) */
  stop(): Promise<void>;
}

async function spawn(cmd: string[], env: Record<string, string>, timeoutMs: number): Promise<VmResult> {
  const p = Bun.spawn(cmd, { env: { ...process.env, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGTERM"); // run-in-vm.sh cleans up on TERM
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (timedOut) throw new Error(`${cmd.slice(0, 4).join(" ")}: killed after ${timeoutMs} ms\n${stderr}`);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Builds the image with make-image.sh unless it is there (cmdline is written last), under a lock. */
export async function ensureImage(): Promise<void> {
  if (!existsSync(join(VMREF_DIR, "cmdline"))) console.log(`no VM image in ${VMREF_DIR}: building it with make-image.sh (~95 s)`);
  const script = 'if [ -r "$1/cmdline" ] && [ -r "$1/rootfs.img" ]; then exit 0; fi; bash "$2" "$1"';
  const r = await spawn(["flock", `${VMREF_DIR}.lock`, "bash", "-c", script, "_", VMREF_DIR, join(VM_SCRIPTS, "make-image.sh")], {}, 30 * 60_000);
  if (r.code !== 0) throw new Error(`make-image.sh ${VMREF_DIR} failed (exit ${r.code}):\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
}

/**
 * Boots the VM with `cpus` vCPUs and the kernel split into `numaNodes` fake NUMA nodes, so that a
 * cpuset of "0" is visibly narrower than the machine. `share` is shared read-write at /mnt/host.
 */
export async function bootVm(opts: { share?: string; cpus: number; numaNodes: number }): Promise<Vm> {
  const problem = vmProblem();
  if (problem) throw new Error(`cannot boot the VM: ${problem}`);
  await ensureImage();
  // run-in-vm.sh --start empties its state dir: the share must live elsewhere.
  const state = mkdtempSync(join(tmpdir(), "flux-pam-vm-state-"));
  const share = opts.share ?? mkdtempSync(join(tmpdir(), "flux-pam-vm-share-"));
  if (share.includes(",")) throw new Error(`the share path may not hold a comma (QEMU option syntax): ${share}`);
  const runner = join(VM_SCRIPTS, "run-in-vm.sh");
  const env = {
    VMREF_DIR,
    VMREF_CPUS: String(opts.cpus),
    VMREF_APPEND: `${process.env.VMREF_APPEND ?? ""} numa=fake=${opts.numaNodes}`.trim(),
  };
  // If this process dies without afterAll, the VM must not outlive it: kill our QEMU by its pid.
  const killOnExit = () => {
    try {
      const pid = Number(readFileSync(join(state, "qemu.pid"), "utf8"));
      if (pid > 1 && readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("qemu")) process.kill(pid, "SIGKILL");
    } catch {}
  };
  process.once("exit", killOnExit);
  const t0 = performance.now();
  const started = await spawn(["bash", runner, "--start", state, "--share", share], env, 5 * 60_000);
  if (started.code !== 0) {
    let tail = "";
    try {
      tail = readFileSync(join(state, "console.log"), "utf8").split("\n").slice(-20).join("\n");
    } catch {}
    killOnExit();
    rmSync(state, { recursive: true, force: true });
    if (!opts.share) rmSync(share, { recursive: true, force: true });
    throw new Error(`the VM did not start (exit ${started.code}): ${started.stderr.trim()}\n--- console ---\n${tail}`);
  }
  const bootMs = performance.now() - t0;
  const exec = (script: string, timeoutMs = 120_000) =>
    spawn(["bash", runner, "--exec", state, "--", script], { ...env, VMREF_TIMEOUT: String(Math.ceil(timeoutMs / 1000)) }, timeoutMs + 10_000);
  return {
    share,
    bootMs,
    exec,
    async run(script, timeoutMs) {
      const r = await exec(script, timeoutMs);
      if (r.code !== 0) throw new Error(`in the VM, \`${script}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
      return r.stdout;
    },
    async stop() {
      await spawn(["bash", runner, "--stop", state], env, 60_000);
      killOnExit();
      process.off("exit", killOnExit);
      rmSync(state, { recursive: true, force: true });
      if (!opts.share) rmSync(share, { recursive: true, force: true });
    },
  };
}
