// Real sshd logins inside the systemd-nspawn container, through the real PAM stack of the README:
// OpenSSH's sshd, libpam, pam_unix, pam_access, the built pam_flux.so running the compiled
// flux-pam from its compiled-in path, systemd 252 creating the scope. The test broker answers
// for Flux. Outcomes are read from the kernel (/proc/self/cgroup and cgroup.procs, read by the
// remote command itself), from systemd (systemctl show) and from the container's journal (where
// pam_syslog and sshd write).
//
// What the ssh client sees, as found here (OpenSSH 9.2, password authentication):
// - an account denial: sshd sends the PAM messages as a userauth banner, which the client prints
//   on stderr, then closes the connection (ssh exits 255);
// - a session denial: the login is past authentication; sshd's session child prints the PAM
//   messages on the channel's stdout and exits 254 without starting the shell.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ScenarioJob } from "../broker/scenario";
import { type BrokerProcess, ROOT, startBrokerProcess, tempDir } from "../e2e/harness";
import { ensureBuilt, MODULE } from "../pam/harness";
import { bootContainer, type Container, containerSkipReason } from "./container";

const skip = containerSkipReason();
if (skip) console.warn(`SKIPPED: sshd logins on real systemd: ${skip}`);

/** Where pam_flux.so runs the helper from when no helper= is given (Makefile: HELPER). */
const HELPER_PATH = "/usr/libexec/flux-pam/flux-pam";
const SOCKDIR = "/run/test-flux";
const URI = `local://${SOCKDIR}/broker.sock`;
const OWNER = 64999;
const ALICE = 1000;
const BOB = 1001;
const MARKER = "/run/flux-pam/uid.1000.active";
const SSH_CGROUP = "0::/system.slice/ssh.service";
const denied = (user: string) => `Access denied: user ${user} has no active jobs on this node`;

/** The stack of the README's "PAM (/etc/pam.d/sshd)", with the test broker's URI. */
const stack = (sessionOpts = "") => [
  "auth     required    pam_unix.so",
  "account  required    pam_unix.so",
  "account  sufficient  pam_access.so accessfile=/etc/security/access-flux.conf",
  `account  sufficient  pam_flux.so allow-guest-user uri=${URI}`,
  "account  required    pam_deny.so",
  `session  requisite   pam_flux.so uri=${URI}${sessionOpts}`,
  "session  required    pam_limits.so",
  "session  required    pam_unix.so",
];

const config = (manage: boolean) => ({
  pam: { "manage-user-slice": manage },
  exec: { "sdexec-constrain-resources": true },
});

/**
 * Run by the remote shell: where it is and what it was given, one `key=value` per line.
 * `grandparent` is the process that opened the PAM session (sshd's privileged session process).
 */
const PROBE = [
  `echo shell-ran`,
  `cg=$(sed -n 's/^0:://p' /proc/self/cgroup)`,
  `gp=$(ps -o ppid= -p $PPID | tr -d ' ')`,
  `echo "cgroup=0::$cg"`,
  `echo "shell=$$"`,
  `echo "parent=$PPID"`,
  `echo "parent-args=$(ps -o args= -p $PPID)"`,
  `echo "grandparent=$gp"`,
  `echo "grandparent-args=$(ps -o args= -p $gp)"`,
  `echo "procs=$(tr '\\n' ' ' < /sys/fs/cgroup$cg/cgroup.procs)"`,
  `echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"`,
  `echo "DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS"`,
  `systemctl --no-pager show -p Id -p Slice -p ControlGroup -p ActiveState "flux-pam-$gp.scope" | sed 's/^/scope-/'`,
].join("\n");

interface Login {
  code: number;
  /** the remote command's output (or what sshd printed there) */
  stdout: string;
  /** the client's stderr, without its "Permanently added" host key warning */
  stderr: string;
  /** the PROBE's key=value lines */
  probe: Record<string, string>;
}

interface JournalEntry {
  id: string;
  pid: string;
  facility: string;
  message: string;
}

