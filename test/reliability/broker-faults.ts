// The fault matrix, broker faults: every way a broker can fail a command, against account,
// session-open, prolog and housekeeping through the compiled binary, and account and session
// through pam_flux.so and real libpam. Each case asserts the exact outcome (deny, or fail with its
// one-line reason): nothing admitted, the marker unchanged (and matrix.test.ts: no systemd call).

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Delivery, type Tamper, startBroker } from "../broker/broker";
import type { Scenario } from "../broker/scenario";
import { BINARY, startRawPeer } from "../e2e/harness";
import {
  BUDGET_S,
  JOB,
  UID,
  accountArgv,
  deniedByAccount,
  deniedBySession,
  expectEq,
  hookEnv,
  hookFailed,
  lockDirWithMarker,
  NODE,
  type MatrixCase,
  pamAccount,
  pamDenied,
  pamSession,
  pamSessionRefused,
  run,
  sessionArgv,
  sessionEnv,
} from "./harness";

const TOPICS = ["attr.get", "config.get", "job-list.list"];
/** What the hooks wait at most: 5 s to connect, 30 s for the broker's answers in all. */
const HOOK_CONNECT_S = 5;
const HOOK_BROKER_S = 30;

interface BrokerFault {
  name: string;
  start(dir: string): Promise<{ uri: string; stop(): Promise<void> | void }>;
  /** the reason every command gives, after its own prefix */
  reason: RegExp;
  /** what the command waits for before it fails: its connect budget, or its RPC budget */
  waits?: "connect" | "rpc";
}

let n = 0;
const sock = (dir: string, what: string) => join(dir, `${what}-${n++}.sock`);

function broker(s: Scenario, tamper?: Tamper) {
  return async (dir: string) => {
    const b = startBroker(sock(dir, "b"), s, undefined, tamper);
    return { uri: `local://${b.path}`, stop: () => b.stop() };
  };
}

function raw(mode: "stale" | "reset" | "hup" | "mute") {
  return async (dir: string) => {
    const path = sock(dir, mode);
    const p = await startRawPeer(mode, path);
    return { uri: `local://${path}`, stop: () => p.stop() };
  };
}

