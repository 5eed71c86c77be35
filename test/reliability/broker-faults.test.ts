// The fault matrix, broker faults: every way a broker can fail a command, against account,
// session-open, prolog and housekeeping through the compiled binary, and account and session
// through pam_flux.so and real libpam. Each case asserts the exact outcome (deny, or fail with its
// one-line reason), that nothing was admitted, that no systemd call was made, and that it ended
// within its deadline + 1 s. Rows of test/reliability/README.md.
//
// All cases start at once (those that wait out a deadline only sleep), so the file takes about
// as long as its longest deadline: a hook's 30 s broker budget.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Delivery, type Tamper, startBroker } from "../broker/broker";
import type { Scenario } from "../broker/scenario";
import { startRawPeer, tempDir } from "../e2e/harness";
import { ensureBuilt, realHelper } from "../pam/harness";
import { type FakeSystemd, startFakeSystemd } from "../systemd/fake-systemd";
import {
  BUDGET_S,
  JOB,
  UID,
  accountArgv,
  deniedByAccount,
  deniedBySession,
  hookEnv,
  hookFailed,
  lockDirWithMarker,
  type Outcome,
  pamAccount,
  pamDenied,
  pamSession,
  pamSessionRefused,
  type PamResult,
  pool,
  run,
  sessionArgv,
  sessionEnv,
} from "./harness";
import { BINARY } from "../e2e/harness";

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

const NODE: Scenario = { rank: 0, owner: 64999, config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } }, jobs: [{ id: JOB, userid: UID, cores: "0" }] };

export const BROKER_FAULTS: BrokerFault[] = [
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

const dir = tempDir("flux-pam-faults-");
let fake: FakeSystemd;
let helper: string;
let good: { uri: string; stop(): void };
const results = new Map<string, Promise<{ o: Outcome | PamResult; lockDir?: string; stop(): Promise<void> | void }>>();
const key = (f: BrokerFault, p: Path) => `${f.name} / ${p}`;

/** The deadline a path must end within (its budget), in ms, for a fault that waits `waits`. */
function deadlineMs(p: Path, waits: BrokerFault["waits"]): number {
  const hook = p === "prolog" || p === "housekeeping";
  if (!hook) return BUDGET_S * 1000;
  return (waits === "rpc" ? HOOK_BROKER_S : HOOK_CONNECT_S) * 1000;
}

beforeAll(async () => {
  await ensureBuilt();
  helper = realHelper(dir.path);
  fake = await startFakeSystemd(dir.path);
  const g = startBroker(join(dir.path, "good.sock"), NODE);
  good = { uri: `local://${g.path}`, stop: () => g.stop() };
  const fast = pool(4);
  let k = 0;
  for (const f of BROKER_FAULTS)
    for (const p of PATHS) {
      const caseDir = join(dir.path, `case-${k++}`);
      mkdirSync(caseDir);
      chmodSync(caseDir, 0o755);
      const go = async () => {
        const fault = await f.start(caseDir);
        const lockDir = p === "prolog" ? join(caseDir, "locks") : lockDirWithMarker(caseDir, "locks");
        let o: Outcome | PamResult;
        switch (p) {
          case "account":
            o = await run(accountArgv(fault.uri), { PAM_USER: "daemon", PAM_SERVICE: "sshd" });
            break;
          case "session-open":
            o = await run(sessionArgv(fault.uri, lockDir), sessionEnv(fake.address));
            break;
          case "prolog":
          case "housekeeping":
            o = await run([BINARY, p], hookEnv(fault.uri, lockDir, fake.address));
            break;
          case "pam account":
            o = await pamAccount(caseDir, "a", helper, `uri=${fault.uri} timeout=${BUDGET_S}s`);
            break;
          case "pam session":
            o = await pamSession(caseDir, "s", helper, good.uri, `uri=${fault.uri} lock-dir=${lockDir}`);
            break;
        }
        return { o, lockDir, stop: fault.stop };
      };
      // A case that waits out a deadline only sleeps: it need not hold a slot.
      results.set(key(f, p), f.waits ? go() : fast(go));
    }
  // Settled here so that no rejection goes unhandled while the tests wait their turn.
  for (const r of results.values()) r.catch(() => {});
}, 120_000);

afterAll(async () => {
  for (const r of results.values()) await r.then((x) => x.stop(), () => {});
  good?.stop();
  await fake?.close();
  dir.remove();
});

for (const f of BROKER_FAULTS) {
  describe(`broker fault: ${f.name}`, () => {
    for (const p of PATHS) {
      const outcome = p.startsWith("pam ") ? `${p === "pam account" ? "PAM_PERM_DENIED" : "PAM_SESSION_ERR"} with the reason in syslog` : p === "account" || p === "session-open" ? "denied with the reason" : "fails with the reason, nothing changed";
      test(`${p}: ${outcome}, within its deadline + 1 s`, async () => {
        const { o, lockDir } = await results.get(key(f, p))!;
        switch (p) {
          case "account":
            deniedByAccount(f.reason)(o as Outcome);
            break;
          case "session-open":
            deniedBySession(f.reason)(o as Outcome);
            break;
          case "prolog":
          case "housekeeping":
            hookFailed(p, f.reason)(o as Outcome);
            // prolog: no marker made; housekeeping: the marker of the running jobs stays
            expect(existsSync(join(lockDir!, `uid.${UID}.active`))).toBe(p === "housekeeping");
            break;
          case "pam account":
            pamDenied(f.reason)(o as PamResult);
            break;
          case "pam session":
            pamSessionRefused(f.reason)(o as PamResult);
            break;
        }
        expect(o.ms).toBeLessThan(deadlineMs(p, f.waits) + 1000);
      }, 60_000);
    }
  });
}

test("no broker fault led to a systemd call that changes anything", async () => {
  await Promise.all(results.values());
  const writes = fake.calls.filter((c) => !["GetUser", "LoadUnit", "GetUnit", "Subscribe"].includes(c.member));
  expect(writes.map((c) => c.member)).toEqual([]);
}, 60_000);

test("a positive control: the good broker admits, and a session opens its scope on the stand-in systemd", async () => {
  const lockDir = lockDirWithMarker(dir.path, "control");
  const a = await run(accountArgv(good.uri), { PAM_USER: "daemon", PAM_SERVICE: "sshd" });
  expect([a.code, a.stdout, a.stderr]).toEqual([0, "", ""]);
  const s = await run(sessionArgv(good.uri, lockDir), sessionEnv(fake.address));
  expect([s.code, s.stderr]).toEqual([0, ""]);
  expect(fake.calls.map((c) => c.member)).toContain("StartTransientUnit");
  const pa = await pamAccount(dir.path, "control", helper, `uri=${good.uri}`);
  expect(pa.calls.map((c) => c.name)).toEqual(["PAM_SUCCESS"]);
}, 60_000);
