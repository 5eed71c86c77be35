// Peak resident memory (max RSS, as /usr/bin/time reports it) of the compiled binary per command,
// against the test broker. Hooks run with --dry-run (no systemd here; they still load the D-Bus
// library and try the bus; a dry run uses no record of the jobs' shares, so it asks for every R: the
// real hooks with 1000 jobs, on systemd, are in bench/hooks.ts). Usage: bun bench/rss.ts   (make bench builds first)

import type { Scenario } from "../test/broker/scenario";
import { BINARY, startBrokerProcess, tempDir } from "../test/e2e/harness";

const RUNS = 5;

// daemon (1) has the jobs here; bin (2) has one on another node, which a denial's job hint names.
function node(jobs: number): Scenario {
  return {
    rank: 0,
    owner: 64999,
    config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } },
    jobs: [
      ...Array.from({ length: jobs }, (_, i) => ({ id: String(1000 + i), userid: 1, cores: String(i % 2) })),
      { id: "999", userid: 2, ranks: "1" },
    ],
  };
}

/** Max RSS in KiB of one run, from GNU time's %M. */
async function peakKiB(args: string[], env: Record<string, string>): Promise<number> {
  const p = Bun.spawn(["/usr/bin/time", "-f", "%M", BINARY, ...args], { env: { PATH: "/usr/bin:/bin", ...env }, stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  await p.exited;
  return Number(err.trim().split("\n").at(-1));
}

async function main() {
  // A binary just written by the compiler sits whole in the page cache, and the kernel's
  // fault-around then maps far more of it into each process than an installed binary read
  // from disk gets (seen: 38 MiB instead of 33 for account). Drop this file's cached pages.
  await Bun.$`sync && dd if=${BINARY} iflag=nocache count=0 status=none`;
  const dir = tempDir("flux-pam-rss-");
  const one = await startBrokerProcess(node(1), dir.path, "one");
  const many = await startBrokerProcess(node(1000), dir.path, "many");
  try {
    const rows: [string, string[], Record<string, string>][] = [
      ["--version", ["--version"], {}],
      ["account (admitted)", ["account", `uri=${one.uri}`], { PAM_USER: "daemon" }],
      ["account (denied, with a job hint)", ["account", `uri=${one.uri}`], { PAM_USER: "bin" }],
      ["check-user", ["check-user", "daemon", "--uri", one.uri], {}],
      ["prolog --dry-run, 1 job", ["prolog", "--dry-run"], { FLUX_URI: one.uri, FLUX_JOB_USERID: "1", FLUX_JOB_ID: "1000" }],
      ["prolog --dry-run, 1000 jobs (every R)", ["prolog", "--dry-run"], { FLUX_URI: many.uri, FLUX_JOB_USERID: "1", FLUX_JOB_ID: "1000" }],
      ["housekeeping --dry-run, 1000 jobs", ["housekeeping", "--dry-run"], { FLUX_URI: many.uri, FLUX_JOB_USERID: "1", FLUX_JOB_ID: "1000" }],
      ["status, 1000 jobs", ["status", "daemon", "--uri", many.uri], {}],
      ["reconcile --dry-run, 1000 jobs", ["reconcile", "daemon", "--dry-run", "--uri", many.uri], {}],
      ["doctor", ["doctor", "--uri", one.uri], {}],
    ];
    console.log(`peak RSS of build/flux-pam (its page cache dropped first), max of ${RUNS} runs (MiB)`);
    for (const [name, args, env] of rows) {
      const kib = Math.max(...(await Promise.all(Array.from({ length: RUNS }, () => peakKiB(args, env)))));
      console.log(`${name.padEnd(38)} ${(kib / 1024).toFixed(1).padStart(6)}`);
    }
  } finally {
    await one.stop();
    await many.stop();
    dir.remove();
  }
}

await main();
