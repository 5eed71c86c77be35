// flux-pam account, run as pam_exec runs it: PAM_* in the environment, exit 0 admits.
// PAM_TYPE is left out (as when an admin runs it by hand) so that log lines come to stderr,
// where the tests read them; under PAM_TYPE they go to syslog (tested once below).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync } from "node:fs";
import { formatF58, jobId } from "../../src/flux/jobid";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, runBinary, startBrokerProcess, tempDir } from "./harness";

// Real users of this machine's NSS: daemon (1) has jobs, bin (2) is someone else,
// sys (3) plays the instance owner ("flux") whose multi-user instances admit guests.
const USER = "daemon";
const UID = 1;
const OTHER = 2;
const OWNER = 3;
const DENIED = `Access denied: user ${USER} has no active jobs on this node\n`;

const dir = tempDir();
let broker: BrokerProcess;
let child: BrokerProcess;

beforeAll(async () => {
  broker = await startBrokerProcess({}, dir.path, "broker", { logRequests: true });
  child = await startBrokerProcess({ config: { access: { "allow-guest-user": true } } }, dir.path, "child");
});
afterAll(async () => {
  await broker.stop();
  await child.stop();
  dir.remove();
});

async function account(s: Scenario, words: string[] = [], user = USER) {
  broker.setScenario(s);
  return runBinary(["account", `uri=${broker.uri}`, "timeout=2s", ...words], {
    PAM_USER: user,
    PAM_SERVICE: "sshd",
    PAM_RHOST: "login1",
  });
}

function expectAdmitted(r: { code: number; stdout: string }) {
  expect(r.stdout).toBe("");
  expect(r.code).toBe(0);
}

function expectDenied(r: { code: number; stdout: string }) {
  expect(r.stdout).toBe(DENIED);
  expect(r.code).toBe(1);
}

