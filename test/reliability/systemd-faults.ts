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
import { type JobPlan, startFakeSystemd } from "../systemd/fake-systemd";
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

type Path = "session-open" | "prolog" | "housekeeping (jobs remain)" | "housekeeping (last job)";

interface SystemdFault {
  name: string;
  /** method -> what the stand-in does with it */
  plans?: Record<string, JobPlan>;
  /** the bus: the stand-in (default), none at all, or one that accepts and never speaks */
  bus?: "absent" | "mute";
  /** per path: the refusal, a warning the hook gives as it goes on, or "ok" */
  outcome: Partial<Record<Path, { fails: RegExp } | { warns: RegExp } | "ok">>;
  /** what the case waits out: the call's own timeout, in s */
  waitsS?: number;
}

const SLICE = `user-${UID}.slice`;
const USER_SERVICE = `user@${UID}.service`;
const unitFails = (method: string, unit: string, tail: string) => new RegExp(`^${method} ${unit.replace(/[.@]/g, "\\$&")}: ${tail}$`);

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
      prolog: { fails: unitFails("SetUnitProperties", SLICE, `Unit ${SLICE} not found\\. \\(org\\.freedesktop\\.systemd1\\.NoSuchUnit\\)`) },
      "housekeeping (jobs remain)": { fails: unitFails("SetUnitProperties", SLICE, `Unit ${SLICE} not found\\. \\(org\\.freedesktop\\.systemd1\\.NoSuchUnit\\)`) },
      // lifting the device filter is best effort: the revert still runs
      "housekeeping (last job)": { warns: /^warning: could not lift the device restrictions of user-1\.slice before its revert: SetUnitProperties user-1\.slice: .+$/ },
    },
  },
  {
    name: "SetUnitProperties never returns",
    plans: { SetUnitProperties: "no-reply" },
    outcome: { prolog: { fails: unitFails("SetUnitProperties", SLICE, "no answer from the system bus within 10000 ms") } },
    waitsS: 10,
  },
  {
    name: "StartUnit of user@ refused",
    plans: { StartUnit: "no-such-unit" },
    // best effort: the slice is the containment
    outcome: { prolog: { warns: /^warning: could not start user@1\.service \(slice containment still applies\): StartUnit user@1\.service: .+$/ } },
  },
  {
    name: 'StartUnit of user@: the job ends "failed"',
    plans: { StartUnit: "failed" },
    outcome: { prolog: { warns: /^warning: could not start user@1\.service \(slice containment still applies\): StartUnit user@1\.service: job \S+ finished with result "failed".*$/ } },
  },
  {
    name: "StopUnit refused",
    plans: { StopUnit: "no-such-unit" },
    outcome: { "housekeeping (last job)": { warns: /^warning: could not stop user@1\.service: StopUnit user@1\.service: .+$/ } },
  },
  {
    name: 'StopUnit: the job ends "timeout"',
    plans: { StopUnit: "timeout" },
    outcome: { "housekeeping (last job)": { warns: /^warning: could not stop user@1\.service: StopUnit user@1\.service: job \S+ finished with result "timeout".*$/ } },
  },
  {
    name: "RevertUnitFiles refused",
    plans: { RevertUnitFiles: "no-such-unit" },
    outcome: { "housekeeping (last job)": { fails: unitFails("RevertUnitFiles", SLICE, `Unit ${SLICE} not found\\. \\(org\\.freedesktop\\.systemd1\\.NoSuchUnit\\)`) } },
  },
  {
    name: "Reload (after the revert) refused",
    plans: { Reload: "no-such-unit" },
    outcome: { "housekeeping (last job)": { fails: /^Reload user-1\.slice: .+$/ } },
  },
  {
    name: "logind's GetUser never returns (linger read from its file)",
    plans: { GetUser: "no-reply" },
    outcome: { prolog: "ok" },
    waitsS: 5,
  },
];

const PATHS: Path[] = ["session-open", "prolog", "housekeeping (jobs remain)", "housekeeping (last job)"];

/** A mute bus: accepts, never says a word (a wedged dbus-daemon). */
function muteBus(path: string): { stop(): void } {
  const l = Bun.listen<undefined>({ unix: path, socket: { data() {} } });
  return { stop: () => l.stop(true) };
}

export function systemdCases(): MatrixCase[] {
  const out: MatrixCase[] = [];
  for (const f of SYSTEMD_FAULTS)
    for (const p of PATHS) {
      const o = f.outcome[p];
      if (o === undefined) continue;
      const hook = p !== "session-open";
      const expectText =
        o === "ok" ? "goes on (exit 0)" : "warns" in o ? "warns and goes on (exit 0)" : hook ? "fails naming the call" : "refused: no scope, no login";
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
          const mute = f.bus === "mute" ? muteBus(join(caseDir, "mute-bus.sock")) : undefined;
          const bus = f.bus === "absent" ? `unix:path=${join(caseDir, "no-bus.sock")}` : f.bus === "mute" ? `unix:path=${join(caseDir, "mute-bus.sock")}` : fake.address;
          // jobs remain: another RUN job of the user on this rank besides the hook's own
          const remain = startBroker(join(caseDir, "b.sock"), { ...NODE, jobs: [...NODE.jobs!, { id: "2000", userid: UID, cores: "1" }] });
          const uri = p === "housekeeping (jobs remain)" ? `local://${remain.path}` : env.good;
          const lockDir = p === "prolog" ? join(caseDir, "locks") : lockDirWithMarker(caseDir, "locks");
          const marker = join(lockDir, `uid.${UID}.active`);
          try {
            let r: Outcome;
            if (p === "session-open") r = await run(sessionArgv(uri, lockDir), sessionEnv(bus));
            else r = await run([BINARY, p.startsWith("housekeeping") ? "housekeeping" : "prolog"], hookEnv(uri, lockDir, bus));
            const calls = fake.calls.map((c) => c.member);
            const markerThere = existsSync(marker);
            return {
              ms: r.ms,
              check() {
                const hookName = p === "prolog" ? "prolog" : "housekeeping";
                if (o !== "ok" && "fails" in o) {
                  if (p === "session-open") deniedBySession(o.fails)(r);
                  else hookFailed(hookName, o.fails)(r);
                } else {
                  expectEq({ code: r.code, stdout: r.stdout }, { code: 0, stdout: p === "session-open" ? r.stdout : "" });
                  if (o === "ok") expectEq({ stderr: r.stderr }, { stderr: "" });
                  else expectLine(r.stderr, `flux-pam-${hookName}[${TAG}]: `, o.warns);
                }
                // The invariants: a marker only over a slice that got its limits; the last job's
                // marker gone before anything else; a refused login made no scope it waited for.
                const constrained = calls.includes("SetUnitProperties") && f.plans?.SetUnitProperties === undefined;
                if (p === "prolog") expectEq({ marker: markerThere }, { marker: r.code === 0 && constrained });
                if (p === "housekeeping (jobs remain)") expectEq({ marker: markerThere }, { marker: true });
                if (p === "housekeeping (last job)") expectEq({ marker: markerThere }, { marker: f.bus === "absent" });
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
