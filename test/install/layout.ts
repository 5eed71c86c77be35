// What `make install` puts where, for the install and packaging tests: every path, its kind, mode and link target.

import { dirname, join, relative } from "node:path";
import { ROOT, type RunResult, runBinary } from "../e2e/harness";

export interface Dirs {
  bindir: string;
  libexecdir: string;
  securedir: string;
  tmpfilesdir: string;
  mandir: string;
}

export interface Entry {
  path: string;
  kind: "file" | "link";
  /** permission bits, files only (links are 0777) */
  mode?: number;
  /** for links: the target as written in the link (relative) */
  target?: string;
  /** for files: the file in this tree that it must equal (undefined: checked otherwise) */
  source?: string;
}

export const USR: Dirs = {
  bindir: "/usr/bin",
  libexecdir: "/usr/libexec",
  securedir: "/usr/lib/x86_64-linux-gnu/security",
  tmpfilesdir: "/usr/lib/tmpfiles.d",
  mandir: "/usr/share/man",
};

export const MAN_PAGES = ["man1/flux-pam.1", "man5/flux-config-pam.5", "man8/pam_flux.8"];

export function helperPath(d: Dirs): string {
  return join(d.libexecdir, "flux-pam/flux-pam");
}

/** The installed files and links (not directories). `manSuffix` is ".gz" in the .deb. */
export function layout(d: Dirs, manSuffix = ""): Entry[] {
  const helper = helperPath(d);
  const link = (path: string): Entry => ({ path, kind: "link", target: relative(dirname(path), helper) });
  return [
    { path: helper, kind: "file", mode: 0o755, source: join(ROOT, "build/flux-pam") },
    link(join(d.bindir, "flux-pam")),
    link(join(d.libexecdir, "flux/prolog.d/flux-pam-prolog")),
    link(join(d.libexecdir, "flux/housekeeping.d/flux-pam-housekeeping")),
    // built for the install, with the installed helper's path compiled in: checked with strings
    { path: join(d.securedir, "pam_flux.so"), kind: "file", mode: 0o644 },
    { path: join(d.tmpfilesdir, "flux-pam.conf"), kind: "file", mode: 0o644, source: join(ROOT, "packaging/tmpfiles.d/flux-pam.conf") },
    ...MAN_PAGES.map(
      (m): Entry => ({
        path: join(d.mandir, m) + manSuffix,
        kind: "file",
        mode: 0o644,
        ...(manSuffix ? {} : { source: join(ROOT, "man", m.slice(m.indexOf("/") + 1)) }),
      }),
    ),
  ];
}

/** The NUL-free strings of at least 8 printable characters in a file, as `strings -a` finds them. */
export async function stringsOf(file: string): Promise<string[]> {
  return (await runOk(["strings", "-a", "-n", "8", file])).stdout.split("\n");
}

export type Run = RunResult;

/** Runs a command to completion with a clean environment (PATH, plus `env`). */
export function run(cmd: string[], env: Record<string, string> = {}): Promise<Run> {
  return runBinary(cmd.slice(1), env, cmd[0]);
}

/** run() that throws with the command's output unless it exits 0. */
export async function runOk(cmd: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await run(cmd, env);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/**
 * make TARGET with VARS in the repo, never rebuilding build/flux-pam (`make check` built it; a
 * rebuild here would race with the other test files that run it).
 */
export function make(target: string, vars: Record<string, string> = {}): Promise<Run> {
  return runOk(["make", "-s", "-C", ROOT, "-o", "build/flux-pam", target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)]);
}
