// The fault matrix, node faults: the lock directory, the per-uid lock and the marker in every bad
// state, against session-open (binary, and pam_flux.so where no mount is needed), prolog and
// housekeeping (binary, on a stand-in systemd of their own). A login is refused; a hook fails
// naming the path, and what was planted is left as it was (never followed, never replaced).
// Mount-made states (read-only, full) run in a private mount namespace of the command.

import { chownSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../e2e/harness";
import { startFakeSystemd } from "../systemd/fake-systemd";
import {
  BUDGET_S,
  deniedBySession,
  expectEq,
  hookEnv,
  hookFailed,
  type MatrixCase,
  type Outcome,
  pamSession,
  pamSessionRefused,
  run,
  sessionArgv,
  sessionEnv,
  UID,
} from "./harness";

type Path = "session-open" | "pam session" | "prolog" | "housekeeping";
const LOCK = `uid.${UID}.lock`;
const MARKER = `uid.${UID}.active`;
/** The hooks wait this long for the per-uid lock (commands/containment.ts). */
const HOOK_LOCK_S = 60;

interface NodeFault {
  name: string;
  /** makes the state in `d` (the lock dir's path, not yet created); returns a stop for what it started */
  setup(d: string, p: Path): Promise<(() => void) | void> | (() => void) | void;
  /** shell lines run in the command's private mount namespace, with $D the lock dir */
  mount?: (p: Path) => string;
  /** the refusal's reason, or "ok" where the command rightly goes on */
  reason: Partial<Record<Path, RegExp | "ok">>;
  /** a best-effort step's warning that comes before the refusal (the same fault met first there) */
  warned?: Partial<Record<Path, RegExp>>;
  /** the path whose kind must be as it was after the command (the planted thing left alone) */
  planted?: string;
  slowFor?: Path[];
  /** what a path that rightly goes on does, in words (default: makes the lock dir) */
  goesOn?: string;
}

const dirWith = (...files: string[]) => (d: string) => {
  mkdirSync(d, { mode: 0o700 });
  for (const f of files) writeFileSync(join(d, f), "", { mode: 0o600 });
};
const markerFor = (p: Path) => (p === "prolog" ? [] : [MARKER]);
const mkfifo = (path: string) => {
  if (Bun.spawnSync(["mkfifo", "-m", "600", path]).exitCode !== 0) throw new Error(`mkfifo ${path} failed`);
};

/**
 * Another process holds the lock in `d` for `seconds` (flock(1), as a hook holds it); returns what
 * ends it early.
 */
async function holdLock(d: string, seconds: number): Promise<() => void> {
  writeFileSync(join(d, LOCK), "", { mode: 0o600 });
  const holder = Bun.spawn(["flock", "-x", join(d, LOCK), "-c", `echo held; exec sleep ${seconds}`], { stdout: "pipe", stderr: "inherit" });
  const reader = holder.stdout.getReader();
  await reader.read();
  reader.releaseLock();
  return () => {
    if (holder.exitCode !== null || holder.signalCode !== null) return;
    // flock's child (the sleep) holds the lock too: end both, by their pids
    for (const c of readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").trim().split(" ").filter(Boolean)) process.kill(Number(c), "SIGKILL");
    holder.kill("SIGKILL");
  };
}

const NODE_FAULTS: NodeFault[] = [
  {
    name: "lock held by another process past the timeout",
    async setup(d, p) {
      dirWith(...markerFor(p))(d);
      return holdLock(d, 300);
    },
    reason: {
      "session-open": /^\S+\/uid\.1\.lock: lock not acquired within 2 s$/,
      "pam session": /^\S+\/uid\.1\.lock: lock not acquired within 2 s$/,
      prolog: /^\S+\/uid\.1\.lock: lock not acquired within 60 s$/,
      housekeeping: /^\S+\/uid\.1\.lock: lock not acquired within 60 s$/,
    },
    slowFor: ["session-open", "pam session", "prolog", "housekeeping"],
  },
  {
    // As another hook of the user holds it through a teardown that waits out the default 30 s
    // grace time: the broker's budget (30 s) is for its answers, and starts again once the lock is held.
    name: "lock held by another process longer than the broker's budget, then released",
    async setup(d, p) {
      dirWith(...markerFor(p))(d);
      return holdLock(d, 31);
    },
    reason: { prolog: "ok", housekeeping: "ok" },
    slowFor: ["prolog", "housekeeping"],
    goesOn: "waits for the lock, then succeeds",
  },
  {
    name: "lock dir read-only (EROFS)",
    setup: (d) => mkdirSync(d, { mode: 0o700 }),
    mount: (p) => `mount -t tmpfs -o mode=0700 tmpfs "$D"\n${p === "prolog" ? "" : `touch "$D/${MARKER}"\n`}mount -o remount,ro "$D"`,
    reason: {
      "session-open": /^\S+\/uid\.1\.lock: EROFS: read-only file system, open '\S+'$/,
      prolog: /^\S+\/uid\.1\.lock: EROFS: read-only file system, open '\S+'$/,
      housekeeping: /^\S+\/uid\.1\.lock: EROFS: read-only file system, open '\S+'$/,
    },
  },
  {
    name: "lock dir full (ENOSPC): no room for the lock",
    setup: (d) => mkdirSync(d, { mode: 0o700 }),
    // tmpfs counts its root as an inode: nr_inodes=2 leaves room for the marker alone
    mount: (p) => `mount -t tmpfs -o mode=0700,nr_inodes=${p === "prolog" ? 1 : 2} tmpfs "$D"\n${p === "prolog" ? "" : `touch "$D/${MARKER}"`}`,
    reason: {
      "session-open": /^\S+\/uid\.1\.lock: ENOSPC: no space left on device, open '\S+'$/,
      prolog: /^\S+\/uid\.1\.lock: ENOSPC: no space left on device, open '\S+'$/,
      housekeeping: /^\S+\/uid\.1\.lock: ENOSPC: no space left on device, open '\S+'$/,
    },
  },
  {
    name: "lock dir full (ENOSPC): no room for the marker",
    setup: (d) => mkdirSync(d, { mode: 0o700 }),
    mount: () => `mount -t tmpfs -o mode=0700,nr_inodes=2 tmpfs "$D"`,
    // the prolog has set the slice by then: constrained, and no login can enter it. The record of
    // the jobs' shares, written first, is best effort (only the next hook's speed depends on it).
    reason: { prolog: /^\S+\/uid\.1\.active: ENOSPC: no space left on device, open '\S+'$/ },
    warned: { prolog: /^warning: could not record the jobs' shares: \S+\/uid\.1\.shares: ENOSPC: no space left on device, open '\S+'$/ },
  },
  {
    name: "lock dir group-writable (0770)",
    setup: (d, p) => {
      dirWith(...markerFor(p))(d);
      Bun.spawnSync(["chmod", "0770", d]);
    },
    reason: {
      "session-open": /^\S+: lock directory is group\/other writable \(mode 0770\)$/,
      "pam session": /^\S+: lock directory is group\/other writable \(mode 0770\)$/,
      prolog: /^\S+: lock directory is group\/other writable \(mode 0770\)$/,
      housekeeping: /^\S+: lock directory is group\/other writable \(mode 0770\)$/,
    },
  },
  {
    name: "lock dir a symlink (to a good directory)",
    setup: (d, p) => {
      dirWith(...markerFor(p))(`${d}.real`);
      symlinkSync(`${d}.real`, d);
    },
    reason: {
      "session-open": /^\S+: lock directory is a symbolic link$/,
      "pam session": /^\S+: lock directory is a symbolic link$/,
      prolog: /^\S+: lock directory is a symbolic link$/,
      housekeeping: /^\S+: lock directory is a symbolic link$/,
    },
    planted: "",
  },
  {
    name: "lock dir owned by another user",
    setup: (d, p) => {
      dirWith(...markerFor(p))(d);
      chownSync(d, UID, 0);
    },
    reason: {
      "session-open": /^\S+: lock directory is owned by uid 1, not root$/,
      "pam session": /^\S+: lock directory is owned by uid 1, not root$/,
      prolog: /^\S+: lock directory is owned by uid 1, not root$/,
      housekeeping: /^\S+: lock directory is owned by uid 1, not root$/,
    },
  },
  {
    name: "lock dir absent",
    setup: () => {},
    reason: {
      "session-open": /^\S+: lock directory does not exist \(is tmpfiles\.d\/flux-pam\.conf installed\?\)$/,
      "pam session": /^\S+: lock directory does not exist \(is tmpfiles\.d\/flux-pam\.conf installed\?\)$/,
      // the hooks make it, 0700
      prolog: "ok",
      housekeeping: "ok",
    },
  },
  ...(["symlink", "directory", "fifo"] as const).flatMap((kind): NodeFault[] => {
    const plant = (path: string) => {
      if (kind === "symlink") symlinkSync("/etc/passwd", path);
      else if (kind === "directory") mkdirSync(path);
      else mkfifo(path);
    };
    const what = kind === "symlink" ? "is a symbolic link" : "is not a regular file";
    const lockWhy = new RegExp(`^\\S+/uid\\.1\\.lock: lock file ${what}$`);
    const markerWhy = new RegExp(`^\\S+/uid\\.1\\.active: marker ${what}$`);
    return [
      {
        name: `lock file a ${kind}`,
        setup: (d, p) => {
          dirWith(...markerFor(p))(d);
          plant(join(d, LOCK));
        },
        reason: { "session-open": lockWhy, "pam session": lockWhy, prolog: lockWhy, housekeeping: lockWhy },
        planted: LOCK,
      },
      {
        name: `marker a ${kind}`,
        setup: (d) => {
          dirWith()(d);
          plant(join(d, MARKER));
        },
        reason: { "session-open": markerWhy, "pam session": markerWhy, prolog: markerWhy, housekeeping: markerWhy },
        planted: MARKER,
      },
    ];
  }),
];

const PATHS: Path[] = ["session-open", "pam session", "prolog", "housekeeping"];

function kindOf(path: string): string {
  try {
    const st = lstatSync(path);
    return st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "directory" : st.isFIFO() ? "fifo" : st.isFile() ? "file" : "other";
  } catch {
    return "absent";
  }
}

export function nodeCases(): MatrixCase[] {
  const out: MatrixCase[] = [];
  for (const f of NODE_FAULTS)
    for (const p of PATHS) {
      const reason = f.reason[p];
      if (reason === undefined) continue;
      if (p === "pam session" && f.mount) continue; // (the driver runs outside any private namespace)
      const hook = p === "prolog" || p === "housekeeping";
      const slow = f.slowFor?.includes(p) ?? false;
      out.push({
        group: "node fault",
        fault: f.name,
        path: p,
        expect:
          reason === "ok"
            ? `goes on: ${f.goesOn ?? "makes the lock dir 0700 and succeeds"}`
            : hook
              ? `${f.warned?.[p] ? "warns, then " : ""}fails naming the path; the planted thing left alone`
              : "refused, naming the path",
        slow,
        // a hook's 60 s for the lock start once the broker has answered (a second more for that)
        deadlineMs: slow ? (hook ? HOOK_LOCK_S + 1 : BUDGET_S) * 1000 : undefined,
        async run(env) {
          const caseDir = env.caseDir();
          const d = join(caseDir, "locks");
          const stop = await f.setup(d, p);
          const plantedPath = f.planted === undefined ? undefined : f.planted === "" ? d : join(d, f.planted);
          const before = plantedPath ? kindOf(plantedPath) : undefined;
          const fake = await startFakeSystemd(caseDir);
          const script = f.mount ? `D=${JSON.stringify(d)}\n${f.mount(p)}` : undefined;
          try {
            let o: Outcome | Awaited<ReturnType<typeof pamSession>>;
            if (p === "session-open") o = await run(sessionArgv(env.good, d), sessionEnv(fake.address), script);
            else if (p === "pam session") o = await pamSession(caseDir, "s", env.helper, env.good, `uri=${env.good} lock-dir=${d}`);
            else o = await run([BINARY, p], hookEnv(env.good, d, fake.address), script);
            const after = plantedPath ? kindOf(plantedPath) : undefined;
            const markerKind = kindOf(join(d, MARKER));
            const writes = fake.calls.map((c) => c.member);
            return {
              ms: o.ms,
              check() {
                if (reason === "ok") {
                  const r = o as Outcome;
                  expectEq({ code: r.code, stderr: r.stderr, dir: kindOf(d), mode: lstatSync(d).mode & 0o7777 }, { code: 0, stderr: "", dir: "directory", mode: 0o700 });
                  expectEq({ marker: markerKind }, { marker: p === "prolog" ? "file" : "absent" });
                  return;
                }
                if (p === "session-open") deniedBySession(reason)(o as Outcome);
                else if (p === "pam session") pamSessionRefused(reason)(o as Awaited<ReturnType<typeof pamSession>>);
                else hookFailed(p, reason, undefined, f.warned?.[p])(o as Outcome);
                if (plantedPath) expectEq({ planted: after }, { planted: before });
                // A refused login made no scope; a failed prolog left no marker of its own making.
                if (!hook) expectEq({ scope: writes.includes("StartTransientUnit") }, { scope: false });
                if (p === "prolog" && f.planted !== MARKER) expectEq({ marker: markerKind }, { marker: "absent" });
              },
            };
          } finally {
            stop?.();
            await fake.close();
          }
        },
      });
    }
  return out;
}
