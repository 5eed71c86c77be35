// make install into a DESTDIR: every path, mode and owner, the links, and the installed pam_flux.so
// running the installed flux-pam from the path compiled into it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { type BrokerProcess, ROOT, startBrokerProcess, tempDir } from "../e2e/harness";
import { driverArgs, ensureBuilt, pamConfDir } from "../pam/harness";
import { type Dirs, type Entry, USR, helperPath, layout, make, run, runOk, stringsOf } from "./layout";
import pkg from "../../package.json" with { type: "json" };

const multiarch = Bun.spawnSync(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.toString().trim();
/** What make install chooses by itself on this Debian machine. */
const DEFAULT: Dirs = { ...USR, securedir: `/usr/lib/${multiarch}/security` };
/** Everything moved, as a site installing under /opt would: pam_flux.so must follow the binary. */
const OPT: Dirs = {
  bindir: "/opt/flux-pam/bin",
  libexecdir: "/opt/flux-pam/libexec",
  securedir: "/opt/flux-pam/security",
  tmpfilesdir: "/opt/flux-pam/tmpfiles.d",
  mandir: "/opt/flux-pam/man",
};

const dir = tempDir("flux-pam-install-");
const destdir = join(dir.path, "default");
const optDestdir = join(dir.path, "opt");
const optVars = {
  DESTDIR: optDestdir,
  PREFIX: "/opt/flux-pam",
  BINDIR: OPT.bindir,
  LIBEXECDIR: OPT.libexecdir,
  SECUREDIR: OPT.securedir,
  TMPFILESDIR: OPT.tmpfilesdir,
  MANDIR: OPT.mandir,
};

beforeAll(async () => {
  await ensureBuilt();
  await make("install", { DESTDIR: destdir });
  await make("install", optVars);
}, 180_000);
afterAll(() => dir.remove());

/** Every file and link under `root`, as absolute paths of the installed system. */
function installed(root: string, sub = ""): string[] {
  return readdirSync(join(root, sub), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? installed(root, join(sub, e.name)) : [`/${join(sub, e.name)}`],
  );
}

/** Every directory on the way to each entry, below `root`. */
function directories(entries: Entry[]): string[] {
  const dirs = new Set<string>();
  for (const e of entries) for (let d = e.path; (d = d.slice(0, d.lastIndexOf("/"))) !== ""; ) dirs.add(d);
  return [...dirs].sort();
}

function checkLayout(root: string, dirs: Dirs) {
  const entries = layout(dirs);

  test("installs exactly the expected files and links", () => {
    expect(installed(root).sort()).toEqual(entries.map((e) => e.path).sort());
  });

  test("every file has its mode and is owned by root:root", () => {
    for (const e of entries.filter((e) => e.kind === "file")) {
      const st = lstatSync(join(root, e.path));
      expect({ path: e.path, file: st.isFile(), mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid }).toEqual({
        path: e.path,
        file: true,
        mode: e.mode!.toString(8),
        uid: 0,
        gid: 0,
      });
    }
  });

  test("the directories it creates are root's, mode 0755", () => {
    for (const d of directories(entries)) {
      const st = lstatSync(join(root, d));
      expect({ d, dir: st.isDirectory(), mode: (st.mode & 0o7777).toString(8), uid: st.uid }).toEqual({ d, dir: true, mode: "755", uid: 0 });
    }
  });

  test("the links are relative and lead to the installed binary", () => {
    for (const e of entries.filter((e) => e.kind === "link")) {
      const path = join(root, e.path);
      expect(lstatSync(path).isSymbolicLink()).toBe(true);
      expect({ path: e.path, target: readlinkSync(path) }).toEqual({ path: e.path, target: e.target! });
      expect(realpathSync(path)).toBe(realpathSync(join(root, helperPath(dirs))));
    }
  });

  test("the binary, the tmpfiles.d entry and the man pages are the ones in the tree", () => {
    for (const e of entries.filter((e) => e.source !== undefined)) {
      expect({ path: e.path, same: readFileSync(join(root, e.path)).equals(readFileSync(e.source!)) }).toEqual({ path: e.path, same: true });
    }
    expect(readFileSync(join(root, dirs.tmpfilesdir, "flux-pam.conf"), "utf8")).toContain("\nd /run/flux-pam 0700 root root -\n");
  });

  test("pam_flux.so has the installed binary's path compiled in, not the DESTDIR's", async () => {
    const strings = await stringsOf(join(root, dirs.securedir, "pam_flux.so"));
    expect(strings).toContain(helperPath(dirs));
    expect(strings.filter((s) => s.includes(root))).toEqual([]);
  });
}

describe("make install DESTDIR=... (the defaults: PREFIX=/usr, the distribution's PAM dir)", () => {
  test(`SECUREDIR defaults to Debian's multiarch PAM dir /usr/lib/${multiarch}/security`, () => {
    expect(multiarch).toMatch(/^[a-z0-9_]+-linux-gnu[a-z0-9_]*$/);
    expect(lstatSync(join(destdir, DEFAULT.securedir, "pam_flux.so")).isFile()).toBe(true);
  });
  checkLayout(destdir, DEFAULT);

  test("the installed flux-pam runs, through the /usr/bin link too", async () => {
    for (const path of [helperPath(DEFAULT), "/usr/bin/flux-pam"]) {
      const r = await run([join(destdir, path), "--version"]);
      expect({ path, code: r.code, out: r.stdout.split(" ")[0] }).toEqual({ path, code: 0, out: `flux-pam/${pkg.version}` });
    }
  });

  test("the prolog.d and housekeeping.d links run it as prolog and housekeeping", async () => {
    for (const [link, tag] of [
      ["/usr/libexec/flux/prolog.d/flux-pam-prolog", "flux-pam-prolog[?]"],
      ["/usr/libexec/flux/housekeeping.d/flux-pam-housekeeping", "flux-pam-housekeeping[?]"],
    ] as const) {
      // No FLUX_JOB_USERID: the hook says so under its own name, before it asks any broker.
      const r = await run([join(destdir, link)]);
      expect({ link, code: r.code, stderr: r.stderr }).toEqual({ link, code: 1, stderr: `${tag}: FLUX_JOB_USERID is not set\n` });
    }
  });
});

describe("make install with PREFIX, BINDIR, LIBEXECDIR, SECUREDIR, TMPFILESDIR, MANDIR moved", () => {
  checkLayout(optDestdir, OPT);

  test("the module of the earlier install keeps its own path: each install builds for its own", async () => {
    expect(await stringsOf(join(destdir, DEFAULT.securedir, "pam_flux.so"))).not.toContain(helperPath(OPT));
  });

  test("make uninstall with the same variables removes every file and link again", async () => {
    await make("uninstall", optVars);
    expect(installed(optDestdir)).toEqual([]);
  });
});

describe("make install by a user who is not root", () => {
  // A copy of the tree owned by nobody (the binary linked in, not copied: 110 MB), built and
  // installed by nobody into a DESTDIR of its own: no chown is attempted, the modes are the same.
  const skip = process.getuid?.() !== 0 ? "not root (cannot become nobody)" : undefined;
  test.skipIf(skip !== undefined)("installs the same layout, owned by the installing user", async () => {
    const base = join(dir.path, "nobody");
    const tree = join(base, "tree");
    mkdirSync(join(tree, "build"), { recursive: true });
    for (const f of ["Makefile", "package.json", "packaging", "man", "pam", "src"]) cpSync(join(ROOT, f), join(tree, f), { recursive: true });
    symlinkSync(join(ROOT, "build/flux-pam"), join(tree, "build/flux-pam"));
    await runOk(["chown", "-R", "65534:65534", base]);
    chmodSync(dir.path, 0o755); // mkdtemp made it 0700: nobody must reach its own part
    const dest = join(base, "dest");
    await runOk(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "make", "-s", "-C", tree, "-o", "build/flux-pam", "install", `DESTDIR=${dest}`]);
    const entries = layout(DEFAULT);
    expect(installed(dest).sort()).toEqual(entries.map((e) => e.path).sort());
    for (const e of entries.filter((e) => e.kind === "file")) {
      const st = lstatSync(join(dest, e.path));
      expect({ path: e.path, mode: (st.mode & 0o7777).toString(8), uid: st.uid }).toEqual({ path: e.path, mode: e.mode!.toString(8), uid: 65534 });
    }
    expect(await stringsOf(join(dest, DEFAULT.securedir, "pam_flux.so"))).toContain(helperPath(DEFAULT));
  });
});

