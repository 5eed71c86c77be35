// flux-pam prolog / housekeeping run as flux-run-prolog runs them, with --dry-run so that no
// systemd is needed: input, skip rules, the union sent to the mapper, fail-closed paths, locks.
// The same commands against real systemd: test/systemd/containment.test.ts.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

const UID = 1; // daemon
const OWNER = 64999;
const JOB = "1227286904832"; // ƒZEr9Bmq
const dir = tempDir();
let broker: BrokerProcess;

const managed = { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } };
const node = (over: Partial<Scenario> = {}): Scenario => ({
  rank: 0,
  owner: OWNER,
  config: managed,
  jobs: [{ id: JOB, userid: UID, cores: "1" }], // (CPUs this machine has: the hooks check)
  ...over,
});

beforeAll(async () => {
  broker = await startBrokerProcess(node(), dir.path);
});
afterAll(async () => {
  await broker.stop();
  dir.remove();
});

async function hook(name: "prolog" | "housekeeping", s: Scenario, env: Record<string, string> = {}, args = ["--dry-run"]) {
  broker.setScenario(s);
  const r = await runBinary([name, ...args], {
    FLUX_URI: broker.uri,
    FLUX_JOB_USERID: String(UID),
    FLUX_JOB_ID: JOB,
    FLUX_PAM_LOCK_DIR: join(dir.path, "locks"),
    ...env,
  });
  // This machine may have no system bus; the dry run says so on stderr, which is not under test here.
  return { ...r, stderr: r.stderr.replace(/^flux-pam: dry run without systemd .*\n/m, "") };
}

/** The marker a prolog leaves (a dry run makes none). */
function mark(uid: number): void {
  mkdirSync(join(dir.path, "locks"), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir.path, "locks", `uid.${uid}.active`), "");
}

