// flux-pam session-open run straight, as pam_exec runs it: which system bus it trusts.
// Scopes themselves are tested on real systemd in test/systemd/.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, UnixSocketListener } from "bun";
import { BINARY, type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

const UID = 1; // daemon
const DEFAULT_BUS = "/run/dbus/system_bus_socket";

const dir = tempDir();
const lockDir = join(dir.path, "locks");
let broker: BrokerProcess;
let fakeBus: UnixSocketListener<undefined>;
let silentBus: UnixSocketListener<undefined>;
let busConnections = 0;

beforeAll(async () => {
  // Everything a session needs up to the bus: slices managed, the lock dir, the prolog's marker.
  broker = await startBrokerProcess({ config: { pam: { "manage-user-slice": true } } }, dir.path);
  mkdirSync(lockDir, { mode: 0o700 });
  writeFileSync(join(lockDir, `uid.${UID}.active`), "", { mode: 0o600 });
  fakeBus = Bun.listen<undefined>({
    unix: join(dir.path, "fake-bus.sock"),
    socket: {
      open(s: Socket<undefined>) {
        busConnections++;
        s.end();
      },
      data() {},
    },
  });
  // Accepts, then never says a word (a wedged dbus-daemon).
  silentBus = Bun.listen<undefined>({ unix: join(dir.path, "silent-bus.sock"), socket: { data() {} } });
});
afterAll(async () => {
  fakeBus?.stop(true);
  silentBus?.stop(true);
  await broker?.stop();
  dir.remove();
});

/** session-open for daemon with DBUS_SYSTEM_BUS_ADDRESS on a bus in `dir`, as real uid `ruid` (effective uid 0). */
async function sessionOpen(ruid: number, bus = "fake-bus.sock", timeout = "2s") {
  busConnections = 0;
  const args = ["session-open", `uri=${broker.uri}`, `lock-dir=${lockDir}`, `timeout=${timeout}`];
  const env = { PAM_USER: "daemon", FLUX_PAM_PID: String(process.pid), DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(dir.path, bus)}` };
  return ruid === 0 ? runBinary(args, env) : runBinary([`--ruid=${ruid}`, "--", BINARY, ...args], env, "/usr/bin/setpriv");
}

describe("flux-pam session-open: the system bus", () => {
  test("a root caller's DBUS_SYSTEM_BUS_ADDRESS is followed", async () => {
    const r = await sessionOpen(0);
    expect(r.code).toBe(1);
    expect(busConnections).toBe(1);
  });

  // With a system bus on this host the binary would go on to ask the real systemd for a scope.
  test.skipIf(existsSync(DEFAULT_BUS))(
    "a caller whose real uid is not 0 (su, under pam_exec) gets the system bus, not DBUS_SYSTEM_BUS_ADDRESS",
    async () => {
      const r = await sessionOpen(65534);
      expect(r.code).toBe(1);
      expect(busConnections).toBe(0);
      expect(r.stderr).toContain(DEFAULT_BUS);
    },
  );

  test("a bus that never answers fails the session within its timeout=, with the reason", async () => {
    // pam_flux.so kills the helper at its own deadline, just after timeout=: a later reason is never logged.
    const t0 = performance.now();
    const r = await sessionOpen(0, "silent-bus.sock", "1s");
    const ms = performance.now() - t0;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("silent-bus.sock");
    expect(ms).toBeLessThan(2500);
  });
});