const be32 = (b: Uint8Array, o: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(o, v);
const each = (f: (reply: Uint8Array) => Delivery): Tamper => (_t, _req, reply) => f(reply.slice());


const BROKER_FAULTS: BrokerFault[] = [
  {
    name: "socket absent (its directory there: a broker may be starting)",
    start: async (dir) => ({ uri: `local://${sock(dir, "absent")}`, stop() {} }),
    reason: /^cannot reach the Flux broker at \S+: broker socket \S+ was not found \(ENOENT\), still after \d+ ms$/,
    waits: "connect",
  },
  {
    name: "socket and its directory absent",
    start: async () => ({ uri: `local:///nonexistent-${process.pid}/local`, stop() {} }),
    reason: /^cannot reach the Flux broker at \S+: broker socket \S+ was not found \(ENOENT\), nor its directory \S+: no broker runs or starts here$/,
  },
  {
    name: "not a socket (a regular file)",
    start: async (dir) => {
      const path = sock(dir, "file");
      writeFileSync(path, "");
      return { uri: `local://${path}`, stop() {} };
    },
    reason: /^cannot reach the Flux broker at \S+: \S+ is a regular file, not a socket \(ENOTSOCK\)$/,
  },
  {
    name: "nobody listening (a stale socket)",
    start: raw("stale"),
    reason: /^cannot reach the Flux broker at \S+: nobody listens on \S+ \(ECONNREFUSED\): a socket left by a broker that is not running$/,
  },
  {
    name: "handshake refused (EPERM)",
    start: broker({ ...NODE, handshake: 1 }),
    reason: /^the Flux broker at \S+ refused the connection: EPERM \(no assigned roles for this user\)$/,
  },
  {
    name: "accepts, never sends its handshake byte",
    start: raw("mute"),
    reason: /^handshake with \S+: no answer from the Flux broker within \d+ ms$/,
    waits: "connect",
  },
  {
    name: "hangs up before its handshake byte",
    start: raw("hup"),
    reason: /^cannot reach the Flux broker at \S+: the broker closed the connection before its handshake byte( \(ECONNRESET\))?$/,
  },
  {
    name: "accepts, then silent",
    start: broker({ ...NODE, silent: TOPICS }),
    reason: /^[a-z.-]+: no answer from the Flux broker within \d+ ms$/,
    waits: "rpc",
  },
  {
    name: "closes mid-reply",
    start: async (dir) => {
      // Half of the first reply, then the hang-up (the replies after it are never written).
      let done = false;
      const b = startBroker(sock(dir, "b"), NODE, undefined, (_t, _r, reply) =>
        done ? { pieces: [] } : ((done = true), { pieces: [reply.subarray(0, reply.length >> 1)], hangup: true }),
      );
      return { uri: `local://${b.path}`, stop: () => b.stop() };
    },
    reason: /^cannot reach the Flux broker at \S+: the broker closed the connection$/,
  },
  {
    name: "resets the connection (ECONNRESET)",
    start: raw("reset"),
    reason: /^cannot reach the Flux broker at \S+: the broker reset the connection \(ECONNRESET\)$/,
  },
  {
    name: "garbled reply",
    start: broker({ ...NODE, garbage: TOPICS }),
    reason: /^truncated frame$/,
  },
  {
    name: "truncated reply (shorter than its frames)",
    start: broker(
      NODE,
      each((b) => {
        be32(b, 4, b.length - 8 - 10);
        return { pieces: [b.subarray(0, b.length - 10)] };
      }),
    ),
    reason: /^(truncated frame|missing or bad PROTO frame)$/,
  },
  {
    name: "oversized reply (9 MiB announced)",
    start: broker(
      NODE,
      each((b) => {
        be32(b, 4, 9 << 20);
        return { pieces: [b] };
      }),
    ),
    reason: /^broker message of 9437184 bytes is larger than the 8388608 accepted$/,
  },
  {
    name: "reply nested 100,000 deep",
    start: broker({ ...NODE, rawText: Object.fromEntries(TOPICS.map((t) => [t, "[".repeat(100_000) + "]".repeat(100_000)])) }),
    reason: /^[a-z.-]+: unexpected reply from the Flux broker: invalid JSON: nested deeper than 64 levels at offset 64$/,
  },
  {
    name: "an error reply (EPROTO)",
    start: broker({ ...NODE, errors: Object.fromEntries(TOPICS.map((t) => [t, { errnum: 71, text: "invalid payload" }])) }),
    reason: /^[a-z.-]+: invalid payload \(EPROTO\)$/,
  },
  {
    // (a reply carrying the tag of another request in flight is the fuzzer's "wrong-matchtag")
    name: "a reply for a matchtag not in flight",
    start: broker(
      NODE,
      each((b) => {
        be32(b, b.length - 4, new DataView(b.buffer).getUint32(b.length - 4) ^ 0x40000000);
        return { pieces: [b] };
      }),
    ),
    reason: /^[a-z.-]+: no answer from the Flux broker within \d+ ms$/,
    waits: "rpc",
  },
];

type Path = "account" | "session-open" | "prolog" | "housekeeping" | "pam account" | "pam session";
const PATHS: Path[] = ["account", "session-open", "prolog", "housekeeping", "pam account", "pam session"];

/** The deadline a path must end within (its budget), in ms, for a fault that waits `waits`. */
function deadlineMs(p: Path, waits: BrokerFault["waits"]): number {
  const hook = p === "prolog" || p === "housekeeping";
  if (!hook) return BUDGET_S * 1000;
  return (waits === "rpc" ? HOOK_BROKER_S : HOOK_CONNECT_S) * 1000;
}

function outcome(p: Path): string {
  if (p === "pam account") return "PAM_PERM_DENIED, the reason in syslog";
  if (p === "pam session") return "PAM_SYSTEM_ERR, the reason in syslog";
  if (p === "account" || p === "session-open") return "denied, naming the reason";
  return "fails naming the reason; marker unchanged";
}

/** Every broker fault against every path. `env.bus` is a stand-in systemd no case here may write to. */
export function brokerCases(): MatrixCase[] {
  const out: MatrixCase[] = [];
  for (const f of BROKER_FAULTS)
    for (const p of PATHS)
      out.push({
        group: "broker fault",
        fault: f.name,
        path: p,
        expect: outcome(p),
        slow: f.waits !== undefined,
        deadlineMs: deadlineMs(p, f.waits),
        async run(env) {
          const caseDir = env.caseDir();
          const fault = await f.start(caseDir);
          const lockDir = p === "prolog" ? join(caseDir, "locks") : lockDirWithMarker(caseDir, "locks");
          const marker = join(lockDir, `uid.${UID}.active`);
          try {
            switch (p) {
              case "account": {
                const o = await run(accountArgv(fault.uri), { PAM_USER: "daemon", PAM_SERVICE: "sshd" });
                return { ms: o.ms, check: () => deniedByAccount(f.reason)(o) };
              }
              case "session-open": {
                const o = await run(sessionArgv(fault.uri, lockDir), sessionEnv(env.bus));
                return { ms: o.ms, check: () => deniedBySession(f.reason)(o) };
              }
              case "prolog":
              case "housekeeping": {
                const o = await run([BINARY, p], hookEnv(fault.uri, lockDir, env.bus));
                return {
                  ms: o.ms,
                  check() {
                    hookFailed(p, f.reason)(o);
                    // prolog: no marker made; housekeeping: the marker of the running jobs stays
                    expectEq({ marker: existsSync(marker) }, { marker: p === "housekeeping" });
                  },
                };
              }
              case "pam account": {
                const r = await pamAccount(caseDir, "a", env.helper, `uri=${fault.uri} timeout=${BUDGET_S}s`);
                return { ms: r.ms, check: () => pamDenied(f.reason)(r) };
              }
              case "pam session": {
                const r = await pamSession(caseDir, "s", env.helper, env.good, `uri=${fault.uri} lock-dir=${lockDir}`);
                return { ms: r.ms, check: () => pamSessionRefused(f.reason)(r) };
              }
            }
          } finally {
            await fault.stop();
          }
        },
      });
  return out;
}
