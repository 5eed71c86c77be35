// The lock directory's names: which uids the node holds something for.

import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { lockDirUids } from "../../src/node/lock-dir";
import { tempDir } from "../e2e/harness";

describe("lockDirUids()", () => {
  test("a uid as the hooks write it: no leading zero, at most 2^32 - 1, the kinds asked for and nothing after them", () => {
    const d = tempDir("flux-pam-lockdir-");
    try {
      for (const n of ["uid.0.active", "uid.1000.active", "uid.4294967295.shares", "uid.01000.active", "uid.4294967296.active", "uid.1000.active.tmp", "uid.1001.lock", "uid.x.active"])
        writeFileSync(join(d.path, n), "");
      expect(lockDirUids(d.path, ["active", "shares"]).sort((a, b) => a - b)).toEqual([0, 1000, 4294967295]);
    } finally {
      d.remove();
    }
  });

  test("a directory that cannot be read holds no uid", () => {
    expect(lockDirUids("/nonexistent/flux-pam", ["active"])).toEqual([]);
  });
});
