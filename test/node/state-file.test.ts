import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readStateFile, removeStateFile, replaceStateFile } from "../../src/node/state-file";
import { tempDir } from "../e2e/harness";

let tmp: ReturnType<typeof tempDir>;
let dir: string;
beforeEach(() => {
  tmp = tempDir();
  dir = join(tmp.path, "locks");
  mkdirSync(dir, { mode: 0o700 });
});
afterEach(() => tmp.remove());

describe("the lock dir's state files", () => {
  test("replaceStateFile writes 0600 and replaces a symbolic link in its place, never its target", () => {
    const target = join(tmp.path, "target");
    writeFileSync(target, "keep");
    symlinkSync(target, join(dir, "f"));
    replaceStateFile(join(dir, "f"), "new");
    expect(readFileSync(target, "utf8")).toBe("keep");
    expect(lstatSync(join(dir, "f")).isFile()).toBe(true);
    expect(statSync(join(dir, "f")).mode & 0o777).toBe(0o600);
    expect(readStateFile(join(dir, "f"), 100, "a record")).toBe("new");
  });

  test("a stale temporary file of this pid is no obstacle", () => {
    writeFileSync(join(dir, `f.${process.pid}.tmp`), "left by a crash");
    replaceStateFile(join(dir, "f"), "new");
    expect(readStateFile(join(dir, "f"), 100, "a record")).toBe("new");
  });

  test("readStateFile: none is undefined; a symbolic link, a directory, a fifo (without hanging) and a file too large are errors", () => {
    expect(readStateFile(join(dir, "none"), 100, "a record")).toBeUndefined();
    symlinkSync("/etc/passwd", join(dir, "link"));
    expect(() => readStateFile(join(dir, "link"), 100, "a record")).toThrow("a symbolic link, not a regular file");
    mkdirSync(join(dir, "sub"));
    expect(() => readStateFile(join(dir, "sub"), 100, "a record")).toThrow("not a regular file");
    execFileSync("mkfifo", [join(dir, "fifo")]);
    expect(() => readStateFile(join(dir, "fifo"), 100, "a record")).toThrow("not a regular file");
    writeFileSync(join(dir, "big"), "x".repeat(101));
    expect(() => readStateFile(join(dir, "big"), 100, "a record")).toThrow("too large for a record");
  });

  test("removeStateFile is idempotent", () => {
    replaceStateFile(join(dir, "f"), "x");
    removeStateFile(join(dir, "f"));
    removeStateFile(join(dir, "f"));
    expect(readStateFile(join(dir, "f"), 100, "a record")).toBeUndefined();
  });
});