describe("flux-pam account: job owners", () => {
  test("a user with no job is denied with the exact message", async () => {
    expectDenied(await account({ rank: 0 }));
  });

  test("a user with a RUN job on this rank is admitted", async () => {
    expectAdmitted(await account({ rank: 0, jobs: [{ id: "1227286904832", userid: UID, ranks: "0" }] }));
  });

  test("a job on another rank does not admit; the denial is followed by where the job runs", async () => {
    const r = await account({ rank: 2, jobs: [{ id: "1227286904832", userid: UID, ranks: "0-1,3" }] });
    expect(r.stdout).toBe(`${DENIED}daemon has a running job on node[0-1,3] (ƒZEr9Bmq), not on node2\n`);
    expect(r.code).toBe(1);
  });

  test("a job in CLEANUP does not admit", async () => {
    expectDenied(await account({ rank: 0, jobs: [{ id: "1227286904832", userid: UID, state: 32 }] }));
  });

  test("another user's job does not admit", async () => {
    expectDenied(await account({ rank: 0, jobs: [{ id: "1227286904832", userid: OTHER }] }));
  });

  test("an admission asks rank, then one job-list.list constrained to this user, this rank and RUN; never security.owner", async () => {
    broker.clearRequests();
    const r = await account({ rank: 5, jobs: [{ id: "7", userid: UID, ranks: "4-6" }] }, ["debug"]);
    expectAdmitted(r);
    expect(r.stderr).toContain("access granted for user daemon (uid=1) as job owner: ƒ8");
    expect(broker.requests()).toEqual([
      { topic: "attr.get", payload: { name: "rank" } },
      {
        topic: "job-list.list",
        payload: {
          max_entries: 0,
          attrs: ["userid", "ranks", "state", "annotations"],
          constraint: { and: [{ userid: [UID] }, { ranks: ["5"] }, { states: [16] }] },
        },
      },
    ]);
  });

  test("with allow-guest-user the owner is asked for too, and its jobs listed with the user's", async () => {
    broker.clearRequests();
    expectDenied(await account({ rank: 0, owner: OWNER }, ["allow-guest-user", "no-job-hint"]));
    expect(broker.requests()).toEqual([
      { topic: "attr.get", payload: { name: "rank" } },
      { topic: "attr.get", payload: { name: "security.owner" } },
      {
        topic: "job-list.list",
        payload: {
          max_entries: 0,
          attrs: ["userid", "ranks", "state", "annotations"],
          constraint: { and: [{ userid: [UID, OWNER] }, { ranks: ["0"] }, { states: [16] }] },
        },
      },
    ]);
  });

  test("a denial's job hint is one more job-list.list over every rank, and the hostname", async () => {
    broker.clearRequests();
    await account({ rank: 0 });
    expect(broker.requests().slice(2)).toEqual([
      { topic: "attr.get", payload: { name: "hostname" } },
      {
        topic: "job-list.list",
        payload: { max_entries: 0, attrs: ["userid", "state", "ranks", "nodelist"], constraint: { and: [{ userid: [UID] }, { states: [16] }] } },
      },
    ]);
  });

  test("a job id above 2^53 round-trips exactly", async () => {
    const id = "18446744073709551557";
    const r = await account({ jobs: [{ id, userid: UID }] }, ["debug"]);
    expectAdmitted(r);
    expect(r.stderr).toContain(`as job owner: ${formatF58(jobId(BigInt(id)))}`);
  });

  test("an unknown user is denied without the job message", async () => {
    const r = await account({ jobs: [{ id: "1", userid: UID }] }, [], "no-such-user-x");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe('flux-pam account: unknown user "no-such-user-x"\n');
  });

  test("a user name with control characters is unknown, and printed escaped", async () => {
    const r = await account({}, [], "daemon\nroot");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('flux-pam account: unknown user "daemon\\nroot"\n');
  });

  test("under pam_exec (PAM_TYPE set) the log lines go to syslog, never to the user's terminal", async () => {
    broker.setScenario({ rank: 0 });
    const r = await runBinary(["account", `uri=${broker.uri}`, "debug"], { PAM_USER: USER, PAM_TYPE: "account", PAM_SERVICE: "sshd" });
    expectDenied(r);
    expect(r.stderr).toBe("");
  });

  test("an endless timeout is a usage error (exit 2): each broker call would otherwise time out after 1 ms", async () => {
    const r = await account({ jobs: [{ id: "1", userid: UID }] }, ["timeout=inf"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('flux-pam: account: timeout: "inf" is longer than 1h\n');
  });

  test("an unknown option word is a usage error (exit 2), not an admission", async () => {
    const r = await account({ jobs: [{ id: "1", userid: UID }] }, ["allow-everyone"]);
    expect(r.code).toBe(2);
  });
});

describe("flux-pam account: guests of a multi-user instance", () => {
  const instance = (over: object = {}) => ({
    id: "99",
    userid: OWNER,
    ranks: "0-3",
    uri: `ssh://node0${child.socket}`,
    ...over,
  });

  test("a guest is admitted when all four conditions hold", async () => {
    const r = await account({ rank: 0, owner: OWNER, jobs: [instance()] }, ["allow-guest-user", "debug"]);
    expectAdmitted(r);
    expect(r.stderr).toContain(`as guest of ${formatF58(jobId(99n))} at ${child.uri}`);
  });

  test("without allow-guest-user the same guest is denied", async () => {
    expectDenied(await account({ rank: 0, owner: OWNER, jobs: [instance()] }));
  });

  test("1: a job of someone other than the instance owner does not admit guests", async () => {
    expectDenied(await account({ rank: 0, owner: OWNER, jobs: [instance({ userid: OTHER })] }, ["allow-guest-user"]));
  });

  test("2: a rank that is not the job's first rank does not admit guests", async () => {
    expectDenied(await account({ rank: 1, owner: OWNER, jobs: [instance()] }, ["allow-guest-user"]));
  });

  test("3: a job that is not a Flux instance (no annotations.user.uri) does not admit guests", async () => {
    expectDenied(await account({ rank: 0, owner: OWNER, jobs: [instance({ uri: undefined })] }, ["allow-guest-user"]));
  });

  test("4: an instance without access.allow-guest-user = true does not admit guests", async () => {
    child.setScenario({ config: { access: { "allow-guest-user": false } } });
    try {
      const r = await account({ rank: 0, owner: OWNER, jobs: [instance()] }, ["allow-guest-user", "debug"]);
      expectDenied(r);
    } finally {
      child.setScenario({ config: { access: { "allow-guest-user": true } } });
    }
  });

  test("an instance socket owned by someone other than the instance owner or root is not believed", async () => {
    chownSync(child.socket, OTHER, OTHER);
    try {
      const r = await account({ rank: 0, owner: OWNER, jobs: [instance()] }, ["allow-guest-user", "debug"]);
      expectDenied(r);
    } finally {
      chownSync(child.socket, 0, 0);
    }
    const r = await runBinary(["check-user", USER, "--uri", broker.uri, "--allow-guest-user", "--json"], {});
    expect(r.code).toBe(0); // owned by root again: believed
  });

  test("an instance socket in a directory others can write is not believed", async () => {
    const open = tempDir("flux-pam-open-");
    chmodSync(open.path, 0o777);
    const fake = await startBrokerProcess({ config: { access: { "allow-guest-user": true } } }, open.path, "fake");
    try {
      broker.setScenario({ rank: 0, owner: OWNER, jobs: [instance({ uri: `ssh://node0${fake.socket}` })] });
      const r = await runBinary(["check-user", USER, "--uri", broker.uri, "--allow-guest-user", "--json"], {});
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).guest).toEqual([{ job: formatF58(jobId(99n)), ok: false, why: `${open.path} is writable by others: the socket could be replaced` }]);
      expectDenied(await account({ rank: 0, owner: OWNER, jobs: [instance({ uri: `ssh://node0${fake.socket}` })] }, ["allow-guest-user"]));
    } finally {
      await fake.stop();
      open.remove();
    }
  });

  test("an instance that cannot be reached does not admit guests", async () => {
    expectDenied(await account({ rank: 0, owner: OWNER, jobs: [instance({ uri: `ssh://node0${dir.path}/gone.sock` })] }, ["allow-guest-user"]));
  });
});