describe("hook input", () => {
  test("a missing FLUX_JOB_USERID fails naming the variable", async () => {
    const r = await runBinary(["prolog", "--dry-run"], { FLUX_URI: broker.uri, FLUX_JOB_ID: JOB });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("flux-pam-prolog[fZEr9Bmq]: FLUX_JOB_USERID is not set\n");
  });

  test("a malformed FLUX_JOB_ID fails naming the variable", async () => {
    const r = await hook("housekeeping", node(), { FLUX_JOB_ID: "not-an-id!" });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('flux-pam-housekeeping[not-an-id!]: FLUX_JOB_ID: "not-an-id!" is not a job id in any encoding Flux uses\n');
  });

  test("a uid that is not a number fails", async () => {
    const r = await hook("prolog", node(), { FLUX_JOB_USERID: "1; rm -rf /" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('FLUX_JOB_USERID="1; rm -rf /" is not a uid');
  });

  // Every RFC 19 encoding flux-pam decodes (src/flux/jobid.ts), of the one job the broker has.
  const encodings: [string, string][] = [
    ["decimal", JOB],
    ["0x hex", "0x11dc0000000"],
    ["dothex", "0000.011d.c000.0000"],
    ["a KVS path", "job.0000.011d.c000.0000"],
    ["F58 with ƒ", "ƒZEr9Bmq"],
    ["F58 with f", "fZEr9Bmq"],
  ];
  for (const [encoding, text] of encodings) {
    test(`a FLUX_JOB_ID in ${encoding} (${text}) names the job`, async () => {
      const r = await hook("prolog", node(), { FLUX_JOB_ID: text, FLUX_PAM_SCRIPTS_DEBUG: "1" });
      expect(r.code).toBe(0);
      // the job decoded is the broker's job: its own R gave the cores
      expect(r.stderr).toContain("flux-pam-prolog[fZEr9Bmq]: union of 1 job(s) [ƒZEr9Bmq] on rank 0");
      expect(r.stdout.split("\n")[0]).toBe("user-1.slice SetUnitProperties runtime=true DeviceAllow= AllowedCPUs=1 AllowedMemoryNodes=0 DevicePolicy=closed");
    });
  }

  test("a FLUX_JOB_ID in mnemonic words is refused, naming the encodings to use", async () => {
    const words = "academy-academy-academy--academy-academy-academy";
    const r = await hook("prolog", node(), { FLUX_JOB_ID: words });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `flux-pam-prolog[${words.slice(0, 40)}]: FLUX_JOB_ID: job id "${words}" looks like mnemonic words, which flux-pam does not decode; use the F58 or decimal id\n`,
    );
  });
});

describe("prolog", () => {
  test("first job: the slice gets the mapper's answer for the job's cores, then marker and user@", async () => {
    const r = await hook("prolog", node());
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      "user-1.slice SetUnitProperties runtime=true DeviceAllow= AllowedCPUs=1 AllowedMemoryNodes=0 DevicePolicy=closed",
      `marker create ${dir.path}/locks/uid.1.active`,
      "user@1.service StartUnit mode=replace",
      "",
    ]);
  });

  test("the union of all the user's running jobs on this rank is applied, other users' and ranks' left out", async () => {
    const r = await hook(
      "prolog",
      node({
        rank: 1,
        jobs: [
          { id: JOB, userid: UID, ranks: "0-1", cores: "1" },
          { id: "5", userid: UID, ranks: "1", cores: "0", gpus: "1" },
          { id: "6", userid: UID, ranks: "2", cores: "9" },
          { id: "7", userid: 2, ranks: "1", cores: "10" },
          { id: "8", userid: UID, ranks: "1", cores: "11", state: 32 },
        ],
      }),
    );
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe(
      'user-1.slice SetUnitProperties runtime=true DeviceAllow= AllowedCPUs=0-1 AllowedMemoryNodes=0 DevicePolicy=closed DeviceAllow="/dev/nvidia1 rw,/dev/nvidiactl rw"',
    );
  });

  test("with constraints off, no properties are set but the marker is made", async () => {
    const r = await hook("prolog", node({ config: { pam: { "manage-user-slice": true } } }));
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("SetUnitProperties");
    expect(r.stdout).toContain("marker create");
  });

  test("the instance owner's job is skipped", async () => {
    const r = await hook("prolog", node({ owner: UID }));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
  });

  test("a job of root is skipped: user-0.slice holds the admins' logins", async () => {
    const r = await hook("housekeeping", node({ jobs: [{ id: JOB, userid: 0, state: 64 }] }), { FLUX_JOB_USERID: "0" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
  });

  test("pam.manage-user-slice off: skipped", async () => {
    const r = await hook("prolog", node({ config: { exec: { "sdexec-constrain-resources": true } } }));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
  });

  test("a mapper error fails the prolog instead of leaving the slice unconstrained", async () => {
    const r = await hook("prolog", node({ mapper: "absent" }));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "flux-pam-prolog[fZEr9Bmq]: exec.sdexec-constrain-resources is on but the resource mapping failed, so user-1.slice cannot be constrained: sdexec-mapper.lookup: No service matching sdexec-mapper.lookup is registered (ENOSYS)\n",
    );
  });

  test("a mapper that maps nothing fails the prolog", async () => {
    const r = await hook("prolog", node({ mapper: {} }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("mapped no resources");
  });

  test("CPUs or memory nodes this node cannot have fail the prolog (the kernel would refuse them and leave every CPU), nothing set", async () => {
    const possible = (await Bun.file("/sys/devices/system/cpu/possible").text()).trim();
    const cpus = await hook("prolog", node({ mapper: { AllowedCPUs: "4000-4001", AllowedMemoryNodes: "0", DevicePolicy: "closed" } }));
    expect([cpus.code, cpus.stdout]).toEqual([1, ""]);
    expect(cpus.stderr).toBe(
      `flux-pam-prolog[fZEr9Bmq]: the jobs' resources do not fit this node, so user-1.slice cannot be constrained: AllowedCPUs=4000-4001 names CPUs this node cannot have (possible: ${possible}): the kernel would refuse it and leave the slice on all of them\n`,
    );
    const mems = await hook("prolog", node({ mapper: { AllowedCPUs: "0", AllowedMemoryNodes: "4000", DevicePolicy: "closed" } }));
    expect([mems.code, mems.stdout]).toEqual([1, ""]);
    expect(mems.stderr).toContain("AllowedMemoryNodes=4000 names memory nodes this node cannot have");
  });

  test("a mapper property systemd cannot take is refused", async () => {
    const r = await hook("prolog", node({ mapper: { AllowedCPUs: "0", Bogus: "x" } }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Bogus");
  });

  test("a bad config value fails rather than guessing", async () => {
    const r = await hook("prolog", node({ config: { pam: { "manage-user-slice": "yes" } } }));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("flux-pam-prolog[fZEr9Bmq]: broker config: pam.manage-user-slice must be true or false\n");
  });

  test("debug lines come with FLUX_PAM_SCRIPTS_DEBUG", async () => {
    const r = await hook("prolog", node(), { FLUX_PAM_SCRIPTS_DEBUG: "1" });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("flux-pam-prolog[fZEr9Bmq]: union of 1 job(s) [ƒZEr9Bmq] on rank 0");
  });

  test("debug lines come with [pam] debug = true in the broker's config too, and not without either", async () => {
    const on = await hook("prolog", node({ config: { ...managed, pam: { "manage-user-slice": true, debug: true } } }));
    expect(on.code).toBe(0);
    expect(on.stderr).toContain("flux-pam-prolog[fZEr9Bmq]: union of 1 job(s) [ƒZEr9Bmq] on rank 0");
    const off = await hook("prolog", node());
    expect(off.stderr).not.toContain("union of");
  });
});

describe("housekeeping", () => {
  test("jobs remain: the slice shrinks to the union of the others", async () => {
    const r = await hook(
      "housekeeping",
      node({ jobs: [{ id: JOB, userid: UID, cores: "1", gpus: "0", state: 32 }, { id: "5", userid: UID, cores: "0" }] }),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("user-1.slice SetUnitProperties runtime=true DeviceAllow= AllowedCPUs=0 AllowedMemoryNodes=0 DevicePolicy=closed\n");
  });

  test("a job-list reply that lists a CLEANUP job or one on another rank does not keep the slice up", async () => {
    const lying = { jobs: [{ id: 5, userid: UID, ranks: "0", state: 32 }, { id: 6, userid: UID, ranks: "3", state: 16 }] };
    const r = await hook("housekeeping", node({ rawReplies: { "job-list.list": lying } }));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`marker remove ${dir.path}/locks/uid.1.active`);
  });

  test("the last job: marker removed first, then the slice stopped (user@ with it), and no reload", async () => {
    mark(UID); // as the prolog left it
    const r = await hook("housekeeping", node({ jobs: [{ id: JOB, userid: UID, state: 64 }] }));
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toEqual([`marker remove ${dir.path}/locks/uid.1.active`, "user-1.slice StopUnit mode=replace", ""]);
  });
});

describe("a uid without a passwd entry", () => {
  test("fails the prolog (the linger file is named after the user)", async () => {
    const r = await hook("prolog", node({ jobs: [{ id: JOB, userid: 4242424 }] }), { FLUX_JOB_USERID: "4242424" });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("flux-pam-prolog[fZEr9Bmq]: uid 4242424 has no passwd entry on this node\n");
  });

  test("is torn down by uid all the same: a deleted user must not drain the node", async () => {
    mark(4242424);
    const r = await hook("housekeeping", node({ jobs: [{ id: JOB, userid: 4242424, state: 64 }] }), { FLUX_JOB_USERID: "4242424" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`marker remove ${dir.path}/locks/uid.4242424.active`);
    expect(r.stdout).toContain("user-4242424.slice StopUnit");
  });
});

describe("the lock directory (without --dry-run; refused before systemd is touched)", () => {
  for (const mode of [0o770, 0o707]) {
    test(`a lock dir of mode ${mode.toString(8)} is refused`, async () => {
      const locks = join(dir.path, `locks-${mode.toString(8)}`);
      mkdirSync(locks);
      chmodSync(locks, mode);
      const r = await hook("prolog", node(), { FLUX_PAM_LOCK_DIR: locks }, []);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`lock directory is group/other writable (mode 0${mode.toString(8)})`);
      expect(existsSync(join(locks, "uid.1.lock"))).toBe(false);
    });
  }

  test("a symlinked lock file is refused", async () => {
    const locks = join(dir.path, "locks-symlink");
    mkdirSync(locks, { mode: 0o700 });
    writeFileSync(join(dir.path, "elsewhere"), "");
    symlinkSync(join(dir.path, "elsewhere"), join(locks, "uid.1.lock"));
    const r = await hook("housekeeping", node(), { FLUX_PAM_LOCK_DIR: locks }, []);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`flux-pam-housekeeping[fZEr9Bmq]: ${locks}/uid.1.lock: lock file is a symbolic link\n`);
  });
});
