// flux-pam session-open run straight, as pam_exec runs it: which system bus it trusts.
// Scopes themselves are tested on real systemd in test/systemd/.
//
// Each run is in a private mount namespace (unshare --mount) with a directory of the test's own
// bound over /run/dbus: /run/dbus/system_bus_socket is then a socket of this test, so the default
// bus can be told apart from DBUS_SYSTEM_BUS_ADDRESS's on any host, with or without a system bus,
// and the host's real one is never reached.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, UnixSocketListener } from "bun";
import { BINARY, type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

const UID = 1; // daemon
const DEFAULT_BUS = "/run/dbus/system_bus_socket";
const UNSHARE = "/usr/bin/unshare";
const SETPRIV = "/usr/bin/setpriv";

const skip =
  process.getuid?.() !== 0
    ? "needs root (a mount namespace over /run/dbus, setpriv --ruid)"
    : !existsSync(UNSHARE) || !existsSync(SETPRIV)
      ? `needs ${UNSHARE} and ${SETPRIV} (util-linux)`
      : undefined;
if (skip) console.warn(`SKIPPED: session-open's choice of system bus: ${skip}`);

const dir = tempDir();
const lockDir = join(dir.path, "locks");
/** bound over /run/dbus inside each run's mount namespace */
const runDbus = join(dir.path, "run-dbus");
let broker: BrokerProcess;
const listeners: UnixSocketListener<undefined>[] = [];
/** connections each socket accepted during the last run, by file name */
const connections = { "fake-bus.sock": 0, system_bus_socket: 0 };

/** what the client sent the default bus first, during the last run */
let defaultBusHeard = "";

/** A bus that accepts and hangs up at once, counting its connections. */
function hangUpBus(path: string, name: keyof typeof connections): UnixSocketListener<undefined> {
  return Bun.listen<undefined>({
    unix: path,
    socket: {
      open(s: Socket<undefined>) {
        connections[name]++;
        s.end();
      },
      data() {},
    },
  });
}

/** A bus that hears the client's first bytes (its AUTH), then hangs up, counting its connections. */
function listeningBus(path: string, name: keyof typeof connections): UnixSocketListener<undefined> {
  return Bun.listen<undefined>({
    unix: path,
    socket: {
      open() {
        connections[name]++;
      },
      data(s: Socket<undefined>, d: Buffer) {
        defaultBusHeard += d.toString("latin1");
        s.end();
      },
    },
  });
}

beforeAll(async () => {
  // Everything a session needs up to the bus: slices managed, the lock dir, the prolog's marker.
  broker = await startBrokerProcess({ config: { pam: { "manage-user-slice": true } } }, dir.path);
  mkdirSync(lockDir, { mode: 0o700 });
  writeFileSync(join(lockDir, `uid.${UID}.active`), "", { mode: 0o600 });
  mkdirSync(runDbus, { mode: 0o755 });
  listeners.push(hangUpBus(join(dir.path, "fake-bus.sock"), "fake-bus.sock"));
  listeners.push(listeningBus(join(runDbus, "system_bus_socket"), "system_bus_socket"));
  // Accepts, then never says a word (a wedged dbus-daemon).
  listeners.push(Bun.listen<undefined>({ unix: join(dir.path, "silent-bus.sock"), socket: { data() {} } }));
});
afterAll(async () => {
  for (const l of listeners) l.stop(true);
  await broker?.stop();
  dir.remove();
});

/**
 * session-open for daemon with DBUS_SYSTEM_BUS_ADDRESS on a bus in `dir`, as real uid `ruid`
 * (effective uid 0), with the test's directory over /run/dbus. A host without /run/dbus gets a
 * tmpfs over /run first (in the namespace only) to make the mount point.
 */
async function sessionOpen(ruid: number, bus = "fake-bus.sock", timeout = "2s") {
  connections["fake-bus.sock"] = 0;
  connections.system_bus_socket = 0;
  defaultBusHeard = "";
  const args = ["session-open", `uri=${broker.uri}`, `lock-dir=${lockDir}`, `timeout=${timeout}`];
  const env = { PAM_USER: "daemon", FLUX_PAM_PID: String(process.pid), DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(dir.path, bus)}` };
  const caller = ruid === 0 ? [BINARY, ...args] : [SETPRIV, `--ruid=${ruid}`, "--", BINARY, ...args];
  const script = '[ -d /run/dbus ] || { mount -t tmpfs tmpfs /run && mkdir /run/dbus; } && mount --bind "$0" /run/dbus && exec "$@"';
  return runBinary(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, runDbus, ...caller], env, UNSHARE);
}

describe.skipIf(skip !== undefined)("flux-pam session-open: the system bus", () => {
  test("a root caller's DBUS_SYSTEM_BUS_ADDRESS is followed, and /run/dbus's socket left alone", async () => {
    const r = await sessionOpen(0);
    expect(r.code).toBe(1);
    expect(connections).toEqual({ "fake-bus.sock": 1, system_bus_socket: 0 });
    // (what the hang-up looks like from the client, a refused connect or a closed one, is a race)
    expect(r.stderr).toStartWith(`flux-pam session-open: session denied for user daemon: cannot reach the system bus at unix:path=${dir.path}/fake-bus.sock: `);
  });

  test("a caller whose real uid is not 0 (su, under pam_exec) gets the system bus, not DBUS_SYSTEM_BUS_ADDRESS", async () => {
    const r = await sessionOpen(65534);
    expect(r.code).toBe(1);
    expect(connections).toEqual({ "fake-bus.sock": 0, system_bus_socket: 1 });
    expect(r.stderr).toStartWith(`flux-pam session-open: session denied for user daemon: cannot reach the system bus at unix:path=${DEFAULT_BUS}: `);
    // It claims the effective uid (0, as hex digits), the one the kernel shows the bus: a bus
    // refuses a claim of the real uid (65534) from a peer whose credentials say 0. (BEGIN and Hello
    // follow without waiting for the bus's answer: whether they came in the same read is a race.)
    const auth = `\0AUTH EXTERNAL ${Buffer.from("0").toString("hex")}\r\n`;
    expect(defaultBusHeard.slice(0, auth.length)).toBe(auth);
    expect(["", "BEGIN\r\n"]).toContain(defaultBusHeard.slice(auth.length, auth.length + 7));
  });

  test("a bus that never answers fails the session within its timeout=, with the reason", async () => {
    // pam_flux.so kills the helper at its own deadline, just after timeout=: a later reason is never
    // logged. The connect's budget is what is left of timeout=1s (the connect's own default is 5 s);
    // that the connect gives up at its budget is test/systemd/client.test.ts's.
    const r = await sessionOpen(0, "silent-bus.sock", "1s");
    expect(r.code).toBe(1);
    const m = /^flux-pam session-open: session denied for user daemon: connect to unix:path=(.+): no answer from the system bus within (\d+) ms\n$/.exec(r.stderr);
    expect(m?.[1]).toBe(join(dir.path, "silent-bus.sock"));
    expect(Number(m?.[2])).toBeGreaterThan(0);
    expect(Number(m?.[2])).toBeLessThanOrEqual(1000);
  });
});
