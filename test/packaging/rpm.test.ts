// packaging/rpm/flux-pam.spec: it parses, and rpmbuild (Debian's rpm) builds the install layout from it.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, tempDir } from "../e2e/harness";
import { type Dirs, layout, make, run, runOk } from "../install/layout";
import pkg from "../../package.json" with { type: "json" };

const SPEC = join(ROOT, "packaging/rpm/flux-pam.spec");
/** The RHEL layout: PAM modules in /usr/lib64/security (from %{_libdir}). */
const RHEL: Dirs = {
  bindir: "/usr/bin",
  libexecdir: "/usr/libexec",
  securedir: "/usr/lib64/security",
  tmpfilesdir: "/usr/lib/tmpfiles.d",
  mandir: "/usr/share/man",
};
const haveRpmbuild = Bun.spawnSync(["sh", "-c", "command -v rpmbuild"]).exitCode === 0;

describe("packaging/rpm/flux-pam.spec", () => {
  test("rpmspec -P parses it, with and without --with prebuilt", async () => {
    for (const extra of [[], ["--with", "prebuilt"]]) {
      const r = await run(["rpmspec", "-P", ...extra, SPEC]);
      expect({ extra, code: r.code, stderr: r.stderr }).toEqual({ extra, code: 0, stderr: "" });
      expect(r.stdout).toContain(`Version:        ${pkg.version}\n`);
      expect(r.stdout).toContain("LIBEXECDIR=/usr/libexec");
      expect(r.stdout).toContain("SECUREDIR=/usr/lib64/security");
    }
  });

  test.skipIf(!haveRpmbuild)(
    "make rpm builds the package with the install layout, the Bun binary unstripped",
    async () => {
      const out = (await make("rpm")).stdout.trim().split("\n").at(-1)!;
      expect(out).toEndWith(`/flux-pam-${pkg.version}-1.x86_64.rpm`);
      const { stdout } = await runOk(["rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES} %{FILELINKTOS}\\n]", out]);
      const files = stdout.trim().split("\n").map((l) => l.trim());
      for (const e of layout(RHEL)) {
        // man pages may be compressed by rpm's brp-compress (RHEL) or not (Debian's rpm)
        const row = files.find((f) => f.split(" ")[2]?.replace(/\.gz$/, "") === e.path);
        expect({ path: e.path, row: row?.split(" ").slice(0, 2).join(" ") }).toEqual({
          path: e.path,
          row: `${e.kind === "link" ? "lrwxrwxrwx" : e.mode === 0o755 ? "-rwxr-xr-x" : "-rw-r--r--"} root:root`,
        });
        if (e.kind === "link") expect(row!.split(" ")[3]).toBe(e.target!);
      }
      // the program, not the bare Bun runtime that a stripped copy would be
      const dir = tempDir("flux-pam-rpm-");
      try {
        await runOk(["sh", "-c", 'cd "$1" && cp "$0" p.rpm && rpm2archive p.rpm && tar -xzf p.rpm.tgz ./usr/libexec/flux-pam/flux-pam', out, dir.path]);
        const r = await runOk([join(dir.path, "usr/libexec/flux-pam/flux-pam"), "--version"]);
        expect(r.stdout.split(" ")[0]).toBe(`flux-pam/${pkg.version}`);
      } finally {
        dir.remove();
      }
    },
    300_000,
  );
});
