// make deb: what the package holds, what lintian says, and the package installed into a throwaway
// copy of the Debian rootfs, run there (flux-pam --version, pam_flux.so through pamtester), removed.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "../e2e/harness";
import { containerSkipReason, rootfsPath } from "../systemd/container";
import { type Dirs, USR, layout, make, run, runOk } from "../install/layout";
import pkg from "../../package.json" with { type: "json" };

const arch = Bun.spawnSync(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.toString().trim();
/** The .deb puts pam_flux.so where libpam-modules keeps pam_unix.so (packaging/LINTIAN.md says why). */
const securedir = Bun.spawnSync(["dpkg-query", "-L", `libpam-modules:${arch}`])
  .stdout.toString()
  .split("\n")
  .find((l) => l.endsWith("/pam_unix.so"))!
  .replace(/\/pam_unix\.so$/, "");
const DEB_DIRS: Dirs = { ...USR, securedir };
const DOC = ["/usr/share/doc/flux-pam/copyright", "/usr/share/doc/flux-pam/changelog.gz", "/usr/share/lintian/overrides/flux-pam"];
const DENIED = "Access denied: user alice has no active jobs on this node";

const dir = tempDir("flux-pam-deb-");
let deb: string;

beforeAll(async () => {
  const out = await make("deb");
  deb = join(ROOT, out.stdout.trim().split("\n").at(-1)!);
}, 300_000);
afterAll(() => dir.remove());

interface Member {
  path: string;
  perms: string;
  owner: string;
  target?: string;
}

let listing: Promise<string> | undefined;
/** `dpkg-deb -c` (read once: it unpacks 40 MB of xz). */
function list(): Promise<string> {
  listing ??= runOk(["dpkg-deb", "-c", deb]).then((r) => r.stdout);
  return listing;
}

/** `dpkg-deb -c`, parsed: "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/x [-> target]". */
async function contents(): Promise<Member[]> {
  return (await list())
    .trim()
    .split("\n")
    .map((line) => {
      const [perms, owner, , , , ...rest] = line.split(/\s+/);
      const [path, target] = rest.join(" ").split(" -> ");
      return { path: path!.replace(/^\./, "").replace(/\/$/, "") || "/", perms: perms!, owner: owner!, ...(target ? { target } : {}) };
    })
    .filter((m) => !m.perms.startsWith("d"));
}

describe("make deb", () => {
  test("names the package build/flux-pam_VERSION_ARCH.deb after package.json", () => {
    expect(deb).toBe(join(ROOT, `build/flux-pam_${pkg.version}_${arch}.deb`));
  });

  test("dpkg-deb -c lists exactly the install layout, the doc files and the lintian overrides", async () => {
    const perms = (mode: number) =>
      "-" + [6, 3, 0].map((s) => ((mode >> s) & 4 ? "r" : "-") + ((mode >> s) & 2 ? "w" : "-") + ((mode >> s) & 1 ? "x" : "-")).join("");
    const expected: Member[] = [
      ...layout(DEB_DIRS, ".gz").map((e): Member =>
        e.kind === "link" ? { path: e.path, perms: "lrwxrwxrwx", owner: "root/root", target: e.target } : { path: e.path, perms: perms(e.mode!), owner: "root/root" },
      ),
      ...DOC.map((path): Member => ({ path, perms: "-rw-r--r--", owner: "root/root" })),
    ];
    const byPath = (a: Member, b: Member) => a.path.localeCompare(b.path);
    expect((await contents()).sort(byPath)).toEqual(expected.sort(byPath));
  });

  test("directories are root's, mode 0755", async () => {
    const dirs = (await list()).trim().split("\n").filter((l) => l.startsWith("d"));
    expect(dirs.length).toBeGreaterThan(10);
    for (const l of dirs) expect(l).toMatch(/^drwxr-xr-x root\/root /);
  });

  test("control: name, version, architecture, Depends from the ELF files, postinst and md5sums", async () => {
    const field = async (f: string) => (await runOk(["dpkg-deb", "-f", deb, f])).stdout.trim();
    expect(await field("Package")).toBe("flux-pam");
    expect(await field("Version")).toBe(pkg.version);
    expect(await field("Architecture")).toBe(arch);
    expect(await field("Depends")).toMatch(/^libc6 \(>= [\d.]+\), libpam0g \(>= [\d.]+\)$/);
    const control = join(dir.path, "control");
    await runOk(["dpkg-deb", "-e", deb, control]);
    expect(await Bun.file(join(control, "postinst")).text()).toContain("systemd-tmpfiles ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} --create flux-pam.conf");
    const sums = (await Bun.file(join(control, "md5sums")).text()).trim().split("\n");
    const files = (await contents()).filter((m) => m.perms.startsWith("-")).map((m) => m.path.slice(1));
    expect(sums.map((l) => l.slice(34)).sort()).toEqual(files.sort());
  });

  test("lintian reports no error and no warning (the overrides are explained in packaging/LINTIAN.md)", async () => {
    const r = await run(["lintian", "--fail-on", "error,warning", deb]);
    const tags = r.stdout.split("\n").filter((l) => /^[EW]: /.test(l));
    expect({ code: r.code, tags }).toEqual({ code: 0, tags: [] });
  }, 120_000);
});

describe("the .deb in a throwaway copy of the Debian rootfs", () => {
  // The cached rootfs of the systemd tests (test/systemd/make-rootfs.sh) is never written: each
  // step mounts an overlay of it (writes go to a temp dir) plus /proc, in a private mount
  // namespace that takes the mounts with it when the step ends, and chroots there.
  const skip = containerSkipReason();
  const upper = join(dir.path, "upper");
  const work = join(dir.path, "work");
  const mnt = join(dir.path, "root");
  let rootfs: string;

  beforeAll(async () => {
    if (skip) return;
    rootfs = await rootfsPath();
    for (const d of [upper, work, mnt]) mkdirSync(d, { recursive: true });
    mkdirSync(join(upper, "tmp"), { recursive: true, mode: 0o1777 });
    copyFileSync(deb, join(upper, "tmp/flux-pam.deb"));
  }, 1_800_000);

  /** Runs `cmd` chrooted in the throwaway root, as root, with a clean environment. */
  function inRoot(cmd: string[]) {
    const script = [
      'mount -t overlay overlay -o "lowerdir=$0,upperdir=$1,workdir=$2" "$3"',
      'mount -t proc proc "$3/proc"',
      'root=$3; shift 3; exec chroot "$root" "$@"',
    ].join(" && ");
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, rootfs, upper, work, mnt, ...cmd], {
      DEBIAN_FRONTEND: "noninteractive",
      LC_ALL: "C",
    });
  }

  test.skipIf(skip !== undefined)("apt-get installs it from the file, and its postinst creates /run/flux-pam 0700 root:root", async () => {
    const r = await inRoot(["apt-get", "install", "-y", "-q", "/tmp/flux-pam.deb"]);
    expect({ code: r.code, stderr: r.stderr.split("\n").filter((l) => /^(E|W):/.test(l) && !l.includes("Can not write log")) }).toEqual({ code: 0, stderr: [] });
    expect((await inRoot(["stat", "-c", "%F %a %U:%G", "/run/flux-pam"])).stdout).toBe("directory 700 root:root\n");
    expect((await inRoot(["dpkg", "--verify", "flux-pam"])).stdout).toBe("");
  }, 120_000);

  test.skipIf(skip !== undefined)("flux-pam --version runs on a Debian without node or bun", async () => {
    expect((await inRoot(["sh", "-c", "command -v node bun || echo none"])).stdout).toBe("none\n");
    const r = await inRoot(["/usr/bin/flux-pam", "--version"]);
    expect({ code: r.code, version: r.stdout.split(" ")[0] }).toEqual({ code: 0, version: `flux-pam/${pkg.version}` });
  });

  test.skipIf(skip !== undefined)("the installed pam_flux.so, found by name by libpam, denies a user without a job (no broker here)", async () => {
    const stack = (lines: string[]) => ["sh", "-c", 'printf "%s\\n" "$@" > /etc/pam.d/flux-pam-test', "sh", ...lines];
    await inRoot(stack(["account sufficient pam_flux.so", "account required pam_deny.so"]));
    let r = await inRoot(["pamtester", "flux-pam-test", "alice", "acct_mgmt"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: `${DENIED}\npamtester: Authentication failure\n` });
    // alone, the module's own code: PAM_PERM_DENIED
    await inRoot(stack(["account required pam_flux.so"]));
    r = await inRoot(["pamtester", "flux-pam-test", "alice", "acct_mgmt"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: `${DENIED}\npamtester: Permission denied\n` });
  });

  test.skipIf(skip !== undefined)("dpkg -r removes every file it installed, without a warning", async () => {
    const r = await inRoot(["dpkg", "-r", "flux-pam"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const paths = [...layout(DEB_DIRS, ".gz").map((e) => e.path), ...DOC, "/usr/libexec/flux-pam"];
    const left = await inRoot(["sh", "-c", 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done', "sh", ...paths]);
    expect(left.stdout).toBe("");
    expect((await inRoot(["dpkg-query", "-W", "-f", "${db:Status-Status}", "flux-pam"])).stdout).not.toBe("installed");
  });
});
