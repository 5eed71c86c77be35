// pam_flux.so session management through real libpam. The account part runs the real flux-pam
// against the test broker (so the owner mark is the real one). The session helper is a stand-in
// script where the tests pin the wrapper's mapping, and the real flux-pam session-open where no
// systemd is needed (manage-user-slice off, a lock dir that refuses); scopes themselves are
// tested with real systemd in test/systemd/.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../e2e/harness";
import { IGNORED, MODULE, SERVICE, codes, ensureBuilt, ignoreVisible, pamConfDir, realHelper, runDriver, setuidDriver, standIn } from "./harness";

const USER = "daemon";
const UID = 1;
const DENIED = "PAM_ERROR_MSG Access denied: user daemon has no active jobs on this node";
const JOB: Scenario = { rank: 0, jobs: [{ id: "1227286904832", userid: UID, ranks: "0" }] };

const dir = tempDir("flux-pam-session-");
let broker: BrokerProcess;
let helper: string;
let pam: ReturnType<typeof pamConfDir>;
let files = 0;

beforeAll(async () => {
  await ensureBuilt();
  broker = await startBrokerProcess(JOB, dir.path);
  helper = realHelper(dir.path);
  pam = pamConfDir(dir.path);
});
afterAll(async () => {
  await broker?.stop();
  dir.remove();
});

/** The account line that admits daemon as a job owner through the real flux-pam. */
const accountLine = () => `account required ${MODULE} helper=${helper} uri=${broker.uri}`;

/** A stand-in session helper that records its argv and environment, then runs `body`. */
function recorder(body: string): { path: string; argv(): string; env(): string[]; ran(): boolean } {
  const out = join(dir.path, `rec-${++files}`);
  const path = standIn(dir.path, `echo "$*" > ${out}.argv; tr '\\0' '\\n' < /proc/$$/environ | sort > ${out}.env\n${body}`);
  return {
    path,
    argv: () => readFileSync(`${out}.argv`, "utf8").trim(),
    env: () => readFileSync(`${out}.env`, "utf8").trim().split("\n"),
    ran: () => existsSync(`${out}.argv`),
  };
}

async function login(sessionLines: string[], o: { ruid?: number; setuidCopy?: string; env?: Record<string, string>; actions?: ("acct" | "open" | "close")[] } = {}) {
  pam.service(SERVICE, [accountLine(), ...sessionLines]);
  return runDriver({ confdir: pam.path, actions: o.actions ?? ["acct", "open"], user: USER, ruid: o.ruid, setuidCopy: o.setuidCopy, env: o.env });
}

