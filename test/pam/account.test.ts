// pam_flux.so account management through real libpam, running the compiled flux-pam against the test broker.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../e2e/harness";
import { formatF58, jobId } from "../../src/flux/jobid";
import { IGNORED, MODULE, SERVICE, codes, ensureBuilt, ignoreVisible, pamConfDir, realHelper, runDriver, setuidDriver, standIn } from "./harness";

// Real users of this machine's NSS, as in test/e2e/account.test.ts: daemon (1) runs jobs,
// sys (3) plays the instance owner whose multi-user instance admits guests.
const USER = "daemon";
const UID = 1;
const OWNER = 3;
const DENIED = "PAM_ERROR_MSG Access denied: user daemon has no active jobs on this node";
const JOB_ID = "1227286904832";
const JOB: Scenario = { rank: 0, jobs: [{ id: JOB_ID, userid: UID, ranks: "0" }] };

const dir = tempDir("flux-pam-pam-");
let broker: BrokerProcess;
let child: BrokerProcess;
let helper: string;
let pam: ReturnType<typeof pamConfDir>;

beforeAll(async () => {
  await ensureBuilt();
  broker = await startBrokerProcess(JOB, dir.path);
  child = await startBrokerProcess({ config: { access: { "allow-guest-user": true } } }, dir.path, "child");
  helper = realHelper(dir.path);
  pam = pamConfDir(dir.path);
});
afterAll(async () => {
  await broker?.stop();
  await child?.stop();
  dir.remove();
});

/** pam_acct_mgmt with `account required pam_flux.so helper=... OPTIONS`. */
async function account(options: string[], o: { user?: string; ruid?: number; setuidCopy?: string; env?: Record<string, string>; silent?: boolean } = {}) {
  pam.service(SERVICE, [`account required ${MODULE} helper=${helper} ${options.join(" ")}`]);
  return runDriver({ confdir: pam.path, actions: ["acct"], user: o.user ?? USER, ruid: o.ruid, setuidCopy: o.setuidCopy, env: o.env, silent: o.silent });
}

describe("pam_flux.so account: the decision of flux-pam", () => {
  test("the owner of a running job on this rank gets PAM_SUCCESS and sees nothing", async () => {
    broker.setScenario(JOB);
    const r = await account([`uri=${broker.uri}`]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(r.conv).toEqual([]);
  });

  test("with debug, the grant is logged", async () => {
    broker.setScenario(JOB);
    const r = await account([`uri=${broker.uri}`, "debug"]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    expect(r.syslog).toContain(`LOG_DEBUG pam_flux(flux-pam-test:account): access granted for user daemon (uid=1) as job owner: ${formatF58(jobId(BigInt(JOB_ID)))}`);
  });

  test("a user without a job gets PAM_PERM_DENIED, the exact message as PAM_ERROR_MSG, and a log line", async () => {
    broker.setScenario({ rank: 0 });
    const r = await account([`uri=${broker.uri}`]);
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED]);
    expect(r.syslog).toEqual(["LOG_NOTICE pam_flux(flux-pam-test:account): access denied for user daemon (uid=1)"]);
  });

  test("the log goes to syslog at facility authpriv (a line at any other facility reads differently)", async () => {
    broker.setScenario({ rank: 0 });
    pam.service(SERVICE, [`account required ${MODULE} helper=${helper} uri=${broker.uri}`]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: USER, facilityControl: true });
    // The control, logged by the driver at LOG_USER (1), shows the facility is read, not dropped.
    expect(r.syslog).toEqual(["FAC=1 LOG_NOTICE facility control", "LOG_NOTICE pam_flux(flux-pam-test:account): access denied for user daemon (uid=1)"]);
  });

  test("PAM_SILENT keeps the denial off the conversation, not out of the log", async () => {
    broker.setScenario({ rank: 0 });
    const r = await account([`uri=${broker.uri}`], { silent: true });
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([]);
    expect(r.syslog).toEqual(["LOG_NOTICE pam_flux(flux-pam-test:account): access denied for user daemon (uid=1)"]);
  });

  test("a user unknown to NSS gets PAM_USER_UNKNOWN and no job message", async () => {
    broker.setScenario(JOB);
    const r = await account([`uri=${broker.uri}`], { user: "no-such-user-x" });
    expect(codes(r)).toEqual(["acct PAM_USER_UNKNOWN"]);
    expect(r.conv).toEqual([]);
  });

  test("an unreachable broker denies, with the message", async () => {
    const r = await account([`uri=local://${join(dir.path, "absent.sock")}`]);
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED]);
  });

  test("a broker that never answers denies once the timeout is spent", async () => {
    broker.setScenario({ ...JOB, silent: ["job-list.list"] });
    const r = await account([`uri=${broker.uri}`, "timeout=1s"]);
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED]);
  });
});

