// The fault matrix, systemd faults: the system bus absent or mute, each manager method refused,
// a job that ends "failed" or "timeout", a call never answered, on a stand-in systemd of the
// case's own (test/systemd/fake-systemd.ts), against session-open, prolog and housekeeping
// through the compiled binary. A login that cannot be put in its scope is refused; a hook fails
// naming the call, or, where the step is best effort, warns and goes on. Never: a marker without
// a constrained slice, a login without its scope.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { startBroker } from "../broker/broker";
import { BINARY } from "../e2e/harness";
import { type FakeSystemd, type FakeUnit, type JobPlan, startFakeSystemd } from "../systemd/fake-systemd";
import {
  BUDGET_S,
  deniedBySession,
  expectEq,
  expectLine,
  hookEnv,
  hookFailed,
  lockDirWithMarker,
  type MatrixCase,
  NODE,
  type Outcome,
  run,
  sessionArgv,
  sessionEnv,
  TAG,
  UID,
} from "./harness";

type Path = "session-open" | "prolog" | "prolog (further job)" | "housekeeping (jobs remain)" | "housekeeping (last job)" | "housekeeping (again)";

/** A hook's outcome: a refusal (after a best-effort step's warning, with `warned`), a warning it goes on after, or "ok". */
type HookOutcome = { fails: RegExp; warned?: RegExp } | { warns: RegExp } | "ok";

interface SystemdFault {
  name: string;
  /** method -> what the stand-in does with it */
  plans?: Record<string, JobPlan>;
  /** the bus: the stand-in (default), none at all, or one that accepts and never speaks */
  bus?: "absent" | "mute";
  /** units the stand-in holds before the command runs (it holds none otherwise) */
  units?: Record<string, FakeUnit>;
  /** shell lines run in the command's private mount namespace before it starts (its own /run/systemd) */
  mount?: string;
  /** per path: the outcome */
  outcome: Partial<Record<Path, HookOutcome>>;
  /** calls that must have been made ("Member unit"), and calls never made ("Member" or "Member unit"), per path */
  made?: Partial<Record<Path, string[]>>;
  notMade?: Partial<Record<Path, string[]>>;
  /** the next hook of the user, on the same stand-in once its jobs are over: where a failure not waited for shows */
  then?: { path: Path; warns: RegExp };
  /** what the case waits out: the call's own timeout, in s */
  waitsS?: number;
}

const SLICE = `user-${UID}.slice`;
const USER_SERVICE = `user@${UID}.service`;
const esc = (unit: string) => unit.replace(/[.@]/g, "\\$&");
const unitFails = (method: string, unit: string, tail: string) => new RegExp(`^${method} ${esc(unit)}: ${tail}$`);
const notFound = (unit: string) => `Unit ${esc(unit)} not found\\. \\(org\\.freedesktop\\.systemd1\\.NoSuchUnit\\)`;
const noAnswer = (ms = "10000") => `no answer from the system bus within ${ms} ms`;
/** The last-job teardown's refusal when the slice's stop could not be queued: `why`, a pattern. */
const stopFailed = (why: string) =>
  new RegExp(`^could not stop ${esc(SLICE)}, so its limits are not lifted and ${esc(USER_SERVICE)} may still run in it: ${why}$`);
/** the teardown's calls that once were its usual path and are made now only where the slice's state needs them */
const OLD_TEARDOWN = ["SetUnitProperties", "RevertUnitFiles", "Reload"];
/** A stopped slice systemd still holds (another unit refers to it) with the last job's properties, its drop-ins gone. */
const STALE_SLICE: Record<string, FakeUnit> = { [SLICE]: { ActiveState: "inactive", NeedDaemonReload: true, pinned: true } };

