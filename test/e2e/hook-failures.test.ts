// How a failed prolog or housekeeping reaches an admin: its one line names the fix (root's owner
// role, an empty FLUX_JOB_ID), and the failure is recorded where check-user shows it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

const UID = 1; // daemon
const OWNER = 64999;
const JOB = "1227286904832"; // fZEr9Bmq
const dir = tempDir();
const locks = join(dir.path, "locks");
let broker: BrokerProcess;

const node = (config: object, over: Partial<Scenario> = {}): Scenario => ({
  rank: 0,
  owner: OWNER,
  config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true }, ...config },
  jobs: [{ id: JOB, userid: UID, cores: "1" }],
  ...over,
});
// What a flux-owned instance without allow-root-owner answers root's job-info.lookup.
const refusesR = { errors: { "job-info.lookup": { errnum: 1, text: "access is restricted to job/instance owner" } } };

beforeAll(async () => {
  broker = await startBrokerProcess(node({}), dir.path);
  mkdirSync(locks, { mode: 0o700 });
});
afterAll(async () => {
  await broker.stop();
  dir.remove();
});

async function hook(name: "prolog" | "housekeeping", s: Scenario, args: string[], env: Record<string, string> = {}) {
  broker.setScenario(s);
  const r = await runBinary([name, ...args], { FLUX_URI: broker.uri, FLUX_JOB_USERID: String(UID), FLUX_JOB_ID: JOB, FLUX_PAM_LOCK_DIR: locks, ...env });
  return { ...r, stderr: r.stderr.replace(/^flux-pam: dry run without systemd .*\n/m, "") };
}

describe("root's owner role", () => {
  test("a job-info.lookup refused to root names allow-root-owner", async () => {
    const r = await hook("prolog", node({}, refusesR), ["--dry-run"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 1,
      stderr: `flux-pam-prolog[fZEr9Bmq]: job-info.lookup: access is restricted to job/instance owner (EPERM): root is not an owner of the Flux instance at ${broker.uri} (owner uid ${OWNER}): set allow-root-owner = true in [access] of the system instance's config (flux-config-pam(5))\n`,
    });
  });

  test("with allow-root-owner in force the same refusal is reported as it is", async () => {
    const r = await hook("prolog", node({ access: { "allow-root-owner": true } }, refusesR), ["--dry-run"]);
    expect(r.stderr).toBe("flux-pam-prolog[fZEr9Bmq]: job-info.lookup: access is restricted to job/instance owner (EPERM)\n");
  });

  test("private-mode without allow-root-owner: the hooks refuse, before any job is counted", async () => {
    const r = await hook("housekeeping", node({ access: { "private-mode": true } }), ["--dry-run"]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
      code: 1,
      stdout: "",
      stderr: `flux-pam-housekeeping[fZEr9Bmq]: access.private-mode hides other users' jobs from this command: root is not an owner of the Flux instance at ${broker.uri} (owner uid ${OWNER}): set allow-root-owner = true in [access] of the system instance's config (flux-config-pam(5))\n`,
    });
    expect((await hook("housekeeping", node({ access: { "private-mode": true, "allow-root-owner": true } }), ["--dry-run"])).code).toBe(0);
  });
});

describe("the job id", () => {
  test("the tag names the job as its unit does, whatever encoding FLUX_JOB_ID has", async () => {
    for (const id of [JOB, "ƒZEr9Bmq", "fZEr9Bmq", "0x11dc0000000"]) {
      const r = await hook("prolog", node({ pam: { "manage-user-slice": "yes" } }), ["--dry-run"], { FLUX_JOB_ID: id });
      expect(r.stderr).toBe("flux-pam-prolog[fZEr9Bmq]: broker config: pam.manage-user-slice must be true or false\n");
    }
  });

  test("an empty FLUX_JOB_ID (a runner that could not find flux) is named as such", async () => {
    const r = await hook("prolog", node({}), ["--dry-run"], { FLUX_JOB_ID: "" });
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 1,
      stderr: "flux-pam-prolog[?]: FLUX_JOB_ID is empty (flux-run-prolog and flux-run-housekeeping could not convert it: is flux on the IMP's PATH? flux-pam doctor)\n",
    });
  });

  test("an empty FLUX_JOB_USERID is named as such", async () => {
    const r = await hook("prolog", node({}), ["--dry-run"], { FLUX_JOB_USERID: "" });
    expect(r.stderr).toBe("flux-pam-prolog[fZEr9Bmq]: FLUX_JOB_USERID is empty\n");
  });
});

describe("the failure record check-user shows", () => {
  const record = join(locks, "uid.1.failed");
  // A config the broker serves but flux-pam refuses: the hook fails before systemd is needed.
  const broken = node({ pam: { "manage-user-slice": true, "kill-slice-grace-time": "forever" } });

  test("a failed hook leaves its job, time and reason; check-user names the unit's journal", async () => {
    rmSync(record, { force: true });
    const before = Math.floor(Date.now() / 1000);
    const r = await hook("housekeeping", broken, []);
    expect(r.code).toBe(1);
    const rec = JSON.parse(readFileSync(record, "utf8"));
    expect(rec).toMatchObject({ hook: "housekeeping", job: "fZEr9Bmq", message: r.stderr.replace("flux-pam-housekeeping[fZEr9Bmq]: ", "").trimEnd() });
    expect(rec.time).toBeGreaterThanOrEqual(before);
    expect(lstatSync(record).mode & 0o777).toBe(0o600);

    broker.setScenario(node({}));
    const cu = await runBinary(["check-user", "daemon", "--uri", broker.uri, "--json"], { FLUX_PAM_LOCK_DIR: locks });
    expect(JSON.parse(cu.stdout).node.lastFailure).toEqual({ ...rec, unit: "flux-housekeeping@fZEr9Bmq.service" });
    const text = await runBinary(["check-user", "daemon", "--uri", broker.uri], { FLUX_PAM_LOCK_DIR: locks });
    expect(text.stdout).toContain(`failed:   housekeeping of fZEr9Bmq at ${new Date(rec.time * 1000).toISOString()}: ${rec.message} (journalctl -u flux-housekeeping@fZEr9Bmq.service)\n`);
  });

  test("a dry run records nothing", async () => {
    rmSync(record, { force: true });
    expect((await hook("prolog", broken, ["--dry-run"])).code).toBe(1);
    expect(() => lstatSync(record)).toThrow();
  });

  test("a symbolic link in the record's place is replaced, never followed", async () => {
    const target = join(dir.path, "elsewhere");
    writeFileSync(target, "keep");
    rmSync(record, { force: true });
    symlinkSync(target, record);
    expect((await hook("prolog", broken, [])).code).toBe(1);
    expect(readFileSync(target, "utf8")).toBe("keep");
    expect(lstatSync(record).isFile()).toBe(true);
    expect(() => readlinkSync(record)).toThrow();
  });

  test("a record that is not one is reported by check-user, not believed", async () => {
    rmSync(record, { force: true });
    writeFileSync(record, '{"hook":"prolog","job":"$(reboot)","time":1,"message":"x"}', { mode: 0o600 });
    broker.setScenario(node({}));
    const cu = await runBinary(["check-user", "daemon", "--uri", broker.uri, "--json"], { FLUX_PAM_LOCK_DIR: locks });
    const n = JSON.parse(cu.stdout).node;
    expect(n.lastFailure).toBeUndefined();
    expect(n.lastFailureProblem).toBe(`${record}: not a failure record`);
  });
});
