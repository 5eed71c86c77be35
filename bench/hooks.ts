// How long prolog, housekeeping and session-open take on real systemd 252 (systemd-nspawn
// container) against the test broker, path by path: the user's first job, a further job, a job
// ending while others remain, the last job, 8 last jobs ending at once, a login, and the same with
// 1000 running jobs. For each: the median wall time and CPU time (runs without debug output), the
// part spent waiting on systemd (median over further runs with FLUX_PAM_SCRIPTS_DEBUG / `debug`,
// whose last line says it; "-" for a binary that does not), the manager reloads the timed runs
// caused (systemd logs "Reloading." each time), and the peak RSS of one run. Timed inside the
// container, so nsenter is not counted.
//
// Usage: bun bench/hooks.ts [RUNS]   (root; make bench builds first)
//        FLUX_PAM_BENCH_BIN=/path/to/flux-pam bun bench/hooks.ts   (time another build of the binary)
//        FLUX_PAM_BENCH_VS=/path/to/flux-pam bun bench/hooks.ts    (before/after: each timed run is
//          paired with one of that binary, their order alternating pair by pair; adds its median and
//          the median of the per-pair ratios, which a machine's drift during the run does not move;
//          the floor row pairs the floor with itself, so its ratio shows what noise is left; each
//          ratio comes with a 90% bootstrap interval of that median: holding 1, it shows no change)
//        FLUX_PAM_BENCH_ONLY=TEXT bun bench/hooks.ts   (only the paths whose name contains TEXT, and
//          the floor; no RSS)

import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Scenario, ScenarioJob } from "../test/broker/scenario";
import { type BrokerProcess, startBrokerProcess, tempDir } from "../test/e2e/harness";
import { BUILD, bootContainer, containerSkipReason, settleFunctions } from "../test/systemd/container";
import { buildFloor } from "./floor";
import { evictFromPageCache } from "./page-cache";
import { median, medianInterval } from "./stats";

const RUNS = Number(process.argv[2] ?? 20);
/** runs with debug output, for systemd's share */
const DEBUG_RUNS = Math.min(RUNS, 10);
const UID = 1000;
const ENDED = 64; // INACTIVE: the job whose housekeeping runs
const GNU_TIME = "/usr/bin/time";
const OTHER_BIN = process.env.FLUX_PAM_BENCH_BIN;
const BIN = OTHER_BIN ? `/opt/bench-bin/${basename(OTHER_BIN)}` : "/opt/flux-pam/flux-pam";
const VS_BIN = process.env.FLUX_PAM_BENCH_VS;
const VS = VS_BIN ? `/opt/bench-vs/${basename(VS_BIN)}` : undefined;
const ONLY = process.env.FLUX_PAM_BENCH_ONLY;

function node(jobs: ScenarioJob[], kill = true): Scenario {
  return {
    rank: 0,
    owner: 64999,
    config: { pam: { "manage-user-slice": true, "kill-user-slice": kill }, exec: { "sdexec-constrain-resources": true } },
    jobs,
    mapper: "auto",
  };
}

const job = (id: number, state?: number): ScenarioJob => ({ id: String(id), userid: UID, cores: String(id % 2), ...(state ? { state } : {}) });
const jobs = (from: number, n: number, state?: number) => Array.from({ length: n }, (_, i) => job(from + i, state));

/** One broker per node state, so that a loop inside the container switches state by FLUX_URI alone. */
const STATES: Record<string, Scenario> = {
  run: node([job(1000)]), // the user's one job runs
  two: node([job(1000), job(1001)]), // a further job starts
  remain: node([job(999, ENDED), job(1000)]), // 999 ended, 1000 remains
  ended: node([job(1000, ENDED)]), // the last job ended
  ended8: node(jobs(1000, 8, ENDED)), // 8 jobs ended at once
  many: node(jobs(1000, 1000)),
  manyRemain: node([job(999, ENDED), ...jobs(1000, 1000)]),
};

interface Row {
  path: string;
  wall: number[];
  /** with FLUX_PAM_BENCH_VS: the other binary's runs, and wall / its wall pair by pair */
  vsWall: number[];
  ratios: number[];
  /** CPU time of each timed run (user + system, ms; not for 8 at once), this binary's and the other's */
  cpu: number[];
  vsCpu: number[];
  waits: number[];
  calls: number[];
  reloads: number;
  rssMiB?: number;
}

