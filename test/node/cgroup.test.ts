// cgroup v2 reads: finding the mount in mountinfo, listing a subtree's processes minus a child.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Mount, cgroupOfPid, ownProcsFile, parseCgroup2Mount, pidsInCgroup, userSliceCgroup } from "../../src/node/cgroup";
import { NodeStateError } from "../../src/node/errors";
import { tempDir } from "../e2e/harness";

const PURE_V2 = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`;

describe("the cgroup2 mount, from mountinfo", () => {
  test("on a real node it is /sys/fs/cgroup", () => {
    expect(parseCgroup2Mount(PURE_V2)).toEqual({ mountPoint: "/sys/fs/cgroup", root: "/", options: ["rw", "nsdelegate", "memory_recursiveprot"] });
  });

  test("on a hybrid host it is /sys/fs/cgroup/unified", () => {
    expect(parseCgroup2Mount(HYBRID)?.mountPoint).toBe("/sys/fs/cgroup/unified");
  });

  test("a mount point with a space is unescaped", () => {
    expect(parseCgroup2Mount("1 2 0:3 / /mnt/c\\040g rw - cgroup2 none rw\n")?.mountPoint).toBe("/mnt/c g");
  });

  test("the whole hierarchy wins over a mount of part of it", () => {
    const text = "1 2 0:3 /sub /mnt/part rw - cgroup2 none rw\n4 2 0:3 / /mnt/all rw - cgroup2 none rw\n";
    expect(parseCgroup2Mount(text)?.mountPoint).toBe("/mnt/all");
  });

  test("a node without cgroup2 is an error naming the file", () => {
    expect(parseCgroup2Mount(HYBRID.replace("cgroup2 cgroup2", "tmpfs tmpfs"))).toBeUndefined();
    const d = tempDir();
    try {
      writeFileSync(join(d.path, "mountinfo"), HYBRID.split("\n").filter((l) => !l.includes("cgroup2")).join("\n"));
      expect(() => cgroup2Mount(join(d.path, "mountinfo"))).toThrow(NodeStateError);
      expect(() => cgroup2Mount(join(d.path, "mountinfo"))).toThrow(/no cgroup2 file system is mounted/);
    } finally {
      d.remove();
    }
  });

  test("user-UID.slice lies under user.slice", () => {
    expect(userSliceCgroup(1000, "/sys/fs/cgroup")).toBe("/sys/fs/cgroup/user.slice/user-1000.slice");
  });
});

describe("pids in a cgroup subtree", () => {
  const d = tempDir();
  afterAll(() => d.remove());
  const slice = join(d.path, "user.slice/user-1000.slice");
  const cg = (rel: string, pids: number[]) => {
    mkdirSync(join(slice, rel), { recursive: true });
    writeFileSync(join(slice, rel, "cgroup.procs"), pids.map((p) => `${p}\n`).join(""));
  };
  cg("", []);
  cg("user@1000.service", [10, 11]);
  cg("user@1000.service/app.slice", [12]);
  cg("flux-pam-20.scope", [20, 22]);
  cg("flux-pam-20.scope/nested", [21]);
  cg("session-3.scope", [30]);

  test("every process of the slice outside user@UID.service, sorted", () => {
    expect(pidsInCgroup(slice, ["user@1000.service"])).toEqual([20, 21, 22, 30]);
  });

  test("without exclusions the whole subtree", () => {
    expect(pidsInCgroup(slice)).toEqual([10, 11, 12, 20, 21, 22, 30]);
  });

  test("a slice that does not exist holds no processes", () => {
    expect(pidsInCgroup(join(d.path, "user.slice/user-4242.slice"), ["user@4242.service"])).toEqual([]);
  });

  test("an exclusion that climbs out of the subtree is refused", () => {
    expect(() => pidsInCgroup(slice, ["../x"])).toThrow(TypeError);
  });
});

test("this process has a cgroup v2 path", () => {
  expect(cgroupOfPid("self")).toStartWith("/");
  expect(cgroupOfPid(0x7ffffffe)).toBeUndefined();
});

describe("the warm-up's target: our own cgroup's cgroup.procs, only when it is in our view", () => {
  test("a cgroup of the namespace we see: its cgroup.procs under the mount", () => {
    const mount = { mountPoint: "/sys/fs/cgroup", root: "/" };
    expect(ownProcsFile("/system.slice/ssh.service", mount)).toBe("/sys/fs/cgroup/system.slice/ssh.service/cgroup.procs");
    expect(ownProcsFile("/", { mountPoint: "/sys/fs/cgroup/unified", root: "/" })).toBe("/sys/fs/cgroup/unified/cgroup.procs");
  });

  test("outside our cgroup namespace (/.., as nsenter leaves a process), unknown, or not a path: none", () => {
    for (const own of ["/..", "/../..", "/../../user.slice", "/a/../b", undefined, "", "system.slice"])
      expect(ownProcsFile(own, { mountPoint: "/sys/fs/cgroup", root: "/" })).toBeUndefined();
  });

  test("a mount of another part of the hierarchy (a host's mount seen from a child namespace): none", () => {
    for (const root of ["/..", "/machine.slice/c1"]) expect(ownProcsFile("/system.slice/ssh.service", { mountPoint: "/sys/fs/cgroup", root })).toBeUndefined();
  });
});