describe("flux-pam account: a broker that fails denies", () => {
  test("no broker at the socket", async () => {
    const r = await runBinary(["account", `uri=local://${dir.path}/absent.sock`, "timeout=1s"], { PAM_USER: USER });
    expectDenied(r);
    expect(r.stderr).toContain("was not found");
  });

  test("the broker refuses the handshake", async () => {
    const r = await account({ handshake: 1, jobs: [{ id: "1", userid: UID }] });
    expectDenied(r);
    expect(r.stderr).toContain("refused the connection: EPERM");
  });

  test("a broker that hangs is given up at the deadline", async () => {
    const r = await account({ silent: ["job-list.list"], jobs: [{ id: "1", userid: UID }] });
    expectDenied(r);
    expect(r.stderr).toContain("job-list.list: no answer from the Flux broker");
  });

  test("a garbled reply", async () => {
    expectDenied(await account({ garbage: ["job-list.list"], jobs: [{ id: "1", userid: UID }] }));
  });

  test("an error reply from job-list", async () => {
    expectDenied(await account({ errors: { "job-list.list": { errnum: 71, text: "invalid payload" } }, jobs: [{ id: "1", userid: UID }] }));
  });

  for (const [what, jobs] of [
    ["ranks that are not an idset", [{ id: 1, userid: UID, ranks: "x", state: 16 }]],
    ["a job id that is a string", [{ id: "1", userid: UID, ranks: "0", state: 16 }]],
    ["a job id beyond 64 bits", [{ id: 18446744073709551616n, userid: UID, ranks: "0", state: 16 }]],
    ["no userid", [{ id: 1, ranks: "0", state: 16 }]],
  ] as const) {
    test(`a job-list reply that lies: ${what}`, async () => {
      const r = await account({ rawReplies: { "job-list.list": { jobs: jobs as never } } });
      expectDenied(r);
      expect(r.stderr).toContain("job-list.list: unexpected reply from the Flux broker");
    });
  }

  // job-list is asked for RUN jobs on this rank; a broker that ignores the constraint must not let its answer admit.
  for (const [what, job] of [
    ["the user's job on another rank", { id: 1, userid: UID, ranks: "1-3", state: 16 }],
    ["the user's job in CLEANUP", { id: 1, userid: UID, ranks: "0", state: 32 }],
    ["the user's job with no ranks", { id: 1, userid: UID, state: 16 }],
    ["the instance owner's job in CLEANUP, for a guest", { id: 1, userid: OWNER, ranks: "0", state: 32, annotations: { user: { uri: "CHILD" } } }],
  ] as const) {
    test(`a job-list reply that ignores the constraint does not admit: ${what}`, async () => {
      const raw = JSON.parse(JSON.stringify(job).replace("CHILD", `ssh://node0${child.socket}`));
      const r = await account({ rank: 0, owner: OWNER, rawReplies: { "job-list.list": { jobs: [raw] } } }, ["allow-guest-user"]);
      expectDenied(r);
    });
  }

  test("FLUX_URI is ignored for a caller whose real uid is not 0", async () => {
    // Run as nobody: the binary must not follow FLUX_URI to the broker that claims a job.
    broker.setScenario({ jobs: [{ id: "1", userid: UID }] });
    const proc = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", `${import.meta.dir}/../../build/flux-pam`, "account", "timeout=1s"], {
      env: { PAM_USER: USER, FLUX_URI: broker.uri, PATH: "/usr/bin:/bin" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(stdout).toBe(DENIED);
    expect(stderr).toContain("/run/flux/local");
  });
});