describe("the installed pam_flux.so runs the installed flux-pam", () => {
  // /usr/libexec of this machine is replaced, in a private mount namespace, by the DESTDIR's, so
  // the module finds the installed binary at the very path compiled into it (no helper= option).
  const skip = process.getuid?.() !== 0 ? "not root (a mount namespace is needed)" : undefined;
  let broker: BrokerProcess;
  let pam: ReturnType<typeof pamConfDir>;

  beforeAll(async () => {
    if (skip) return;
    broker = await startBrokerProcess({ rank: 0, jobs: [{ id: "1227286904832", userid: 1, ranks: "0" }] }, dir.path);
    pam = pamConfDir(dir.path);
    pam.service("flux-pam-install", [`account required ${join(destdir, DEFAULT.securedir, "pam_flux.so")} uri=${broker.uri}`]);
  });
  afterAll(async () => {
    await broker?.stop();
  });

  async function acct(user: string): Promise<string[]> {
    const args = driverArgs({ confdir: pam.path, service: "flux-pam-install", user, actions: ["acct"] });
    const r = await run(["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$0" /usr/libexec && exec "$@"', join(destdir, "usr/libexec"), ...args]);
    if (r.code !== 0) throw new Error(`pam-driver failed (${r.code}): ${r.stderr}`);
    return r.stdout.split("\n").filter((l) => l.startsWith("acct ") || l.startsWith("conv ")).map((l) => l.replace(/^(acct \S+) \d+$/, "$1"));
  }

  test.skipIf(skip !== undefined)("a user with a running job here is admitted", async () => {
    expect(await acct("daemon")).toEqual(["acct PAM_SUCCESS"]);
  });

  test.skipIf(skip !== undefined)("a user without one is denied with the message", async () => {
    expect(await acct("bin")).toEqual(["conv PAM_ERROR_MSG Access denied: user bin has no active jobs on this node", "acct PAM_PERM_DENIED"]);
  });
});
