// The lock dir, its tmpfiles.d line, cgroup v2, systemd's version.

import { describe, expect, test } from "bun:test";
import { auditCgroup, auditLockDir, auditSystemdVersion, auditTmpfiles } from "../../src/audit/node-setup";
import { Tree } from "../../src/audit/tree";
import { lockDirProblem } from "../../src/node/lock-dir";
import { withTree } from "./fake-tree";

const line = (fs: { severity: string; what: string }[]) => fs.map((f) => `${f.severity}: ${f.what}`);

describe("the lock dir", () => {
  test("root-owned 0700 is ok", () => {
    expect(withTree({ "run/flux-pam": { dir: true, mode: 0o700 } }, (t) => line(auditLockDir(t.tree)))).toEqual(["ok: /run/flux-pam: root-owned, mode 0700"]);
  });

  test("group/other writable is an error with chmod as the fix", () => {
    const fs = withTree({ "run/flux-pam": { dir: true, mode: 0o777 } }, (t) => auditLockDir(t.tree));
    expect(fs).toEqual([
      {
        area: "lock-dir",
        severity: "error",
        what: "/run/flux-pam: lock directory is group/other writable (mode 0777): every prolog and every session refuses it",
        fix: "chmod 0700 /run/flux-pam",
      },
    ]);
  });

  test("a symbolic link is an error", () => {
    expect(withTree({ tmp: { dir: true }, "run/flux-pam": { link: "/tmp" } }, (t) => line(auditLockDir(t.tree)))).toEqual([
      "error: /run/flux-pam: lock directory is a symbolic link: every prolog and every session refuses it",
    ]);
  });

  test("not owned by root is refused (the same rule the hooks apply)", () => {
    const st = { isSymbolicLink: () => false, isDirectory: () => true, uid: 1000, mode: 0o40700 };
    expect(lockDirProblem(st)).toBe("lock directory is owned by uid 1000, not root");
  });

  test("missing from an image is fine (created at boot); missing on the node is a warning", () => {
    expect(withTree({}, (t) => line(auditLockDir(t.tree)))).toEqual(["ok: /run/flux-pam: not in the tree (a runtime directory: tmpfiles.d creates it at boot)"]);
    expect(line(auditLockDir(new Tree("/"), "/nonexistent/flux-pam-lock"))).toEqual([
      "warning: /nonexistent/flux-pam-lock does not exist: sessions are refused until a prolog creates it",
    ]);
  });
});

