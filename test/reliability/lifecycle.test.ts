// A randomized life cycle on real systemd 252 (the systemd-nspawn container): seeded events for
// alice, bob and carol (a job starts on this rank with random cores and GPUs, a job ends, several
// hooks at once, a login, a kill -9 of a hook, a broker restart), with the invariants checked
// after each, once its hooks are done and systemd has done the slice stops they queued: the marker
// exists exactly when the user has a RUN job here; the slice's limits are the mapper's answer for
// the union of those jobs (and lifted without one); no login is admitted without a RUN job and the
// marker; every admitted login is in user-UID.slice/flux-pam-PID.scope; no login outlives the
// user's last job. Also, deterministically: a kill -9 of a prolog or a housekeeping at each step,
// then the next hook for that user, converges; and KillUnit refused, never answered, or answering
// NoSuchUnit for a scope whose processes live (a stand-in systemd on the container's real cgroups)
// fails the teardown naming it, with no login let in.
//
// make check: FLUX_PAM_LIFECYCLE_EVENTS (default 200), FLUX_PAM_LIFECYCLE_SEED (default fixed);
// `make lifecycle` runs 1000 with a fresh seed. A failure names the seed and the event.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { unitJobId } from "../../src/commands/hook-env";
import { formatIdset } from "../../src/flux/idset";
import { parseJobId } from "../../src/flux/jobid";
import { Rng } from "../broker/fuzz";
import type { Scenario } from "../broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../e2e/harness";
import { bootContainer, type Container, containerSkipReason } from "../systemd/container";
import { type FakeSystemd, startFakeSystemd } from "../systemd/fake-systemd";

const skip = containerSkipReason();
if (skip) console.warn(`SKIPPED: the life cycle on real systemd: ${skip}`);

const SEED = Number(process.env.FLUX_PAM_LIFECYCLE_SEED ?? 20261128);
const EVENTS = Number(process.env.FLUX_PAM_LIFECYCLE_EVENTS ?? 200);
const BIN = "/opt/flux-pam/flux-pam";
const SOCKDIR = "/run/test-flux";
const URI = `local://${SOCKDIR}/broker.sock`;
const FAKE_BUS = `unix:path=${SOCKDIR}/system_bus_socket`;
const OWNER = 64999;
const USERS = [
  { name: "alice", uid: 1000 },
  { name: "bob", uid: 1001 },
  { name: "carol", uid: 1002 },
] as const;
const CPUS = 8;

interface ModelJob {
  id: string;
  uid: number;
  cores: number[];
  gpus: number[];
  state: 16 | 64;
}

/** What a user's slice and marker must be, from the model. */
interface Expected {
  marker: boolean;
  AllowedCPUs: string;
  AllowedMemoryNodes: string;
  DevicePolicy: string;
  DeviceAllow: string;
}