async function main() {
  const skip = containerSkipReason();
  if (skip) {
    console.log(`hooks benchmark skipped: ${skip}`);
    return;
  }
  if (!existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} is missing (apt-get install time): it measures peak RSS`);
  const dir = tempDir("flux-pam-bench-");
  const socks = join(dir.path, "socks");
  mkdirSync(socks);
  chmodSync(socks, 0o755);
  const brokers: BrokerProcess[] = [];
  for (const [name, s] of Object.entries(STATES)) brokers.push(await startBrokerProcess(s, socks, name));
  // The process floor on this machine (bench/floor.ts): a program that only writes a line.
  const floorDir = join(dir.path, "floor");
  await buildFloor(floorDir, "floor", 'require("node:fs").writeSync(1, "floor\\n");\n');
  const binds = [
    { host: floorDir, container: "/opt/bench-floor", readOnly: true },
    { host: socks, container: "/run/test-flux" },
    { host: GNU_TIME, container: "/usr/local/bin/gtime", readOnly: true },
    ...(OTHER_BIN ? [{ host: dirname(OTHER_BIN), container: "/opt/bench-bin", readOnly: true }] : []),
    ...(VS_BIN ? [{ host: dirname(VS_BIN), container: "/opt/bench-vs", readOnly: true }] : []),
  ];
  // The floor was just written, the binaries were not: all of them from disk (bench/page-cache.ts).
  const binaries = [join(floorDir, "floor"), OTHER_BIN ?? join(BUILD, "flux-pam"), ...(VS_BIN ? [VS_BIN] : [])];
  await evictFromPageCache(...binaries);
  const c = await bootContainer({ binds });
  const rows: Row[] = [];
  try {
    const prelude = preludeScript();
    const sh = (script: string) => c.run(["bash", "-c", `${prelude}\n${script}`], { timeoutMs: 900_000 });
    // Warm the page cache (each binary read back once) and user@'s first start.
    await sh(`/opt/bench-floor/floor >/dev/null; ${VS ? `${VS} --version >/dev/null; ` : ""}hook run prolog 1000 >/dev/null; settle_up; hook ended housekeeping 1000 >/dev/null; settle_down`);

    const floor = await path(sh, "bare Bun exec (the process floor)", `timed_floor`);
    const timedRow = async (name: string, body: string) => {
      if (ONLY === undefined || name.includes(ONLY)) rows.push(await path(sh, name, body));
    };
    await timedRow("prolog, the user's first job", `settle_down; timed run prolog 1000; settle_up; hook ended housekeeping 1000 >/dev/null`);
    await sh(`hook run prolog 1000 >/dev/null; settle_up`);
    await timedRow("prolog, a further job", `timed two prolog 1001`);
    await timedRow("housekeeping, jobs remain", `timed remain housekeeping 999`);
    await sh(`hook ended housekeeping 1000 >/dev/null`); // the rows above left the user's jobs running
    await timedRow("housekeeping, the last job", `settle_down; hook run prolog 1000 >/dev/null; settle_up; timed ended housekeeping 1000`);
    await timedRow("8 last-job housekeepings at once (slowest)", `settle_down; hook run prolog 1000 >/dev/null; settle_up; timed8`);
    await sh(`hook run prolog 1000 >/dev/null; settle_up`);
    await timedRow("session-open (start job awaited)", `timed_session`);
    await timedRow("prolog, a further job, 1000 jobs", `timed many prolog 1000`);
    await timedRow("housekeeping, jobs remain, 1000 jobs", `timed manyRemain housekeeping 999`);

    let cold: number | undefined;
    /** commands timed for their peak RSS only, on this node as the hooks left it */
    const rssOnly: [string, number][] = [];
    if (ONLY === undefined) {
      // Peak RSS, one run of each (GNU time's %M, KiB), the binary read from disk again.
      await evictFromPageCache(...binaries);
      const rss = async (script: string) => Number((await sh(script)).trim().split("\n").at(-1)) / 1024;
      const byPath = new Map(rows.map((r) => [r.path, r]));
      const set = (p: string, v: number) => (byPath.get(p)!.rssMiB = v);
      await sh(`hook ended housekeeping 1000 >/dev/null; settle_down`);
      set("prolog, the user's first job", await rss(`rss run prolog 1000`));
      await sh(`settle_up`);
      set("prolog, a further job", await rss(`rss two prolog 1001`));
      set("housekeeping, jobs remain", await rss(`rss remain housekeeping 999`));
      set("session-open (start job awaited)", await rss(`sleep 300 & p=$!; PAM_USER=alice PAM_SERVICE=sshd FLUX_PAM_PID=$p gtime -f %M ${BIN} session-open uri=$(uri run) 2>&1 >/dev/null | tail -1; kill $p`));
      // The record of the jobs' shares holds the 999 others, as it does after the 1000th job's
      // prolog; without it (the first hook after an upgrade) every R is asked for: the cold row.
      cold = await rss(`rm -f /run/flux-pam/uid.${UID}.shares; rss many prolog 1000`);
      set("prolog, a further job, 1000 jobs", await rss(`rss many prolog 1000`));
      set("housekeeping, jobs remain, 1000 jobs", await rss(`rss manyRemain housekeeping 999`));
      set("housekeeping, the last job", await rss(`rss ended housekeeping 1000`));
      await sh(`hook run prolog 1000 >/dev/null; settle_up`);
      const peak = (args: string) => rss(`gtime -f %M ${BIN} ${args} 2>&1 >/dev/null | tail -1`);
      rssOnly.push(["check-user (peak RSS only)", await peak("check-user alice --uri $(uri run)")]);
      rssOnly.push(["status, 1000 jobs (peak RSS only)", await peak("status alice --uri $(uri many)")]);
      rssOnly.push(["reconcile dry run, 1000 jobs (peak RSS only)", await peak("reconcile alice --dry-run --uri $(uri many)")]);
      rssOnly.push(["doctor (peak RSS only)", await peak("doctor --uri $(uri run)")]);
    }

    console.log(`flux-pam hooks on real systemd 252 (nspawn container), ${BIN}, median of ${RUNS} runs${VS ? `, each paired with ${VS}` : ""}`);
    const floorMs = median(floor.wall);
    const med = (xs: number[], digits = 1) => (xs.length ? median(xs).toFixed(digits) : "-");
    const interval = (xs: number[]) => {
      const i = medianInterval(xs);
      return i ? `${i[0].toFixed(2)}-${i[1].toFixed(2)}` : "-";
    };
    const vsCols = (r: Row) => (VS ? ` ${med(r.vsWall).padStart(7)} ${med(r.ratios, 3).padStart(6)} ${interval(r.ratios).padStart(9)} ${med(r.vsCpu, 0).padStart(6)}` : "");
    console.log(
      `${"path".padEnd(44)} ${"wall ms".padStart(8)} ${"systemd ms".padStart(10)} ${"own+broker".padStart(10)} ${"calls".padStart(5)} ${"reloads".padStart(7)} ${"RSS MiB".padStart(7)} ${"over floor".padStart(10)} ${"cpu ms".padStart(6)}${VS ? ` ${"vs ms".padStart(7)} ${"ratio".padStart(6)} ${"90%".padStart(9)} ${"vs cpu".padStart(6)}` : ""}`,
    );
    console.log(`${floor.path.padEnd(44)} ${floorMs.toFixed(1).padStart(8)}${"".padStart(56)} ${med(floor.cpu, 0).padStart(6)}${vsCols(floor)}`);
    for (const r of rows) {
      const wall = median(r.wall);
      const wait = r.waits.length ? median(r.waits) : undefined;
      console.log(
        `${r.path.padEnd(44)} ${wall.toFixed(1).padStart(8)} ${(wait === undefined ? "-" : wait.toFixed(1)).padStart(10)} ${(wait === undefined ? "-" : (wall - wait).toFixed(1)).padStart(10)} ${(r.calls.length ? String(median(r.calls)) : "-").padStart(5)} ${String(r.reloads).padStart(7)} ${(r.rssMiB === undefined ? "-" : r.rssMiB.toFixed(1)).padStart(7)} ${(wall - floorMs).toFixed(1).padStart(10)} ${med(r.cpu, 0).padStart(6)}${vsCols(r)}`,
      );
    }
    const rssRow = (name: string, mib: number) => console.log(`${name.padEnd(44)} ${"".padStart(8)} ${"".padStart(10)} ${"".padStart(10)} ${"".padStart(5)} ${"".padStart(7)} ${mib.toFixed(1).padStart(7)}`);
    if (cold !== undefined) rssRow("prolog, 1000 jobs, no record of shares (RSS)", cold);
    for (const [name, mib] of rssOnly) rssRow(name, mib);
    console.log("systemd ms: time with a call to systemd or a job of its outstanding (the hook's debug line); own+broker: the rest of the wall time (process start, broker, our code); over floor: wall time less the bare Bun exec's; cpu ms: the process's own CPU time (user + system, getrusage, whole ms), which the machine's other load moves less than wall time");
    if (VS)
      console.log(
        "vs ms, vs cpu: the paired binary's medians; ratio: the median of wall / its wall, pair by pair (below 1: this binary is faster); 90%: a bootstrap interval of that median (bench/stats.ts): one that holds 1 means this run showed no difference",
      );
  } finally {
    await c.stop();
    for (const b of brokers) await b.stop();
    dir.remove();
  }

  async function path(sh: (s: string) => Promise<string>, name: string, body: string): Promise<Row> {
    // With a binary to pair with: A (this one) and V (the other) in turn, their order swapped every pair.
    const timedRuns = VS
      ? `for i in $(seq ${RUNS}); do if [ $((i % 2)) = 0 ]; then o="A V"; else o="V A"; fi; for TAG in $o; do if [ $TAG = A ]; then B=${BIN}; else B=${VS}; fi; DBG= ; ${body}; done; done; B=${BIN}; TAG=A`
      : `for i in $(seq ${RUNS}); do DBG= ; ${body}; done`;
    const out = await sh(`${timedRuns}; for i in $(seq ${DEBUG_RUNS}); do DBG=1; ${body}; done`);
    const row: Row = { path: name, wall: [], vsWall: [], ratios: [], cpu: [], vsCpu: [], waits: [], calls: [], reloads: 0 };
    for (const line of out.trim().split("\n")) {
      // one line per timed run: TAG DEBUG WALL_US RELOADS CALLS WAIT_MS [CPU_MS] (- - when the binary
      // does not say; no CPU for 8 at once)
      const [tag, debug, wall, reloads, calls, wait, cpu] = line.split(" ");
      if (tag === "V") {
        row.vsWall.push(Number(wall) / 1000);
        if (debug === "0" && cpu !== undefined) row.vsCpu.push(Number(cpu));
        continue;
      }
      row.reloads += Number(reloads);
      if (debug === "0") {
        row.wall.push(Number(wall) / 1000);
        if (cpu !== undefined) row.cpu.push(Number(cpu));
      } else if (calls !== undefined && calls !== "-") {
        row.calls.push(Number(calls));
        row.waits.push(Number(wait));
      }
    }
    row.ratios = row.vsWall.map((v, i) => row.wall[i]! / v);
    return row;
  }
}

/** Bash functions the loops use inside the container. */
function preludeScript(): string {
  return `
set -e
B=${BIN}
uri() { echo "local:///run/test-flux/$1.sock"; }
DBG=
# FLUX_PAM_SCRIPTS_DEBUG only when DBG is set: debug output is not free
# The hook run straight from bash, as a runner execs it: no env(1), no $(...) subshell in the timed part.
run_hook() {
  if [ -n "$DBG" ]; then FLUX_URI=local:///run/test-flux/$1.sock FLUX_JOB_USERID=${UID} FLUX_JOB_ID=$3 FLUX_PAM_SCRIPTS_DEBUG=1 $B $2
  else FLUX_URI=local:///run/test-flux/$1.sock FLUX_JOB_USERID=${UID} FLUX_JOB_ID=$3 $B $2; fi
}
hook() { run_hook "$@" 2>/tmp/hook.err || { cat /tmp/hook.err >&2; exit 1; }; }
reloads() { journalctl --sync; journalctl -b -o cat _PID=1 --no-pager | grep -c '^Reloading' || true; }
# systemd's own wait, as the debug line says it: "systemd: N calls, X ms waiting"
waited() { sed -n 's/.*systemd: \\([0-9]*\\) calls\\?, \\([0-9.]*\\) ms waiting.*/\\1 \\2/p' "$1" | tail -1; }
${settleFunctions(UID)}
# CPU time (user + system, ms) of this shell's waited-for children so far, from the times builtin
# (getrusage, ms digits), into CPU: no subshell, so the children are this shell's own.
children_cpu() {
  times >/tmp/times.$$
  local _s _u cu cs
  { read -r _u _s; read -r cu cs; } </tmp/times.$$
  CPU=$(( $(ms_of "$cu") + $(ms_of "$cs") ))
}
ms_of() { local m=\${1%%m*} r=\${1#*m}; r=\${r%s}; echo $(( m * 60000 + 10#\${r/./} )); }
timed() {
  local r0=$(reloads) s e c0
  children_cpu; c0=$CPU
  s=\${EPOCHREALTIME/./}; hook "$@"; e=\${EPOCHREALTIME/./}
  children_cpu
  local w=$(waited /tmp/hook.err); echo "\${TAG:-A} \${DBG:-0} $(( e - s )) $(( $(reloads) - r0 )) \${w:-- -} $(( CPU - c0 ))"
}
timed8() {
  local r0=$(reloads) s e slowest=0
  s=\${EPOCHREALTIME/./}
  for j in 0 1 2 3 4 5 6 7; do
    ( run_hook ended8 housekeeping $((1000 + j)) 2>/tmp/hook8.$j.err || { cat /tmp/hook8.$j.err >&2; exit 1; }; e=\${EPOCHREALTIME/./}; echo $(( e - s )) >/tmp/hook8.$j.t ) &
  done
  wait
  local w=-
  for j in 0 1 2 3 4 5 6 7; do
    t=$(cat /tmp/hook8.$j.t); if [ "$t" -gt "$slowest" ]; then slowest=$t; w=$(waited /tmp/hook8.$j.err); fi
  done
  echo "\${TAG:-A} \${DBG:-0} $slowest $(( $(reloads) - r0 )) \${w:-- -}"
}
timed_floor() {
  local s e
  local c0
  children_cpu; c0=$CPU
  s=\${EPOCHREALTIME/./}; /opt/bench-floor/floor >/dev/null; e=\${EPOCHREALTIME/./}
  children_cpu
  echo "\${TAG:-A} \${DBG:-0} $(( e - s )) 0 - - $(( CPU - c0 ))"
}
# The login's PAM process lives in sshd's service cgroup, inside the container's tree (nsenter
# alone leaves this shell in the host's): a stand-in service's cgroup, entered once.
login_cgroup() {
  local cg=/sys/fs/cgroup/system.slice/bench-sshd.service
  systemctl -q is-active bench-sshd || systemd-run -q --unit=bench-sshd sleep infinity
  grep -qx "0::/system.slice/bench-sshd.service" /proc/$BASHPID/cgroup || echo $BASHPID > $cg/cgroup.procs
}
timed_session() {
  local r0=$(reloads) s e p
  login_cgroup
  # logins come one by one: each finds the kernel's cgroups quiet (not in the wake of the last one's move)
  sleep 0.1
  sleep 300 & p=$!
  local c0
  children_cpu; c0=$CPU
  s=\${EPOCHREALTIME/./}
  PAM_USER=alice PAM_SERVICE=sshd FLUX_PAM_PID=$p $B session-open uri=local:///run/test-flux/run.sock \${DBG:+debug} >/dev/null 2>/tmp/session.err || { cat /tmp/session.err >&2; exit 1; }
  e=\${EPOCHREALTIME/./}
  children_cpu
  kill $p
  local w=$(waited /tmp/session.err); echo "\${TAG:-A} \${DBG:-0} $(( e - s )) $(( $(reloads) - r0 )) \${w:-- -} $(( CPU - c0 ))"
}
rss() { FLUX_URI=$(uri $1) FLUX_JOB_USERID=${UID} FLUX_JOB_ID=$3 gtime -f %M $B $2 2>&1 >/dev/null | tail -1; }
`;
}

await main();