describe("pam_flux.so account: which broker", () => {
  test("the module option uri= is used, whatever FLUX_URI says", async () => {
    broker.setScenario(JOB);
    const r = await account([`uri=${broker.uri}`], { env: { FLUX_URI: `local://${join(dir.path, "absent.sock")}` } });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
  });

  test("without uri=, a caller with real uid 0 may name the broker in FLUX_URI", async () => {
    broker.setScenario(JOB);
    const r = await account([], { env: { FLUX_URI: broker.uri } });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
  });

  test("a caller with real uid != 0 (su, sudo) cannot: its FLUX_URI naming a broker that claims a job is ignored", async () => {
    broker.setScenario(JOB);
    const r = await account([], { ruid: 65534, env: { FLUX_URI: broker.uri } });
    expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
    expect(r.conv).toEqual([DENIED]);
  });

  describe("a setuid caller that raised its real uid to 0 first, as sudo does, keeping the user's environment", () => {
    let copy: string;
    beforeAll(() => {
      copy = setuidDriver(dir.path);
    });

    test("cannot name the broker in FLUX_URI: the one it names claims a job, and is not asked", async () => {
      broker.setScenario(JOB);
      const r = await account([], { setuidCopy: copy, env: { FLUX_URI: broker.uri } });
      expect(codes(r)).toEqual(["acct PAM_PERM_DENIED"]);
      expect(r.conv).toEqual([DENIED]);
    });

    test("the control: the same caller is admitted through uri=", async () => {
      broker.setScenario(JOB);
      const r = await account([`uri=${broker.uri}`], { setuidCopy: copy, env: { FLUX_URI: "local:///nonexistent.sock" } });
      expect(r.stderr).toBe("");
      expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
    });
  });
});