describe("pam_flux.so session: when the helper is not run", () => {
  test("the systemd-user service gets PAM_SUCCESS without running the helper", async () => {
    const rec = recorder("echo 'result session-error' >&3; exit 1");
    pam.service("systemd-user", [`session required ${MODULE} helper=${rec.path}`]);
    const r = await runDriver({ confdir: pam.path, service: "systemd-user", actions: ["open"], user: USER });
    expect(codes(r)).toEqual(["open PAM_SUCCESS"]);
    expect(rec.ran()).toBe(false);
  });

  test("a login that pam_flux did not admit as owner (another module did) gets PAM_IGNORE without running the helper", async () => {
    const rec = recorder("echo 'result session-error' >&3; exit 1");
    pam.service(SERVICE, ["account required pam_permit.so", ...ignoreVisible("session", `helper=${rec.path}`)]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct", "open"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(r.conv).toEqual([IGNORED]);
    expect(rec.ran()).toBe(false);
  });

  test("close_session is PAM_SUCCESS and runs nothing", async () => {
    const rec = recorder("echo 'result session-error' >&3; exit 1");
    const r = await login([`session required ${MODULE} helper=${rec.path}`], { actions: ["close"] });
    expect(codes(r)).toEqual(["close PAM_SUCCESS"]);
    expect(rec.ran()).toBe(false);
  });
});

describe("pam_flux.so session: what the helper gets", () => {
  test("argv is session-open [scope-prefix=P] lock-dir=D [debug] uri=URI timeout=; PAM_TYPE is open_session; FLUX_PAM_PID is the PAM process", async () => {
    const rec = recorder("echo 'result success' >&3");
    const r = await login([`session required ${MODULE} helper=${rec.path} scope-prefix=ssh lock-dir=/run/x debug uri=${broker.uri} timeout=20s`]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(rec.argv()).toBe(`session-open scope-prefix=ssh lock-dir=/run/x debug uri=${broker.uri} timeout=19000ms`);
    expect(rec.env()).toEqual([
      `FLUX_PAM_PID=${r.pid}`,
      "FLUX_PAM_REPLY_FD=3",
      "PAM_SERVICE=flux-pam-test",
      "PAM_TYPE=open_session",
      "PAM_USER=daemon",
      "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
  });

  test("without options: lock-dir=/run/flux-pam and the default broker", async () => {
    const rec = recorder("echo 'result success' >&3");
    await login([`session required ${MODULE} helper=${rec.path}`]);
    expect(rec.argv()).toBe("session-open lock-dir=/run/flux-pam uri=local:///run/flux/local timeout=9000ms");
  });

  test("a root caller's FLUX_PAM_LOCK_DIR and FLUX_URI are passed on", async () => {
    const rec = recorder("echo 'result success' >&3");
    pam.service(SERVICE, [`account required ${MODULE} helper=${helper}`, `session required ${MODULE} helper=${rec.path}`]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct", "open"], user: USER, env: { FLUX_URI: broker.uri, FLUX_PAM_LOCK_DIR: "/run/other" } });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(rec.argv()).toBe(`session-open lock-dir=/run/other uri=${broker.uri} timeout=9000ms`);
  });

  test("under su/sudo (real uid != 0) the caller's FLUX_PAM_LOCK_DIR and FLUX_URI are not", async () => {
    const rec = recorder("echo 'result success' >&3");
    const r = await login([`session required ${MODULE} helper=${rec.path}`], { ruid: 65534, env: { FLUX_URI: "local:///fake", FLUX_PAM_LOCK_DIR: "/tmp/fake" } });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(rec.argv()).toBe("session-open lock-dir=/run/flux-pam uri=local:///run/flux/local timeout=9000ms");
  });

  test("nor under a setuid caller that raised its real uid to 0 first, as sudo does", async () => {
    const rec = recorder("echo 'result success' >&3");
    const r = await login([`session required ${MODULE} helper=${rec.path}`], {
      setuidCopy: setuidDriver(dir.path),
      env: { FLUX_URI: "local:///fake", FLUX_PAM_LOCK_DIR: "/tmp/fake" },
    });
    expect(r.stderr).toBe("");
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(rec.argv()).toBe("session-open lock-dir=/run/flux-pam uri=local:///run/flux/local timeout=9000ms");
  });
});

describe("pam_flux.so session: how the reply maps", () => {
  test("result success: PAM_SUCCESS, and only XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS enter the PAM environment", async () => {
    const rec = recorder(`printf 'env XDG_RUNTIME_DIR=/run/user/1\\nenv DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1/bus\\nenv LD_PRELOAD=/tmp/evil.so\\nenv PATH=/tmp\\nresult success\\n' >&3`);
    const r = await login([`session required ${MODULE} helper=${rec.path}`]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(r.env).toEqual({ XDG_RUNTIME_DIR: "/run/user/1", DBUS_SESSION_BUS_ADDRESS: "unix:path=/run/user/1/bus" });
    expect(r.syslog).toEqual([
      'LOG_WARNING pam_flux(flux-pam-test:session): helper reply: "env LD_PRELOAD=/tmp/evil.so" not accepted',
      'LOG_WARNING pam_flux(flux-pam-test:session): helper reply: "env PATH=/tmp" not accepted',
    ]);
    expect(r.conv).toEqual([]);
  });

  test("result ignore: PAM_IGNORE", async () => {
    const rec = recorder("echo 'result ignore' >&3");
    const r = await login(ignoreVisible("session", `helper=${rec.path}`));
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(r.conv).toEqual([IGNORED]);
  });

  test("result session-error with the helper's message: PAM_SYSTEM_ERR, and only that message", async () => {
    const rec = recorder("printf 'log err no marker\\nsay error Access denied: user daemon has no active jobs on this node\\nresult session-error\\n' >&3; exit 1");
    const r = await login([`session required ${MODULE} helper=${rec.path}`]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
    expect(r.conv).toEqual([DENIED]);
    expect(r.syslog).toEqual(["LOG_ERR pam_flux(flux-pam-test:session): no marker"]);
  });

  test("result session-error without a message: PAM_SYSTEM_ERR with the denial message", async () => {
    const rec = recorder("echo 'result session-error' >&3; exit 1");
    const r = await login([`session required ${MODULE} helper=${rec.path}`]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
    expect(r.conv).toEqual([DENIED]);
  });

  test("env lines are not applied when the session fails", async () => {
    const rec = recorder("printf 'env XDG_RUNTIME_DIR=/run/user/1\\nresult session-error\\n' >&3; exit 1");
    // optional + pam_permit: the stack succeeds, so the driver shows the PAM environment
    const r = await login([`session optional ${MODULE} helper=${rec.path}`, "session required pam_permit.so"]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(r.conv).toEqual([DENIED]);
    expect(r.env).toEqual({});
  });

  const failing: [string, string][] = [
    ["result success with a non-zero exit status", "echo 'result success' >&3; exit 1"],
    ["result ignore with a non-zero exit status", "echo 'result ignore' >&3; exit 3"],
    ["no result", "exit 0"],
    ["an account result", "echo 'result owner' >&3"],
    ["a helper that hangs past the deadline", "echo 'result success' >&3; exec sleep 1000"],
  ];
  for (const [name, body] of failing)
    test(`${name}: PAM_SYSTEM_ERR`, async () => {
      const rec = recorder(body);
      const r = await login([`session required ${MODULE} helper=${rec.path} timeout=1s`]);
      expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
      expect(r.conv).toEqual([DENIED]);
    });

  test("no user name, but a mark (PAM_USER cleared since the account part): PAM_SYSTEM_ERR, the helper not run", async () => {
    const rec = recorder("echo 'result success' >&3");
    pam.service(SERVICE, [accountLine(), `session required ${MODULE} helper=${rec.path}`]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct", "user=", "open"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
    expect(rec.ran()).toBe(false);
  });

  test("a session helper that is not root-owned is not run: PAM_SYSTEM_ERR", async () => {
    const rec = recorder("echo 'result success' >&3");
    chownSync(rec.path, 65534, 0);
    const r = await login([`session required ${MODULE} helper=${rec.path}`]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
    expect(rec.ran()).toBe(false);
  });
});

describe("pam_flux.so session with the real flux-pam session-open", () => {
  const session = () => [`session required ${MODULE} helper=${helper} uri=${broker.uri} lock-dir=${lockDir()}`];
  const lockDir = () => join(dir.path, "lock");

  beforeAll(() => {
    mkdirSync(lockDir(), { mode: 0o700 });
    chmodSync(lockDir(), 0o700);
  });

  test("pam.manage-user-slice off: PAM_SUCCESS, no scope, nothing in the PAM environment", async () => {
    broker.setScenario({ ...JOB, config: { pam: { "manage-user-slice": false } } });
    const r = await login(session());
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(r.env).toEqual({});
    expect(r.conv).toEqual([]);
  });

  test("pam.manage-user-slice on and no marker (no prolog ran): PAM_SYSTEM_ERR, the denial shown once", async () => {
    broker.setScenario({ ...JOB, config: { pam: { "manage-user-slice": true } } });
    try {
      const r = await login(session());
      expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
      expect(r.conv).toEqual([DENIED]);
      expect(r.syslog).toEqual([
        "LOG_ERR pam_flux(flux-pam-test:session): session denied for user daemon: no active marker: containment is not set up (no prolog ran, or the last job ended)",
      ]);
    } finally {
      broker.setScenario(JOB);
    }
  });

  test("a group/other-writable lock dir: PAM_SYSTEM_ERR, and the log says so", async () => {
    broker.setScenario({ ...JOB, config: { pam: { "manage-user-slice": true } } });
    chmodSync(lockDir(), 0o777);
    try {
      const r = await login(session());
      expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
      expect(r.conv).toEqual([DENIED]);
      expect(r.syslog).toHaveLength(1);
      expect(r.syslog[0]).toContain("group/other writable");
    } finally {
      chmodSync(lockDir(), 0o700);
      broker.setScenario(JOB);
    }
  });
});