describe.skipIf(skip !== undefined)("life cycle on real systemd", () => {
  let c: Container;
  let broker: BrokerProcess;
  let fake: FakeSystemd;
  const dir = tempDir("flux-pam-lifecycle-");
  const socks = join(dir.path, "socks");
  let jobs: ModelJob[] = [];
  let nextId = 5000;
  const counts = { events: 0, hooks: 0, kills: 0, restarts: 0, logins: 0, admitted: 0, denied: 0, bursts: 0, checks: 0 };

  const config = { pam: { "manage-user-slice": true, "kill-user-slice": true, "kill-slice-grace-time": "1s" }, exec: { "sdexec-constrain-resources": true } };
  const scenario = (): Scenario => ({
    rank: 0,
    owner: OWNER,
    config,
    mapper: "auto",
    jobs: jobs.map((j) => ({ id: j.id, userid: j.uid, state: j.state, cores: formatIdset(j.cores), ...(j.gpus.length ? { gpus: formatIdset(j.gpus) } : {}) })),
  });
  const publish = () => broker.setScenario(scenario());

  beforeAll(
    async () => {
      mkdirSync(socks);
      chmodSync(socks, 0o755);
      broker = await startBrokerProcess(scenario(), socks);
      fake = await startFakeSystemd(socks);
      c = await bootContainer({ binds: [{ host: socks, container: SOCKDIR }], cpus: `0-${CPUS - 1}` }); // (the jobs hold CPUs this machine may not have)
    },
    { timeout: 20 * 60_000 },
  );
  afterAll(async () => {
    console.log(`life cycle (seed ${SEED}): ${JSON.stringify(counts)}`);
    await c?.stop();
    await broker?.stop();
    await fake?.close();
    dir.remove();
  });

  /**
   * Runs a hook in the container. With `killAt`, SIGKILLs it as soon as a debug line holding that
   * text appears (the step just done); with `killAfterMs`, after that long (timeout -s KILL).
   */
  async function hook(name: "prolog" | "housekeeping", uid: number, id: string, o: { killAt?: string; killAfterMs?: number; env?: Record<string, string> } = {}) {
    counts.hooks++;
    const env = { FLUX_URI: URI, FLUX_JOB_USERID: String(uid), FLUX_JOB_ID: id, ...(o.killAt ? { FLUX_PAM_SCRIPTS_DEBUG: "1" } : {}), ...o.env };
    if (o.killAt) {
      // A reader that kills the hook the moment the step's line comes (no round trip to the host).
      const script = `f=$(mktemp -u); mkfifo "$f"; "$@" 2>"$f" & p=$!
        while IFS= read -r line; do printf '%s\\n' "$line"; case "$line" in *"$KILL_AT"*) kill -9 $p; break;; esac; done <"$f"
        wait $p; code=$?; rm -f "$f"; exit $code`;
      return c.exec(["bash", "-c", script, "bash", BIN, name], { env: { ...env, KILL_AT: o.killAt }, timeoutMs: 90_000 });
    }
    if (o.killAfterMs !== undefined) return c.exec(["timeout", "-s", "KILL", `${o.killAfterMs / 1000}`, BIN, name], { env, timeoutMs: 90_000 });
    return c.exec([BIN, name], { env, timeoutMs: 90_000 });
  }

  async function mustHook(name: "prolog" | "housekeeping", uid: number, id: string, where: string) {
    const r = await hook(name, uid, id);
    if (r.code !== 0) throw new Error(`${where}: ${name} of ${id} (uid ${uid}) exited ${r.code}: ${r.stderr.trim()}`);
  }

  const expected = (uid: number): Expected => {
    const run = jobs.filter((j) => j.uid === uid && j.state === 16);
    if (run.length === 0) return { marker: false, AllowedCPUs: "", AllowedMemoryNodes: "", DevicePolicy: "auto", DeviceAllow: "" };
    const cores = formatIdset(run.flatMap((j) => j.cores)).replaceAll(",", " ");
    const gpus = [...new Set(run.flatMap((j) => j.gpus))].sort((a, b) => a - b);
    return {
      marker: true,
      AllowedCPUs: cores,
      AllowedMemoryNodes: "0",
      DevicePolicy: "closed",
      DeviceAllow: gpus.length ? [...gpus.map((g) => `/dev/nvidia${g} rw`), "/dev/nvidiactl rw"].sort().join(",") : "",
    };
  };

  /** The node as systemd and the lock dir say, for every user, in one exec. */
  async function actual(): Promise<Map<number, Expected & { scopes: string[] }>> {
    const script = USERS.map(
      ({ uid }) =>
        `m=no; [ -e /run/flux-pam/uid.${uid}.active ] && m=yes; echo "${uid} marker=$m"
         systemctl show -p AllowedCPUs -p AllowedMemoryNodes -p DevicePolicy -p DeviceAllow user-${uid}.slice | sed "s/^/${uid} /"
         echo "${uid} scopes=$(systemctl list-units --no-legend --plain --state=active 'flux-pam-*.scope' | awk '{print $1}' | while read s; do systemctl show -p Slice --value "$s" | grep -qx user-${uid}.slice && printf '%s ' "$s"; done)"`,
    ).join("\n");
    const out = await c.run(["bash", "-c", script]);
    const m = new Map<number, Expected & { scopes: string[] }>();
    for (const { uid } of USERS) m.set(uid, { marker: false, AllowedCPUs: "", AllowedMemoryNodes: "", DevicePolicy: "", DeviceAllow: "", scopes: [] });
    const devices = new Map<number, string[]>();
    for (const line of out.split("\n")) {
      const sp = line.indexOf(" ");
      if (sp < 0) continue;
      const uid = Number(line.slice(0, sp));
      const kv = line.slice(sp + 1);
      const eq = kv.indexOf("=");
      const k = kv.slice(0, eq);
      const v = kv.slice(eq + 1);
      const e = m.get(uid)!;
      if (k === "marker") e.marker = v === "yes";
      else if (k === "scopes") e.scopes = v.trim() === "" ? [] : v.trim().split(" ");
      else if (k === "DeviceAllow") {
        if (v !== "") devices.set(uid, [...(devices.get(uid) ?? []), v]);
      } else (e as unknown as Record<string, string>)[k] = v;
    }
    for (const [uid, d] of devices) m.get(uid)!.DeviceAllow = d.sort().join(",");
    return m;
  }

  /**
   * Waits until systemd is done with the slice of each user without a RUN job here, up to 30 s (a
   * bound, not a timed assertion): the last job's teardown queues the slice's stop and does not
   * wait, and until the stop is done and systemd frees the unit it still shows the job's limits.
   * Done: not held, or held with no job queued and nothing a reload would change. Returns what is
   * still not done at the bound (the invariants then fail on it, saying so).
   */
  async function settle(): Promise<string> {
    const idle = USERS.filter(({ uid }) => !expected(uid).marker);
    if (idle.length === 0) return "";
    const script = idle
      .map(
        ({ uid }) =>
          `if busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager GetUnit s user-${uid}.slice >/dev/null 2>&1; then
             echo "${uid} $(systemctl show -p ActiveState -p Job -p NeedDaemonReload user-${uid}.slice | sort | tr '\n' ' ')"; fi`,
      )
      .join("\n");
    let busy = "";
    for (const end = Date.now() + 30_000; ; await Bun.sleep(50)) {
      busy = (await c.run(["bash", "-c", script]))
        .split("\n")
        .filter((l) => l !== "" && !(l.includes("Job= ") && l.includes("NeedDaemonReload=no")))
        .join("; ");
      if (busy === "" || Date.now() >= end) return busy;
    }
  }

  /** The invariants, once every hook in flight is done and systemd has done the jobs they queued. */
  async function check(where: string) {
    counts.checks++;
    const busy = await settle();
    if (busy !== "") where = `${where} (slices not settled after 30 s: ${busy})`;
    const now = await actual();
    for (const { uid } of USERS) {
      const want = expected(uid);
      const got = now.get(uid)!;
      const { scopes, ...state } = got;
      expect({ where, uid, ...state }).toEqual({ where, uid, ...want });
      // A login does not outlive the user's last job here (kill-user-slice).
      if (!want.marker) expect({ where, uid, scopes }).toEqual({ where, uid, scopes: [] });
    }
  }

  /** A login attempt: account and session-open for a fresh process, as sshd would run them; the pid if let in. */
  async function login(user: (typeof USERS)[number], where: string): Promise<string | undefined> {
    counts.logins++;
    const pid = (await c.run(["bash", "-c", "setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!"])).trim();
    const a = await c.exec([BIN, "account", `uri=${URI}`], { env: { PAM_USER: user.name, PAM_SERVICE: "sshd" } });
    const running = jobs.some((j) => j.uid === user.uid && j.state === 16);
    expect({ where, user: user.name, admitted: a.code === 0 }).toEqual({ where, user: user.name, admitted: running });
    if (a.code !== 0) {
      counts.denied++;
      await c.exec(["kill", pid]);
      return undefined;
    }
    const s = await c.exec([BIN, "session-open", `uri=${URI}`], { env: { PAM_USER: user.name, PAM_SERVICE: "sshd", FLUX_PAM_PID: pid } });
    const marker = (await c.exec(["test", "-e", `/run/flux-pam/uid.${user.uid}.active`])).code === 0;
    expect({ where, user: user.name, session: s.code === 0 }).toEqual({ where, user: user.name, session: marker });
    if (s.code !== 0) {
      counts.denied++;
      await c.exec(["kill", pid]);
      return undefined;
    }
    counts.admitted++;
    const cg = (await c.run(["cat", `/proc/${pid}/cgroup`])).split("\n").find((l) => l.startsWith("0::"));
    expect({ where, cg }).toEqual({ where, cg: `0::/user.slice/user-${user.uid}.slice/flux-pam-${pid}.scope` });
    return pid;
  }

  function newJob(rng: Rng, uid: number): ModelJob {
    const cores = [...new Set(Array.from({ length: 1 + rng.int(3) }, () => rng.int(CPUS)))].sort((a, b) => a - b);
    const gpus = rng.chance(0.25) ? [rng.int(4)] : [];
    return { id: String(nextId++), uid, cores, gpus, state: 16 };
  }

  test("kill -9 of a prolog at each step, then the job's housekeeping (the job failed): the node converges", async () => {
    for (const step of ["broker answered", "systemd connected", ": AllowedCPUs=", "start queued", "done in"]) {
      const j = newJob(new Rng(1), 1000);
      jobs.push(j);
      publish();
      const r = await hook("prolog", j.uid, j.id, { killAt: step });
      counts.kills++;
      // After its last change (user@'s start queued, "done in") the hook may exit before the kill lands.
      const late = step === "done in" || step === "start queued";
      expect({ step, killed: r.code === 137 || (late && r.code === 0) }).toEqual({ step, killed: true });
      // Flux fails the job: it ends, and its housekeeping runs.
      j.state = 64;
      publish();
      await mustHook("housekeeping", j.uid, j.id, `prolog killed at "${step}"`);
      jobs = jobs.filter((x) => x !== j);
      await check(`after a prolog killed at "${step}" and its housekeeping`);
    }
  }, 300_000);

  test("kill -9 of a housekeeping at each step (before the marker, after it, after user@ stop, mid-teardown), then the next hook: the node converges", async () => {
    for (const step of ["tearing down", "sending SIGTERM", "done in"]) {
      const j = newJob(new Rng(2), 1001);
      jobs.push(j);
      publish();
      await mustHook("prolog", j.uid, j.id, step);
      await login(USERS[1], `before a housekeeping killed at "${step}"`);
      j.state = 64;
      publish();
      const r = await hook("housekeeping", j.uid, j.id, { killAt: step });
      counts.kills++;
      expect({ step, killed: r.code === 137 || (step === "done in" && r.code === 0) }).toEqual({ step, killed: true });
      // The next hook for bob: the housekeeping run again (or a later job's): it converges.
      await mustHook("housekeeping", j.uid, j.id, `housekeeping killed at "${step}"`);
      jobs = jobs.filter((x) => x !== j);
      await check(`after a housekeeping killed at "${step}" and another`);
    }
  }, 300_000);

  test("KillUnit refused, never answered, or answering NoSuchUnit for a unit whose processes live (a stand-in systemd, the container's real cgroups): the teardown fails naming it, no login let in", async () => {
    for (const [plan, reason] of [
      ["access-denied", (pid: string) => `KillUnit flux-pam-${pid}.scope: Permission denied (org.freedesktop.DBus.Error.AccessDenied)`],
      ["no-reply", (pid: string) => `KillUnit flux-pam-${pid}.scope: no answer from the system bus within 10000 ms`],
      // read as "freed since we looked": then the processes are still there after SIGKILL
      ["no-such-unit", (pid: string) => `processes remain in user-1002.slice after SIGKILL: ${pid}`],
    ] as const) {
      const j = newJob(new Rng(3), 1002);
      jobs.push(j);
      publish();
      await mustHook("prolog", j.uid, j.id, `KillUnit ${plan}`);
      const pid = await login(USERS[2], `before KillUnit ${plan}`);
      expect(pid).toBeDefined();
      j.state = 64;
      publish();
      fake.memberPlans.set("KillUnit", plan);
      const r = await hook("housekeeping", j.uid, j.id, { env: { DBUS_SYSTEM_BUS_ADDRESS: FAKE_BUS } });
      fake.memberPlans.clear();
      expect({ plan, code: r.code, stderr: r.stderr }).toEqual({ plan, code: 1, stderr: `flux-pam-housekeeping[${unitJobId(parseJobId(j.id))}]: ${reason(pid!)}\n` });
      // The signals went to the login's scope, never to the slice as a whole.
      const kills = fake.calls.filter((x) => x.member === "KillUnit").map((x) => x.body[0]);
      expect({ plan, killed: [...new Set(kills)] }).toEqual({ plan, killed: [`flux-pam-${pid}.scope`] });
      // The marker went first: no new login. Nothing was torn down past the failure: no stop, no
      // reload, the slice's drop-ins (and limits) still there.
      expect((await c.exec(["test", "-e", "/run/flux-pam/uid.1002.active"])).code).toBe(1);
      const other = (await c.run(["bash", "-c", "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $!"])).trim();
      const denied = await c.exec([BIN, "session-open", `uri=${URI}`], { env: { PAM_USER: "carol", PAM_SERVICE: "sshd", FLUX_PAM_PID: other } });
      await c.exec(["kill", other]);
      expect([denied.code, denied.stderr]).toEqual([1, "flux-pam session-open: session denied for user carol: no active marker: containment is not set up (no prolog ran, or the last job ended)\n"]);
      expect(fake.calls.map((x) => x.member).filter((m) => ["StopUnit", "Reload", "RevertUnitFiles", "SetUnitProperties"].includes(m))).toEqual([]);
      expect((await c.exec(["test", "-d", "/run/systemd/system.control/user-1002.slice.d"])).code).toBe(0);
      fake.calls.length = 0;
      fake.units.clear();
      // The real systemd's housekeeping then finishes the job.
      await mustHook("housekeeping", j.uid, j.id, `after KillUnit ${plan}`);
      jobs = jobs.filter((x) => x !== j);
      await check(`after KillUnit ${plan} and a real housekeeping`);
    }
  }, 300_000);

  test(`${EVENTS} seeded events for alice, bob and carol: the invariants hold after each`, async () => {
    const rng = new Rng(SEED);
    const running = () => jobs.filter((j) => j.state === 16);
    for (let e = 0; e < EVENTS; e++) {
      counts.events++;
      const user = rng.pick(USERS);
      const roll = rng.int(100);
      let what: string;
      if (roll < 28 && running().filter((j) => j.uid === user.uid).length < 4) {
        const j = newJob(rng, user.uid);
        what = `start ${j.id} of ${user.name} on cores ${formatIdset(j.cores)}${j.gpus.length ? ` gpu ${j.gpus}` : ""}`;
        jobs.push(j);
        publish();
        await mustHook("prolog", j.uid, j.id, `event ${e}: ${what}`);
      } else if (roll < 55 && running().length > 0) {
        const j = rng.pick(running());
        what = `end ${j.id} of uid ${j.uid}`;
        j.state = 64;
        publish();
        await mustHook("housekeeping", j.uid, j.id, `event ${e}: ${what}`);
        jobs = jobs.filter((x) => x !== j);
      } else if (roll < 70) {
        // Several hooks at once: starts and ends of several users, all published first.
        counts.bursts++;
        const ops: { name: "prolog" | "housekeeping"; j: ModelJob }[] = [];
        for (let k = 0; k < 2 + rng.int(4); k++) {
          const u = rng.pick(USERS);
          const mine = running().filter((j) => j.uid === u.uid && !ops.some((o) => o.j === j));
          if (mine.length > 0 && rng.chance(0.5)) {
            const j = rng.pick(mine);
            j.state = 64;
            ops.push({ name: "housekeeping", j });
          } else if (mine.length < 4) {
            const j = newJob(rng, u.uid);
            jobs.push(j);
            ops.push({ name: "prolog", j });
          }
        }
        what = `burst: ${ops.map((o) => `${o.name} ${o.j.id}/${o.j.uid}`).join(", ")}`;
        publish();
        await Promise.all(ops.map((o) => mustHook(o.name, o.j.uid, o.j.id, `event ${e}: ${what}`)));
        jobs = jobs.filter((j) => j.state === 16);
      } else if (roll < 85) {
        what = `login of ${user.name}`;
        await login(user, `event ${e}: ${what}`);
      } else if (roll < 95) {
        counts.kills++;
        const mine = running().filter((j) => j.uid === user.uid);
        const ms = 10 + rng.int(400);
        if (mine.length > 0 && rng.chance(0.5)) {
          const j = rng.pick(mine);
          what = `kill -9 of the housekeeping of ${j.id} (uid ${j.uid}) after ${ms} ms, then it again`;
          j.state = 64;
          publish();
          await hook("housekeeping", j.uid, j.id, { killAfterMs: ms });
          await mustHook("housekeeping", j.uid, j.id, `event ${e}: ${what}`);
          jobs = jobs.filter((x) => x !== j);
        } else {
          const j = newJob(rng, user.uid);
          what = `kill -9 of the prolog of ${j.id} (uid ${j.uid}) after ${ms} ms`;
          jobs.push(j);
          publish();
          const r = await hook("prolog", j.uid, j.id, { killAfterMs: ms });
          if (r.code !== 0) {
            // Killed (or failed): Flux fails the job, which ends, and its housekeeping runs.
            j.state = 64;
            publish();
            await mustHook("housekeeping", j.uid, j.id, `event ${e}: ${what}`);
            jobs = jobs.filter((x) => x !== j);
          }
        }
      } else {
        counts.restarts++;
        what = "broker restart";
        await broker.stop();
        // While it is down: nobody is admitted.
        const a = await c.exec([BIN, "account", `uri=${URI}`, "timeout=1s"], { env: { PAM_USER: user.name } });
        expect({ event: e, downAdmitted: a.code === 0 }).toEqual({ event: e, downAdmitted: false });
        broker = await startBrokerProcess(scenario(), socks);
      }
      await check(`event ${e} (seed ${SEED}): ${what}`);
    }
    // Positive controls: the sequence did admit and deny, and tore slices down.
    expect(counts.admitted).toBeGreaterThan(0);
    expect(counts.denied).toBeGreaterThan(0);
  }, 3_600_000);
});
