// Shared by the end-to-end tests: the test broker as a process, temp dirs, running the compiled binary.

import { afterEach, beforeEach } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import type { Scenario } from "../broker/scenario";
import { type Json, parseJson, stringifyJson } from "../../src/flux/json";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = join(ROOT, "node_modules/.bin/bun");
export const BINARY = join(ROOT, "build/flux-pam");

export function tempDir(prefix = "flux-pam-test-"): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A fresh lock dir (DIR/locks, 0700, in a temp dir of its own) for each test of the calling file:
 * registers the beforeEach and afterEach that make and remove it. Call at the file's top level.
 */
export function lockDirPerTest(): { readonly tmp: string; readonly dir: string } {
  let t: ReturnType<typeof tempDir> | undefined;
  beforeEach(() => {
    t = tempDir();
    mkdirSync(join(t.path, "locks"), { mode: 0o700 });
  });
  afterEach(() => t?.remove());
  return {
    get tmp() {
      return t!.path;
    },
    get dir() {
      return join(t!.path, "locks");
    },
  };
}

export interface BrokerProcess {
  uri: string;
  socket: string;
  /** rewrites the scenario; the broker reads it again on its next request */
  setScenario(s: Scenario): void;
  /** the requests it was sent since the last clearRequests (started with logRequests only) */
  requests(): { topic: string; payload?: Json }[];
  clearRequests(): void;
  stop(): Promise<void>;
}

/**
 * Starts test/broker/main.ts on a socket in `dir` and waits until it listens. With `logRequests`
 * it writes down every request (a line each, read back by requests()).
 */
export async function startBrokerProcess(scenario: Scenario, dir: string, name = "broker", opts: { logRequests?: boolean } = {}): Promise<BrokerProcess> {
  const socket = join(dir, `${name}.sock`);
  const file = join(dir, `${name}.json`);
  const log = join(dir, `${name}.requests`);
  let gen = 0;
  const write = (s: Scenario) => {
    // The size changes with gen, so the broker's mtime+size cache sees every rewrite.
    writeFileSync(`${file}.tmp`, stringifyJson({ ...(s as Json as object), _gen: ++gen } as Json) + " ".repeat(gen % 2));
    renameSync(`${file}.tmp`, file);
  };
  write(scenario);
  if (opts.logRequests) writeFileSync(log, "");
  const proc: Subprocess<"ignore", "pipe", "inherit"> = Bun.spawn([BUN, join(ROOT, "test/broker/main.ts"), socket, file, ...(opts.logRequests ? [log] : [])], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("test broker did not start");
  return {
    uri: `local://${socket}`,
    socket,
    setScenario: write,
    requests: () => {
      if (!opts.logRequests) throw new Error("the broker was started without logRequests");
      return readFileSync(log, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => parseJson(l) as { topic: string; payload?: Json });
    },
    clearRequests: () => writeFileSync(log, ""),
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the compiled flux-pam with exactly `env` (plus PATH), as PAM or Flux would. */
export async function runBinary(args: string[], env: Record<string, string>, binary = BINARY): Promise<RunResult> {
  const proc = Bun.spawn([binary, ...args], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

export type RawPeerMode = "stale" | "reset" | "hup" | "mute";

/** test/broker/raw-peer.ts on `socket`: a peer that misbehaves below the protocol. Resolves once the socket is there. */
export async function startRawPeer(mode: RawPeerMode, socket: string): Promise<{ stop(): Promise<void> }> {
  const proc = Bun.spawn([BUN, join(ROOT, "test/broker/raw-peer.ts"), mode, socket], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error(`raw peer (${mode}) did not start`);
  return {
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
