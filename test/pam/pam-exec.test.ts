// flux-pam account under Linux-PAM's own pam_exec.so, and both modules under pamtester.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Scenario } from "../broker/scenario";
import { join } from "node:path";
import { BINARY, BUN, type BrokerProcess, ROOT, startBrokerProcess, tempDir } from "../e2e/harness";
import { existsSync } from "node:fs";
import { MODULE, SERVICE, codes, ensureBuilt, hostileCwd, pamConfDir, realHelper, runDriver, runPamtester } from "./harness";

const UID = 1; // daemon
const MESSAGE = "Access denied: user bin has no active jobs on this node";
const JOB: Scenario = { rank: 0, jobs: [{ id: "1227286904832", userid: UID, ranks: "0" }] };

const dir = tempDir("flux-pam-exec-");
let broker: BrokerProcess;
let pam: ReturnType<typeof pamConfDir>;

beforeAll(async () => {
  await ensureBuilt();
  broker = await startBrokerProcess(JOB, dir.path);
  pam = pamConfDir(dir.path);
});
afterAll(async () => {
  await broker?.stop();
  dir.remove();
});

/** The line SPEC.md gives for pam_exec, with the broker URI as an extra word. */
const execLine = () => `account required pam_exec.so quiet stdout ${BINARY} account uri=${broker.uri}`;

describe("flux-pam account under pam_exec.so", () => {
  test("the owner of a running job is admitted: PAM_SUCCESS, nothing shown", async () => {
    pam.service(SERVICE, [execLine()]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: "daemon" });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(r.conv).toEqual([]);
  });

  test("a user without a job is denied (pam_exec's PAM_SYSTEM_ERR) and sees the denial on stdout", async () => {
    pam.service(SERVICE, [execLine()]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: "bin" });
    expect(codes(r)).toEqual(["acct PAM_SYSTEM_ERR"]);
    // pam_exec's stdout option hands stderr to the conversation too, so the log line shows as well
    expect(r.conv).toContain(`PAM_TEXT_INFO ${MESSAGE}`);
    expect(r.syslog).toEqual([`LOG_ERR pam_exec(flux-pam-test:account): ${BINARY} failed: exit code 1`]);
  });
});

describe("a caller's working directory is not the binary's configuration (su from a user's directory)", () => {
  // Bun executables read bunfig.toml (preload scripts) and .env from the working directory
  // unless built without it; pam_exec does not chdir, and under su that directory is the user's.
  test("under pam_exec.so, a bunfig.toml preload there does not run", async () => {
    const cwd = hostileCwd(dir.path);
    pam.service(SERVICE, [execLine()]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: "daemon", cwd: cwd.path, ruid: 65534 });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(existsSync(cwd.ran)).toBe(false);
  });

  test("under pam_flux.so, a bunfig.toml preload there does not run", async () => {
    const cwd = hostileCwd(dir.path);
    pam.service(SERVICE, [`account required ${MODULE} helper=${realHelper(dir.path)} uri=${broker.uri}`]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: "daemon", cwd: cwd.path, ruid: 65534 });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(existsSync(cwd.ran)).toBe(false);
  });
});

describe("the caller's .env and bunfig.toml, with a positive control", () => {
  // The control is the same program built with Bun's default autoloading: it must read both, or
  // the tests above would pass for the wrong reason.
  let control: string;
  beforeAll(async () => {
    control = join(dir.path, "flux-pam-autoload");
    const b = Bun.spawnSync([BUN, "build", "--compile", join(ROOT, "src/cli.ts"), "--outfile", control], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    if (b.exitCode !== 0) throw new Error(`building the control failed: ${b.stderr.toString()}`);
  }, 120_000);

  /** pam_exec without uri=, run by root from `cwd`: the broker comes from FLUX_URI if anything set it. */
  async function rootLogin(binary: string, cwd: string) {
    pam.service(SERVICE, [`account required pam_exec.so quiet stdout ${binary} account`]);
    return runDriver({ confdir: pam.path, actions: ["acct"], user: "daemon", cwd });
  }

  test("the build ignores a .env naming a broker that vouches for the user, and a bunfig.toml preload", async () => {
    const cwd = hostileCwd(join(dir.path, "ours"), broker.uri);
    const r = await rootLogin(BINARY, cwd.path);
    expect(codes(r)).toEqual(["acct PAM_SYSTEM_ERR"]); // denied: no FLUX_URI, and no broker at the default
    expect(existsSync(cwd.ran)).toBe(false);
  });

  test("control: a build with autoloading reads them there, admits the user, and runs the preload", async () => {
    const cwd = hostileCwd(join(dir.path, "control"), broker.uri);
    const r = await rootLogin(control, cwd.path);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(existsSync(cwd.ran)).toBe(true);
  });
});

describe("pamtester, with the test's pam.d bound over /etc/pam.d in a private mount namespace", () => {
  test("pam_exec.so + flux-pam: the job owner passes acct_mgmt", async () => {
    pam.service(SERVICE, [execLine()]);
    const r = await runPamtester(pam.path, SERVICE, "daemon", "acct_mgmt");
    expect(r.stdout).toBe("pamtester: account management done.\n");
    expect(r.code).toBe(0);
  });

  test("pam_flux.so: the job owner passes acct_mgmt, a user without a job fails it and sees the message", async () => {
    pam.service(SERVICE, [`account required ${MODULE} helper=${realHelper(dir.path)} uri=${broker.uri}`]);
    const ok = await runPamtester(pam.path, SERVICE, "daemon", "acct_mgmt");
    expect(ok.stdout).toBe("pamtester: account management done.\n");
    expect(ok.code).toBe(0);

    const denied = await runPamtester(pam.path, SERVICE, "bin", "acct_mgmt");
    expect(denied.stderr).toBe(`${MESSAGE}\npamtester: Permission denied\n`);
    expect(denied.code).toBe(1);
  });
});