describe("pam_flux.so account: owners and guests", () => {
  const instance = { id: "99", userid: OWNER, ranks: "0-3", uri: "" };

  test("a guest of a multi-user instance is admitted with allow-guest-user", async () => {
    broker.setScenario({ rank: 0, owner: OWNER, jobs: [{ ...instance, uri: `ssh://node0${child.socket}` }] });
    const r = await account([`uri=${broker.uri}`, "allow-guest-user"]);
    expect(codes(r)).toEqual(["acct PAM_SUCCESS"]);
  });

  test("only an owner admission marks the handle: the session part ignores a guest", async () => {
    broker.setScenario({ rank: 0, owner: OWNER, jobs: [{ ...instance, uri: `ssh://node0${child.socket}` }] });
    // the session helper would fail the session if it ran
    const session = standIn(dir.path, "echo 'result session-error' >&3; exit 1");
    pam.service(SERVICE, [
      `account required ${MODULE} helper=${helper} uri=${broker.uri} allow-guest-user`,
      ...ignoreVisible("session", `helper=${session} uri=${broker.uri}`),
    ]);
    const guest = await runDriver({ confdir: pam.path, actions: ["acct", "open"], user: USER });
    expect(codes(guest)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(guest.conv).toEqual([IGNORED]);

    broker.setScenario(JOB);
    const owner = await runDriver({ confdir: pam.path, actions: ["acct", "open"], user: USER });
    expect(codes(owner)).toEqual(["acct PAM_SUCCESS", "open PAM_SYSTEM_ERR"]);
  });

  test("a later denial clears an earlier owner mark on the same handle", async () => {
    const session = standIn(dir.path, "echo 'result success' >&3");
    const flip = standIn(dir.path, `if [ -e ${dir.path}/admitted-once ]; then echo 'result deny' >&3; exit 1; fi
touch ${dir.path}/admitted-once; echo 'result owner' >&3`);
    pam.service(SERVICE, [`account required ${MODULE} helper=${flip}`, ...ignoreVisible("session", `helper=${session}`)]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct", "acct", "open"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "acct PAM_PERM_DENIED", "open PAM_SUCCESS"]);
    expect(r.conv).toEqual([DENIED, IGNORED]);
  });

  test("a later account call that ends before its helper runs (no user name) clears the mark too", async () => {
    const session = standIn(dir.path, "echo 'result success' >&3");
    const admits = standIn(dir.path, "echo 'result owner' >&3");
    pam.service(SERVICE, [`account required ${MODULE} helper=${admits}`, ...ignoreVisible("session", `helper=${session}`)]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct", "user=", "acct", `user=${USER}`, "open"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "acct PAM_USER_UNKNOWN", "open PAM_SUCCESS"]);
    expect(r.conv).toEqual([IGNORED]);
  });

  test("the session part opens only for the user the account part admitted: PAM_USER changed in between (as sudo does) is ignored", async () => {
    const ran = join(dir.path, "session-ran");
    const session = standIn(dir.path, `touch ${ran}; echo 'result success' >&3`);
    const admits = standIn(dir.path, "echo 'result owner' >&3");
    pam.service(SERVICE, [`account required ${MODULE} helper=${admits}`, ...ignoreVisible("session", `helper=${session}`)]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct", "user=root", "open"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(r.conv).toEqual([IGNORED]);
    expect(r.syslog).toContain(`LOG_NOTICE pam_flux(${SERVICE}:session): user root was not admitted by pam_flux (the account part admitted ${USER} as a job owner): ignored`);
    expect(await Bun.file(ran).exists()).toBe(false);
    // the control: the same stack and calls without the change of user run the session part
    const same = await runDriver({ confdir: pam.path, actions: ["acct", "open"], user: USER });
    expect(codes(same)).toEqual(["acct PAM_SUCCESS", "open PAM_SUCCESS"]);
    expect(same.conv).toEqual([]);
    expect(await Bun.file(ran).exists()).toBe(true);
  });
});

describe("pam_flux.so account: configuration", () => {
  test("an unknown option is PAM_SYSTEM_ERR, logged, and the helper is not run", async () => {
    const ran = join(dir.path, "ran");
    const spy = standIn(dir.path, `touch ${ran}; echo 'result owner' >&3`);
    pam.service(SERVICE, [`account required ${MODULE} helper=${spy} allow-everyone`]);
    const r = await runDriver({ confdir: pam.path, actions: ["acct"], user: USER });
    expect(codes(r)).toEqual(["acct PAM_SYSTEM_ERR"]);
    expect(r.syslog).toEqual(["LOG_ERR pam_flux(flux-pam-test:account): unknown or malformed option: allow-everyone"]);
    expect(await Bun.file(ran).exists()).toBe(false);
  });

  for (const bad of ["helper=relative/flux-pam", "timeout=soon", "timeout=0", "timeout=-1s", "uri=", "lock-dir=run/x"]) {
    test(`a malformed option (${bad}) is PAM_SYSTEM_ERR`, async () => {
      const r = await account([bad]);
      expect(codes(r)).toEqual(["acct PAM_SYSTEM_ERR"]);
    });
  }

  test("pam_authenticate is not provided: a stack that names pam_flux.so under auth fails", async () => {
    pam.service(SERVICE, [`auth required ${MODULE} helper=${helper}`]);
    const r = await runDriver({ confdir: pam.path, actions: ["auth"], user: USER });
    expect(codes(r)).toEqual(["auth PAM_MODULE_UNKNOWN"]);
    expect(r.syslog).toContain("LOG_ERR PAM unable to resolve symbol: pam_sm_authenticate");
  });
});
