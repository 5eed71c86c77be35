import { describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readStateFile, removeStateFile, replaceStateFile } from "../../src/node/state-file";
import { lockDirPerTest } from "../e2e/harness";

const locks = lockDirPerTest();

describe("the lock dir's state files", () => {
  test("replaceStateFile writes 0600 and replaces a symbolic link in its place, never its target", () => {
    const target = join(locks.tmp, "target");
    writeFileSync(target, "keep");
    symlinkSync(target, join(locks.dir, "f"));
    replaceStateFile(join(locks.dir, "f"), "new");
    expect(readFileSync(target, "utf8")).toBe("keep");
    expect(lstatSync(join(locks.dir, "f")).isFile()).toBe(true);
    expect(statSync(join(locks.dir, "f")).mode & 0o777).toBe(0o600);
    expect(readStateFile(join(locks.dir, "f"), 100, "a record")).toBe("new");
  });

  test("a stale temporary file of this pid is no obstacle", () => {
    writeFileSync(join(locks.dir, `f.${process.pid}.tmp`), "left by a crash");
    replaceStateFile(join(locks.dir, "f"), "new");
    expect(readStateFile(join(locks.dir, "f"), 100, "a record")).toBe("new");
  });

  test("readStateFile: none is undefined; a symbolic link, a directory, a fifo (without hanging) and a file too large are errors", () => {
    expect(readStateFile(join(locks.dir, "none"), 100, "a record")).toBeUndefined();
    symlinkSync("/etc/passwd", join(locks.dir, "link"));
    expect(() => readStateFile(join(locks.dir, "link"), 100, "a record")).toThrow("a symbolic link, not a regular file");
    mkdirSync(join(locks.dir, "sub"));
    expect(() => readStateFile(join(locks.dir, "sub"), 100, "a record")).toThrow("not a regular file");
    execFileSync("mkfifo", [join(locks.dir, "fifo")]);
    expect(() => readStateFile(join(locks.dir, "fifo"), 100, "a record")).toThrow("not a regular file");
    writeFileSync(join(locks.dir, "big"), "x".repeat(101));
    expect(() => readStateFile(join(locks.dir, "big"), 100, "a record")).toThrow("too large for a record");
  });

  test("removeStateFile is idempotent", () => {
    replaceStateFile(join(locks.dir, "f"), "x");
    removeStateFile(join(locks.dir, "f"));
    removeStateFile(join(locks.dir, "f"));
    expect(readStateFile(join(locks.dir, "f"), 100, "a record")).toBeUndefined();
  });
});