describe("tmpfiles.d", () => {
  const conf = (text: string, dir = "usr/lib/tmpfiles.d") => withTree({ [`${dir}/flux-pam.conf`]: text }, (t) => line(auditTmpfiles(t.tree)));

  test("the packaged line is ok", () => {
    expect(conf("# x\nd /run/flux-pam 0700 root root -\n")).toEqual(["ok: /usr/lib/tmpfiles.d/flux-pam.conf: d /run/flux-pam 0700 root root -"]);
  });

  test("missing is an error", () => {
    expect(withTree({}, (t) => auditTmpfiles(t.tree))[0]).toMatchObject({
      severity: "error",
      what: "no flux-pam.conf in /etc/tmpfiles.d, /run/tmpfiles.d, /usr/local/lib/tmpfiles.d, /usr/lib/tmpfiles.d: /run/flux-pam is not created at boot, and a local user can create it first and block every prolog",
    });
  });

  test("/etc overrides /usr/lib, as systemd-tmpfiles reads them", () => {
    const fs = withTree(
      { "usr/lib/tmpfiles.d/flux-pam.conf": "d /run/flux-pam 0700 root root -\n", "etc/tmpfiles.d/flux-pam.conf": "d /run/flux-pam 1777 root root -\n" },
      (t) => line(auditTmpfiles(t.tree)),
    );
    expect(fs).toEqual(['error: /etc/tmpfiles.d/flux-pam.conf: "d /run/flux-pam 1777 root root -" has mode 1777, not 0700']);
  });

  test("a world-writable mode is an error, a merely different one a warning", () => {
    expect(conf("d /run/flux-pam 0777 root root -")).toEqual(['error: /usr/lib/tmpfiles.d/flux-pam.conf: "d /run/flux-pam 0777 root root -" makes /run/flux-pam group/other writable']);
    expect(conf("d /run/flux-pam 0755 root root -")).toEqual(['warning: /usr/lib/tmpfiles.d/flux-pam.conf: "d /run/flux-pam 0755 root root -" has mode 0755, not 0700']);
  });

  test("another owner, or no line for the dir, is an error", () => {
    expect(conf("d /run/flux-pam 0700 flux flux -")).toEqual(['error: /usr/lib/tmpfiles.d/flux-pam.conf: "d /run/flux-pam 0700 flux flux -" gives /run/flux-pam to flux:flux, not root:root']);
    expect(conf("d /run/other 0700 root root -")).toEqual(["error: /usr/lib/tmpfiles.d/flux-pam.conf has no line for /run/flux-pam: it is not created at boot"]);
  });

  test("a site file whose name sorts before flux-pam.conf, with a line for the lock dir, is the one applied, and judged", () => {
    const fs = withTree(
      { "usr/lib/tmpfiles.d/flux-pam.conf": "d /run/flux-pam 0700 root root -\n", "etc/tmpfiles.d/00-site.conf": "d /run/flux-pam 0777 nobody nogroup -\n" },
      (t) => line(auditTmpfiles(t.tree)),
    );
    expect(fs).toEqual([
      'error: /etc/tmpfiles.d/00-site.conf: "d /run/flux-pam 0777 nobody nogroup -" gives /run/flux-pam to nobody:nogroup, not root:root (its name sorts before flux-pam.conf: systemd-tmpfiles applies this line, not flux-pam\'s)',
    ]);
    // one that sorts after it, or says nothing of the lock dir, changes nothing
    expect(
      withTree(
        { "usr/lib/tmpfiles.d/flux-pam.conf": "d /run/flux-pam 0700 root root -\n", "etc/tmpfiles.d/zz-site.conf": "d /run/flux-pam 0777 root root -\n", "usr/lib/tmpfiles.d/00-other.conf": "d /run/other 0755 root root -\n" },
        (t) => line(auditTmpfiles(t.tree)),
      ),
    ).toEqual(["ok: /usr/lib/tmpfiles.d/flux-pam.conf: d /run/flux-pam 0700 root root -"]);
  });

  test("tmpfiles.d's own spellings: %t for /run, a trailing slash, and - for the defaults (0755, root)", () => {
    expect(conf("d %t/flux-pam 0700 root root -")).toEqual(["ok: /usr/lib/tmpfiles.d/flux-pam.conf: d %t/flux-pam 0700 root root -"]);
    expect(conf("d /run/flux-pam/ 0700 - -")).toEqual(["ok: /usr/lib/tmpfiles.d/flux-pam.conf: d /run/flux-pam/ 0700 - -"]);
    expect(conf("d /run/flux-pam - - - -")).toEqual(['warning: /usr/lib/tmpfiles.d/flux-pam.conf: "d /run/flux-pam - - - -" has mode 0755, not 0700']);
  });

  test("masked with a link to /dev/null is an error", () => {
    expect(withTree({ "etc/tmpfiles.d/flux-pam.conf": { link: "/dev/null" } }, (t) => line(auditTmpfiles(t.tree)))).toEqual([
      "error: /etc/tmpfiles.d/flux-pam.conf is masked (a link to /dev/null): /run/flux-pam is not created at boot",
    ]);
  });
});

describe("cgroup v2", () => {
  const V2 = "26 25 0:24 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
  const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset
`;

  test("unified is ok, saying whether logins wait for the kernel's cgroup migration (favordynmods)", () => {
    expect(line(auditCgroup(V2))).toEqual([
      "ok: cgroup v2, unified hierarchy at /sys/fs/cgroup, not favordynmods: on Linux 6.0 and later moving each login into its scope waits for an RCU grace period (flux-pam(1), session-open)",
    ]);
    expect(line(auditCgroup(V2.replace("rw,nsdelegate", "rw,nsdelegate,favordynmods,memory_recursiveprot")))).toEqual([
      "ok: cgroup v2, unified hierarchy at /sys/fs/cgroup, mounted favordynmods: moving a login into its scope does not wait for the kernel",
    ]);
  });

  test("hybrid is a warning: the limits are not enforced", () => {
    expect(line(auditCgroup(HYBRID))).toEqual([
      "warning: hybrid cgroup hierarchy (cgroup2 at /sys/fs/cgroup/unified, 2 cgroup v1 mounts): CPU, memory-node and device limits on the slice are not enforced",
    ]);
  });

  test("v1 only is an error", () => {
    expect(auditCgroup(HYBRID.split("\n").filter((l) => !l.includes("cgroup2")).join("\n"))[0]!.severity).toBe("error");
  });
});

describe("systemd's version", () => {
  test("Debian's and RHEL's spellings are read; 239 is the minimum", () => {
    expect(line(["252.30-1~deb12u1", "239 (239-78.el8)", "v238", "unknown"].flatMap(auditSystemdVersion))).toEqual([
      "ok: systemd 252.30-1~deb12u1",
      "ok: systemd 239 (239-78.el8)",
      "error: systemd v238 is older than 239: no AllowedCPUs or runtime slice properties",
      'warning: systemd says its version is "unknown": not a number',
    ]);
  });
});