describe.skipIf(skip !== undefined)("sshd logins through pam_flux.so on real systemd", () => {
  let c: Container;
  let broker: BrokerProcess;
  const dir = tempDir("flux-pam-sshd-");

  beforeAll(
    async () => {
      await ensureBuilt();
      // The stack names no helper=: pam_flux.so must have been built for the path we install at.
      if (!readFileSync(MODULE).includes(Buffer.from(`${HELPER_PATH}\0`)))
        throw new Error(`${MODULE} was not built with HELPER=${HELPER_PATH}: run make build/pam_flux.so with the default HELPER`);
      const socks = join(dir.path, "socks");
      mkdirSync(socks);
      chmodSync(socks, 0o755);
      broker = await startBrokerProcess({ rank: 0, owner: OWNER, config: config(true), jobs: [] }, socks);
      c = await bootContainer({ binds: [{ host: socks, container: SOCKDIR }] });
      console.log(`container booted in ${Math.round(c.bootMs)} ms`);

      // Installed as `make install` would, at the paths pam_flux.so knows (the overlay is
      // thrown away when the container stops).
      await c.run(["install", "-D", "-o", "root", "-g", "root", "-m", "0755", "/opt/flux-pam/flux-pam", HELPER_PATH]);
      const pamUnix = (await c.run(["find", "/usr/lib", "-maxdepth", "3", "-path", "*/security/pam_unix.so"])).trim().split("\n")[0]!;
      if (!pamUnix) throw new Error("no pam_unix.so in the container");
      const secureDir = pamUnix.slice(0, pamUnix.lastIndexOf("/"));
      await c.run(["install", "-o", "root", "-g", "root", "-m", "0644", "/opt/flux-pam/pam_flux.so", `${secureDir}/pam_flux.so`]);
      await writeFile("/etc/tmpfiles.d/flux-pam.conf", readFileSync(join(ROOT, "packaging/tmpfiles.d/flux-pam.conf"), "utf8"));
      await c.run(["systemd-tmpfiles", "--create", "/etc/tmpfiles.d/flux-pam.conf"]);
      await writeFile("/etc/security/access-flux.conf", "+:carol:ALL\n-:ALL:ALL\n");
      await writeFile("/etc/pam.d/sshd", stack().join("\n") + "\n");
      await c.run(["systemctl", "start", "ssh.service"]);
      expect((await c.run(["systemctl", "is-active", "ssh.service"])).trim()).toBe("active");
    },
    { timeout: 20 * 60_000 }, // a first run builds the rootfs with debootstrap
  );
  afterAll(async () => {
    await c?.stop();
    await broker?.stop();
    dir.remove();
  });

  async function writeFile(path: string, content: string): Promise<void> {
    await c.run(["sh", "-c", 'printf %s "$1" > "$2"', "sh", content, path]);
  }

  function node(jobs: ScenarioJob[], manage = true): void {
    broker.setScenario({ rank: 0, owner: OWNER, config: config(manage), jobs, mapper: "auto" });
  }

  async function hook(name: "prolog" | "housekeeping", jobid: string): Promise<void> {
    const r = await c.exec(["/opt/flux-pam/flux-pam", name], {
      env: { FLUX_URI: URI, FLUX_JOB_USERID: String(ALICE), FLUX_JOB_ID: jobid },
      timeoutMs: 60_000,
    });
    if (r.code !== 0) throw new Error(`${name} ${jobid} exited ${r.code}: ${r.stderr}`);
  }

  /** `ssh [sshArgs] user@127.0.0.1 command` inside the container, with the user's password. */
  async function ssh(user: string, command = PROBE, sshArgs: string[] = []): Promise<Login> {
    const r = await c.exec(
      ["sshpass", "-p", `pw-${user}`, "ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", ...sshArgs, `${user}@127.0.0.1`, command],
      { timeoutMs: 60_000 },
    );
    const stderr = r.stderr
      .split(/\r?\n/)
      .filter((l) => l !== "" && !l.startsWith("Warning: Permanently added"))
      .map((l) => `${l}\n`)
      .join("");
    const probe: Record<string, string> = {};
    for (const line of r.stdout.split(/\r?\n/)) {
      const eq = line.indexOf("=");
      if (eq > 0) probe[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return { code: r.code, stdout: r.stdout, stderr, probe };
  }

  async function cursor(): Promise<string> {
    const out = await c.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager"]);
    const m = /^-- cursor: (.+)$/m.exec(out);
    if (!m) throw new Error(`no journal cursor in: ${out}`);
    return m[1]!;
  }

  /**
   * The journal since `after`, waited for until an entry's message matches `until` (the log
   * line that ends this login), so that what is absent is really absent.
   */
  async function journal(after: string, until: RegExp): Promise<JournalEntry[]> {
    for (const end = Date.now() + 15_000; ; ) {
      const out = await c.run(["journalctl", `--after-cursor=${after}`, "-o", "json", "--no-pager"]);
      const entries = out
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .map((e) => ({
          id: String(e.SYSLOG_IDENTIFIER ?? ""),
          pid: String(e._PID ?? ""),
          facility: String(e.SYSLOG_FACILITY ?? ""),
          message: typeof e.MESSAGE === "string" ? e.MESSAGE : "",
        }));
      if (entries.some((e) => until.test(e.message))) return entries;
      if (Date.now() > end) throw new Error(`no journal entry matching ${until} within 15 s; got:\n${entries.map((e) => `${e.id}[${e.pid}]: ${e.message}`).join("\n")}`);
      await Bun.sleep(100);
    }
  }

  /** A login that went through and stayed in sshd's own cgroup: no scope, no environment from pam_flux. */
  function expectUnscoped(r: Login, user: string): void {
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.probe.cgroup).toBe(SSH_CGROUP);
    expect(r.probe["grandparent-args"]).toBe(`sshd: ${user} [priv]`);
    expect(r.probe["scope-ActiveState"]).toBe("inactive"); // no flux-pam-PID.scope of that process
    expect(r.probe.XDG_RUNTIME_DIR).toBe("");
    expect(r.probe.DBUS_SESSION_BUS_ADDRESS).toBe("");
  }

  /** alice past authentication, refused by pam_flux's session part for want of the marker. */
  async function expectNoMarkerRefusal(from: string, r: Login): Promise<void> {
    expect(r.code).toBe(254); // sshd's session child: "PAM session not opened, exiting"
    expect(r.stdout).toBe(`${denied("alice")}\n`); // the shell never ran: no "shell-ran"
    expect(r.stderr).toBe("");
    const lines = sshdLines(await journal(from, /^Disconnected from user alice /));
    expect(lines.some((l) => l.startsWith("Accepted password for alice from 127.0.0.1 port "))).toBe(true);
    expect(lines).toContain(
      "pam_flux(sshd:session): session denied for user alice: no active marker: containment is not set up (no prolog ran, or the last job ended)",
    );
    expect(lines).toContain("error: PAM: pam_open_session(): System error");
    // requisite: the modules after pam_flux never ran
    expect(lines.filter((l) => l.startsWith("pam_unix(sshd:session)"))).toEqual([]);
  }

  const sshdLines = (entries: JournalEntry[]) => entries.filter((e) => e.id === "sshd").map((e) => e.message);
  const exists = async (path: string) => (await c.exec(["test", "-e", path])).code === 0;

  // Each test sets up alice's containment itself, so that any one runs alone (bun test -t NAME).

  /** alice's job 101 running and its prolog run: the slice constrained, the marker made. */
  async function contained(): Promise<void> {
    node([{ id: "101", userid: ALICE, cores: "0-1" }]);
    await hook("prolog", "101");
    expect(await exists(MARKER)).toBe(true);
  }

  /** alice with no containment, as housekeeping after her last job leaves her (whatever came before). */
  async function uncontained(): Promise<void> {
    node([{ id: "101", userid: ALICE, cores: "0-1", state: 64 }]);
    await hook("housekeeping", "101");
    expect(await exists(MARKER)).toBe(false);
  }

  test("alice with a running job but no prolog yet: sshd refuses the session, the shell never runs", async () => {
    expect(await exists("/run/flux-pam")).toBe(true); // made by tmpfiles.d/flux-pam.conf, as at boot
    await uncontained();
    node([{ id: "101", userid: ALICE, cores: "0-1" }]);
    const from = await cursor();
    await expectNoMarkerRefusal(from, await ssh("alice"));
  }, { timeout: 120_000 });

  test("alice after the prolog: the shell runs in flux-pam-PID.scope under user-1000.slice, PID being sshd's session process", async () => {
    await contained();
    // the slice the scope joins carries the job's limits
    expect((await c.run(["systemctl", "show", "-p", "AllowedCPUs", "user-1000.slice"])).trim()).toBe("AllowedCPUs=0-1");
    const from = await cursor();
    const r = await ssh("alice");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const p = r.probe;
    const pid = p.grandparent!;
    expect(pid).toMatch(/^\d+$/);
    // the PAM process is sshd's privileged session process; the shell is its grandchild
    expect(p["grandparent-args"]).toBe("sshd: alice [priv]");
    expect(p["parent-args"]).toBe("sshd: alice@notty");
    expect(p.cgroup).toBe(`0::/user.slice/user-1000.slice/flux-pam-${pid}.scope`);
    const procs = p.procs!.trim().split(" ");
    expect(procs).toContain(pid);
    expect(procs).toContain(p.parent!);
    expect(procs).toContain(p.shell!);
    expect(p["scope-Id"]).toBe(`flux-pam-${pid}.scope`);
    expect(p["scope-Slice"]).toBe("user-1000.slice");
    expect(p["scope-ControlGroup"]).toBe(`/user.slice/user-1000.slice/flux-pam-${pid}.scope`);
    expect(p["scope-ActiveState"]).toBe("active");
    expect(p.XDG_RUNTIME_DIR).toBe("/run/user/1000");
    expect(p.DBUS_SESSION_BUS_ADDRESS).toBe("unix:path=/run/user/1000/bus");

    const entries = await journal(from, /^pam_unix\(sshd:session\): session closed for user alice$/);
    expect(entries.some((e) => e.pid === "1" && e.message === `Started flux-pam-${pid}.scope - flux-pam session of alice.`)).toBe(true);
    expect(sshdLines(entries).filter((l) => l.includes("pam_flux"))).toEqual([]);
    // close_session leaves it to systemd: the scope goes away with its last process
    for (const end = Date.now() + 10_000; ; await Bun.sleep(100)) {
      const state = (await c.exec(["systemctl", "show", "-p", "ActiveState", `flux-pam-${pid}.scope`])).stdout.trim();
      if (state === "ActiveState=inactive") break;
      if (Date.now() > end) throw new Error(`flux-pam-${pid}.scope still ${state} after the logout`);
    }
  }, { timeout: 120_000 });

  test("alice with a pty (an interactive login): the same scope, held by the same process", async () => {
    await contained();
    const r = await ssh("alice", PROBE, ["-tt"]);
    expect(r.code).toBe(0);
    const p = r.probe;
    expect(p["grandparent-args"]).toBe("sshd: alice [priv]");
    expect(p["parent-args"]).toMatch(/^sshd: alice@pts\/\d+$/);
    expect(p.cgroup).toBe(`0::/user.slice/user-1000.slice/flux-pam-${p.grandparent}.scope`);
    expect(p.procs!.trim().split(" ")).toContain(p.shell!);
    expect(p.XDG_RUNTIME_DIR).toBe("/run/user/1000");
    expect(p.DBUS_SESSION_BUS_ADDRESS).toBe("unix:path=/run/user/1000/bus");
  }, { timeout: 120_000 });

  test("two logins of alice at once: a scope each", async () => {
    await contained();
    // each shell outlives the other's login, so both scopes exist at the same time
    const both = await Promise.all([ssh("alice", `sleep 1\n${PROBE}`), ssh("alice", `sleep 1\n${PROBE}`)]);
    expect(both.map((r) => r.code)).toEqual([0, 0]);
    const pids = both.map((r) => r.probe.grandparent!);
    expect(pids[0]).not.toBe(pids[1]);
    expect(both.map((r) => r.probe.cgroup)).toEqual(pids.map((pid) => `0::/user.slice/user-1000.slice/flux-pam-${pid}.scope`));
    expect(both.map((r) => r.probe["scope-ActiveState"])).toEqual(["active", "active"]);
  }, { timeout: 120_000 });

  test("alice when housekeeping tore containment down and the next job's prolog has not run: refused", async () => {
    await contained();
    node([{ id: "101", userid: ALICE, cores: "0-1", state: 64 }]);
    await hook("housekeeping", "101");
    expect(await exists(MARKER)).toBe(false);
    node([{ id: "102", userid: ALICE, cores: "0" }]);
    const from = await cursor();
    await expectNoMarkerRefusal(from, await ssh("alice"));
  }, { timeout: 120_000 });

  test("bob without a job: refused at the account stage, the message shown as sshd's banner, logged to authpriv", async () => {
    node([{ id: "102", userid: ALICE, cores: "0" }]);
    const from = await cursor();
    const r = await ssh("bob");
    expect(r.code).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`${denied("bob")}\nConnection closed by 127.0.0.1 port 22\n`);
    const entries = await journal(from, /^fatal: Access denied for user bob by PAM account configuration \[preauth\]$/);
    const flux = entries.filter((e) => e.id === "sshd" && e.message.startsWith("pam_flux("));
    expect(flux.map((e) => [e.facility, e.message])).toEqual([["10", `pam_flux(sshd:account): access denied for user bob (uid=${BOB})`]]);
    expect(sshdLines(entries).some((l) => l.startsWith("Accepted password for bob"))).toBe(false);
  }, { timeout: 120_000 });

  test("carol, admitted by pam_access: pam_flux's session part ignores her, she stays in ssh.service", async () => {
    node([{ id: "102", userid: ALICE, cores: "0" }]);
    const from = await cursor();
    expectUnscoped(await ssh("carol"), "carol");
    const lines = sshdLines(await journal(from, /^pam_unix\(sshd:session\): session closed for user carol$/));
    expect(lines).toContain("pam_unix(sshd:session): session opened for user carol(uid=1002) by (uid=0)");
    expect(lines.filter((l) => l.includes("pam_flux"))).toEqual([]);

    // With debug on the session line, pam_flux says which way it went: PAM_IGNORE, helper not run.
    await writeFile("/etc/pam.d/sshd", stack(" debug").join("\n") + "\n");
    try {
      const from2 = await cursor();
      expectUnscoped(await ssh("carol"), "carol");
      const lines2 = sshdLines(await journal(from2, /^pam_unix\(sshd:session\): session closed for user carol$/));
      expect(lines2.filter((l) => l.includes("pam_flux"))).toEqual([
        "pam_flux(sshd:session): user carol was not admitted by pam_flux as a job owner: ignored",
      ]);
    } finally {
      await writeFile("/etc/pam.d/sshd", stack().join("\n") + "\n");
    }
  }, { timeout: 120_000 });

  test("manage-user-slice = false: alice with a job logs in without a scope (and without the marker)", async () => {
    await uncontained();
    node([{ id: "102", userid: ALICE, cores: "0" }], false);
    const from = await cursor();
    // session-open adds the environment only with a scope
    expectUnscoped(await ssh("alice"), "alice");
    const entries = await journal(from, /^pam_unix\(sshd:session\): session closed for user alice$/);
    expect(entries.some((e) => /^Started flux-pam-/.test(e.message))).toBe(false);
    expect(sshdLines(entries).filter((l) => l.includes("pam_flux"))).toEqual([]);
  }, { timeout: 120_000 });
});