const SYSTEMD_FAULTS: SystemdFault[] = [
  {
    name: "system bus absent",
    bus: "absent",
    outcome: {
      "session-open": { fails: /^cannot reach the system bus at unix:path=\S+: .+$/ },
      prolog: { fails: /^cannot reach the system bus at unix:path=\S+: .+$/ },
      "housekeeping (last job)": { fails: /^cannot reach the system bus at unix:path=\S+: .+$/ },
    },
  },
  {
    name: "system bus accepts, never answers",
    bus: "mute",
    outcome: {
      "session-open": { fails: /^connect to unix:path=\S+: no answer from the system bus within \d+ ms$/ },
      prolog: { fails: /^connect to unix:path=\S+: no answer from the system bus within \d+ ms$/ },
    },
    waitsS: 5,
  },
  {
    name: "StartTransientUnit refused",
    plans: { StartTransientUnit: "no-such-unit" },
    outcome: { "session-open": { fails: /^StartTransientUnit flux-pam-\d+\.scope: Unit flux-pam-\d+\.scope not found\. \(org\.freedesktop\.systemd1\.NoSuchUnit\)$/ } },
  },
  {
    name: 'StartTransientUnit: the start job ends "failed"',
    plans: { StartTransientUnit: "failed" },
    outcome: { "session-open": { fails: /^StartTransientUnit flux-pam-\d+\.scope: job \S+ finished with result "failed".*$/ } },
  },
  {
    name: 'StartTransientUnit: the start job ends "timeout"',
    plans: { StartTransientUnit: "timeout" },
    outcome: { "session-open": { fails: /^StartTransientUnit flux-pam-\d+\.scope: job \S+ finished with result "timeout".*$/ } },
  },
  {
    name: "StartTransientUnit: the start job never ends",
    plans: { StartTransientUnit: "never" },
    outcome: { "session-open": { fails: /^StartTransientUnit flux-pam-\d+\.scope: job \S+ did not finish within \d+ ms$/ } },
    waitsS: BUDGET_S,
  },
  {
    name: "StartTransientUnit never returns",
    plans: { StartTransientUnit: "no-reply" },
    outcome: { "session-open": { fails: /^StartTransientUnit flux-pam-\d+\.scope: no answer from the system bus within \d+ ms$/ } },
    waitsS: BUDGET_S,
  },
  {
    name: "SetUnitProperties refused",
    plans: { SetUnitProperties: "no-such-unit" },
    outcome: {
      prolog: { fails: unitFails("SetUnitProperties", SLICE, notFound(SLICE)) },
      "housekeeping (jobs remain)": { fails: unitFails("SetUnitProperties", SLICE, notFound(SLICE)) },
      // The last job's teardown lifts nothing with it (the slice stops; only a slice kept up with
      // processes left, kill-user-slice off, has its devices lifted so): never called there.
      "housekeeping (last job)": "ok",
    },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`] },
    notMade: { "housekeeping (last job)": ["SetUnitProperties"] },
  },
  {
    name: "SetUnitProperties never returns",
    plans: { SetUnitProperties: "no-reply" },
    outcome: { prolog: { fails: unitFails("SetUnitProperties", SLICE, noAnswer()) } },
    waitsS: 10,
  },
  {
    name: "StartUnit of user@ refused",
    plans: { StartUnit: "no-such-unit" },
    // best effort: the slice is the containment; the start is queued, and its refusal comes at once
    outcome: { prolog: { warns: new RegExp(`^warning: could not start ${esc(USER_SERVICE)} \\(slice containment still applies\\): ${unitFails("StartUnit", USER_SERVICE, notFound(USER_SERVICE)).source.slice(1)}`) } },
  },
  {
    name: 'StartUnit of user@: the job ends "failed"',
    plans: { StartUnit: "failed" },
    // The start is queued, not waited for: the prolog knows nothing of its end. The failure shows
    // at the user's next hook here (and in check-user, and systemd's journal).
    outcome: { prolog: "ok" },
    made: { prolog: [`StartUnit ${USER_SERVICE}`] },
    then: {
      path: "prolog",
      warns: new RegExp(`^warning: ${esc(USER_SERVICE)} is failed: an earlier start did not succeed \\(journalctl -u ${esc(USER_SERVICE)}; slice containment still applies\\); starting it again$`),
    },
  },
  {
    name: "user@ up, its stop queued (the teardown of the user's last job, just before this one)",
    units: { [USER_SERVICE]: { ActiveState: "active", job: { id: 78, type: "stop", lasting: true } } },
    // its start is queued all the same (it replaces the stop): read as "active" alone, it was skipped
    outcome: { prolog: "ok" },
    made: { prolog: [`StartUnit ${USER_SERVICE}`] },
  },
  {
    name: "user@ up, no job queued (the control of the row above)",
    units: { [USER_SERVICE]: { ActiveState: "active" } },
    outcome: { prolog: "ok" },
    notMade: { prolog: ["StartUnit"] },
  },
  {
    // A further job's prolog (the marker there, another job of the user running) reads user@'s Job
    // together with its state, where a first job reads it only once the state says up.
    name: "user@ up, its stop queued, at a further job's prolog (the marker there)",
    units: { [USER_SERVICE]: { ActiveState: "active", job: { id: 79, type: "stop", lasting: true } } },
    outcome: { "prolog (further job)": "ok" },
    made: { "prolog (further job)": [`SetUnitProperties ${SLICE}`, `StartUnit ${USER_SERVICE}`] },
  },
  {
    name: "user@ up, no job queued, at a further job's prolog (the control of the row above)",
    units: { [USER_SERVICE]: { ActiveState: "active" } },
    outcome: { "prolog (further job)": "ok" },
    made: { "prolog (further job)": [`SetUnitProperties ${SLICE}`] },
    notMade: { "prolog (further job)": ["StartUnit"] },
  },
  {
    name: "StopUnit of the slice: no such unit (systemd freed it meanwhile)",
    plans: { StopUnit: "no-such-unit" },
    // nothing of the slice is left in systemd's memory: whoever loads it next reads its files afresh
    outcome: { "housekeeping (last job)": "ok" },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`] },
  },
  {
    name: "StopUnit of the slice refused",
    plans: { StopUnit: "access-denied" },
    // The stop is what lifts the limits without a reload: without it they live on in systemd's
    // memory only, and user@ runs on in the slice. The teardown fails (the marker is gone already).
    outcome: { "housekeeping (last job)": { fails: stopFailed(`StopUnit ${esc(SLICE)}: Permission denied \\(org\\.freedesktop\\.DBus\\.Error\\.AccessDenied\\)`) } },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`] },
  },
  {
    name: "StopUnit of the slice never answered",
    plans: { StopUnit: "no-reply" },
    outcome: { "housekeeping (last job)": { fails: stopFailed(`StopUnit ${esc(SLICE)}: ${noAnswer()}`) } },
    waitsS: 10,
  },
  {
    name: 'StopUnit of the slice: the job ends "timeout"',
    plans: { StopUnit: "timeout" },
    // queued, not waited for: the hook is done before systemd's job ends (its journal says how)
    outcome: { "housekeeping (last job)": "ok" },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`] },
  },
  {
    name: "ResetFailedUnit refused",
    plans: { ResetFailedUnit: "no-such-unit" },
    // a failed unit in the slice: its failure is forgotten so that systemd can free the slice; best effort
    units: { [SLICE]: { ActiveState: "active", SliceOf: [USER_SERVICE, `user-runtime-dir@${UID}.service`, "flux-pam-9.scope"] }, "flux-pam-9.scope": { ActiveState: "failed" } },
    outcome: { "housekeeping (last job)": { warns: new RegExp(`^warning: could not reset flux-pam-9\\.scope: ${unitFails("ResetFailedUnit", "flux-pam-9.scope", notFound("flux-pam-9.scope")).source.slice(1)}`) } },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`, "ResetFailedUnit flux-pam-9.scope"] },
    notMade: { "housekeeping (last job)": [`ResetFailedUnit ${USER_SERVICE}`, ...OLD_TEARDOWN] },
  },
  {
    name: "GetUnit never answered",
    plans: { GetUnit: "no-reply" },
    // Only a teardown without the marker looks before it acts: it cannot tell what is left, so it fails.
    outcome: { "housekeeping (last job)": "ok", "housekeeping (again)": { fails: new RegExp(`^GetUnit (${esc(USER_SERVICE)}|${esc(SLICE)}): ${noAnswer()}$`) } },
    notMade: { "housekeeping (last job)": ["GetUnit"], "housekeeping (again)": ["StopUnit", ...OLD_TEARDOWN] },
    waitsS: 10,
  },
  {
    name: "user@'s start still under way, never ending (a start job that stays queued)",
    // The stop waits for a start under way (cutting it short would fail user-runtime-dir@), 10 s at most.
    units: { [USER_SERVICE]: { ActiveState: "activating", job: { id: 77, type: "start", lasting: true } }, [SLICE]: { ActiveState: "active" } },
    outcome: { "housekeeping (last job)": { warns: new RegExp(`^warning: ${esc(USER_SERVICE)} is still starting after 10 s: stopping ${esc(SLICE)} all the same$`) } },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`] },
    notMade: { "housekeeping (last job)": [...OLD_TEARDOWN] },
    waitsS: 10,
  },
  {
    name: "Get of a unit's properties never answered",
    plans: { Get: "no-reply" },
    units: { [USER_SERVICE]: { ActiveState: "active" }, [SLICE]: { ActiveState: "active" } },
    outcome: {
      // user@'s state unknown: its start is queued all the same, and the hook says it could not look
      prolog: { warns: new RegExp(`^warning: could not read the state of ${esc(USER_SERVICE)}: Get ${esc(USER_SERVICE)}: no answer from the system bus within \\d+ ms$`) },
      // user@'s state and the slice's units unknown: the stop is queued all the same, nothing reset
      "housekeeping (last job)": "ok",
      "housekeeping (again)": { fails: new RegExp(`^Get (${esc(USER_SERVICE)}|${esc(SLICE)}): no answer from the system bus within \\d+ ms$`) },
    },
    made: { prolog: [`StartUnit ${USER_SERVICE}`], "housekeeping (last job)": [`StopUnit ${SLICE}`] },
    notMade: { "housekeeping (last job)": ["ResetFailedUnit", ...OLD_TEARDOWN], "housekeeping (again)": ["StopUnit", ...OLD_TEARDOWN] },
    waitsS: 10,
  },
  {
    name: "RevertUnitFiles refused",
    plans: { RevertUnitFiles: "no-such-unit" },
    // no hook calls it any more: the teardown removes the slice's drop-ins itself
    outcome: { "housekeeping (last job)": "ok", "housekeeping (again)": "ok" },
    notMade: { "housekeeping (last job)": ["RevertUnitFiles"], "housekeeping (again)": ["RevertUnitFiles"] },
  },
  {
    name: "Reload refused",
    plans: { Reload: "access-denied" },
    // the usual teardown does not reload; a teardown that finds nothing left calls nothing that writes
    outcome: { "housekeeping (last job)": "ok", "housekeeping (again)": "ok" },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`] },
    notMade: { "housekeeping (last job)": OLD_TEARDOWN, "housekeeping (again)": ["StopUnit", "ResetFailedUnit", ...OLD_TEARDOWN] },
  },
  {
    name: "Reload refused, a stopped slice systemd still holds",
    plans: { Reload: "access-denied" },
    units: STALE_SLICE,
    outcome: {
      // the first teardown (the marker there) stops the slice and does not look: no reload
      "housekeeping (last job)": "ok",
      // the next one finds it still held with the gone drop-ins' properties: a reload is the only way out
      "housekeeping (again)": {
        warned: new RegExp(`^warning: systemd holds the stopped ${esc(SLICE)} with runtime properties whose drop-ins are gone \\(systemctl list-dependencies --reverse ${esc(SLICE)}\\): reloading systemd$`),
        fails: /^Reload: Permission denied \(org\.freedesktop\.DBus\.Error\.AccessDenied\)$/,
      },
    },
    made: { "housekeeping (last job)": [`StopUnit ${SLICE}`], "housekeeping (again)": ["Reload"] },
    notMade: { "housekeeping (last job)": OLD_TEARDOWN, "housekeeping (again)": ["StopUnit"] },
  },
  {
    name: "the slice's runtime drop-ins cannot be removed (EROFS)",
    // this command's own /run/systemd, read-only, holding a drop-in of the slice
    mount: `mount -t tmpfs -o mode=0755 tmpfs /run/systemd\nmkdir -p /run/systemd/system.control/${SLICE}.d\necho '[Slice]' >/run/systemd/system.control/${SLICE}.d/50-AllowedCPUs.conf\nmount -o remount,ro /run/systemd`,
    // not best effort: the slice keeps its limits and stays up (no stop queued); the node drains
    outcome: { "housekeeping (last job)": { fails: new RegExp(`^EROFS: read-only file system, unlink '/run/systemd/system\\.control/${esc(SLICE)}\\.d/50-AllowedCPUs\\.conf'$`) } },
    notMade: { "housekeeping (last job)": ["StopUnit", ...OLD_TEARDOWN] },
  },
];

const PATHS: Path[] = ["session-open", "prolog", "prolog (further job)", "housekeeping (jobs remain)", "housekeeping (last job)", "housekeeping (again)"];

/** The calls as "Member unit" (the unit the call names, for a Properties call the unit of its path). */
function callNames(fake: FakeSystemd): string[] {
  return fake.calls.map((c) => (typeof c.body[0] === "string" && c.path === undefined ? `${c.member} ${c.body[0]}` : c.member));
}

/** A mute bus: accepts, never says a word (a wedged dbus-daemon). */
function muteBus(path: string): { stop(): void } {
  const l = Bun.listen<undefined>({ unix: path, socket: { data() {} } });
  return { stop: () => l.stop(true) };
}

/** Waits (a bound, not a timed assertion) until the stand-in's jobs are over, but those that never end. */
async function jobsOver(fake: FakeSystemd, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(10)) if (![...fake.units.values()].some((u) => u.job)) return;
}

function expectOutcome(o: HookOutcome, p: Path, r: Outcome): void {
  const hookName = p.startsWith("prolog") ? "prolog" : "housekeeping";
  if (o !== "ok" && "fails" in o) {
    if (p === "session-open") deniedBySession(o.fails)(r);
    else hookFailed(hookName, o.fails, TAG, o.warned)(r);
  } else {
    expectEq({ code: r.code, stdout: r.stdout }, { code: 0, stdout: p === "session-open" ? r.stdout : "" });
    if (o === "ok") expectEq({ stderr: r.stderr }, { stderr: "" });
    else expectLine(r.stderr, `flux-pam-${hookName}[${TAG}]: `, o.warns);
  }
}

export function systemdCases(): MatrixCase[] {
  const out: MatrixCase[] = [];
  for (const f of SYSTEMD_FAULTS)
    for (const p of PATHS) {
      const o = f.outcome[p];
      if (o === undefined) continue;
      const hook = p !== "session-open";
      const expectText =
        (o === "ok" ? "goes on (exit 0)" : "warns" in o ? "warns and goes on (exit 0)" : !hook ? "refused: no scope, no login" : `${o.warned ? "warns, then " : ""}fails naming the ${f.mount ? "path" : "call"}`) +
        (f.then ? `; the next ${f.then.path} warns` : "");
      out.push({
        group: "systemd fault",
        fault: f.name,
        path: p,
        expect: expectText,
        slow: f.waitsS !== undefined,
        // session-open: its own budget bounds it all; a hook: the call's own timeout, and the rest of its work
        deadlineMs: hook ? ((f.waitsS ?? 0) + 2) * 1000 : BUDGET_S * 1000,
        async run(env) {
          const caseDir = env.caseDir();
          const fake = await startFakeSystemd(caseDir);
          for (const [m, plan] of Object.entries(f.plans ?? {})) fake.memberPlans.set(m, plan);
          for (const [u, state] of Object.entries(f.units ?? {})) fake.units.set(u, { ...state });
          const mute = f.bus === "mute" ? muteBus(join(caseDir, "mute-bus.sock")) : undefined;
          const bus = f.bus === "absent" ? `unix:path=${join(caseDir, "no-bus.sock")}` : f.bus === "mute" ? `unix:path=${join(caseDir, "mute-bus.sock")}` : fake.address;
          // jobs remain, or a further job: another RUN job of the user on this rank besides the hook's own
          const remain = startBroker(join(caseDir, "b.sock"), { ...NODE, jobs: [...NODE.jobs!, { id: "2000", userid: UID, cores: "1" }] });
          const uri = p === "housekeeping (jobs remain)" || p === "prolog (further job)" ? `local://${remain.path}` : env.good;
          // again: the last job's housekeeping once more, the marker already gone (another one tore down)
          const lockDir = p === "prolog" || p === "housekeeping (again)" ? join(caseDir, "locks") : lockDirWithMarker(caseDir, "locks");
          const marker = join(lockDir, `uid.${UID}.active`);
          const command = (q: Path) => [BINARY, q.startsWith("housekeeping") ? "housekeeping" : "prolog"];
          try {
            let r: Outcome;
            if (p === "session-open") r = await run(sessionArgv(uri, lockDir), sessionEnv(bus));
            else r = await run(command(p), hookEnv(uri, lockDir, bus), f.mount);
            const calls = callNames(fake);
            const markerThere = existsSync(marker);
            let next: Outcome | undefined;
            if (f.then) {
              await jobsOver(fake);
              next = await run(command(f.then.path), hookEnv(uri, lockDir, bus));
            }
            return {
              ms: r.ms,
              check() {
                expectOutcome(o, p, r);
                if (f.then) expectOutcome({ warns: f.then.warns }, f.then.path, next!);
                const called = (name: string) => calls.some((c) => c === name || c.startsWith(`${name} `));
                for (const m of f.made?.[p] ?? []) expectEq({ called: m, made: called(m) }, { called: m, made: true });
                for (const m of f.notMade?.[p] ?? []) expectEq({ called: m, made: called(m) }, { called: m, made: false });
                // The invariants: a marker only over a slice that got its limits; the last job's
                // marker gone before anything else (and a teardown never makes one); a refused login
                // made no scope it waited for.
                const constrained = calls.includes(`SetUnitProperties ${SLICE}`) && f.plans?.SetUnitProperties === undefined;
                if (p === "prolog") expectEq({ marker: markerThere }, { marker: r.code === 0 && constrained });
                if (p === "housekeeping (jobs remain)" || p === "prolog (further job)") expectEq({ marker: markerThere }, { marker: true });
                if (p === "housekeeping (last job)") expectEq({ marker: markerThere }, { marker: f.bus === "absent" });
                if (p === "housekeeping (again)") expectEq({ marker: markerThere }, { marker: false });
              },
            };
          } finally {
            remain.stop();
            mute?.stop();
            await fake.close();
          }
        },
      });
    }
  return out;
}
