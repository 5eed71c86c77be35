// Whether a child instance's socket may be believed: owned by the instance owner or root, in a
// directory nobody else can replace it in (group/other writable only with the sticky bit).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { UnixSocketListener } from "bun";
import { instanceSocketProblem } from "../../src/node/instance-socket";
import { tempDir } from "../e2e/harness";

const OWNER = 3;
const tmp = tempDir("flux-pam-isock-");
const listeners: UnixSocketListener<undefined>[] = [];

/** A listening socket `local-0` in a new directory of `mode` (owned by root unless `dirOwner`). */
function socketIn(name: string, mode: number, dirOwner?: number): string {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  chmodSync(dir, mode);
  if (dirOwner !== undefined) chownSync(dir, dirOwner, dirOwner);
  const path = join(dir, "local-0");
  listeners.push(Bun.listen<undefined>({ unix: path, socket: { data() {} } }));
  return path;
}

beforeAll(() => chmodSync(tmp.path, 0o755));
afterAll(() => {
  for (const l of listeners) l.stop(true);
  tmp.remove();
});

describe("instanceSocketProblem()", () => {
  test("root's or the owner's socket in a directory only they can write is believed", () => {
    expect(instanceSocketProblem(socketIn("plain", 0o755), OWNER)).toBeUndefined();
    expect(instanceSocketProblem(socketIn("owners", 0o700, OWNER), OWNER)).toBeUndefined();
  });

  test("a directory others can write is refused; with the sticky bit (as /tmp) it is believed", () => {
    const open = socketIn("open", 0o777);
    expect(instanceSocketProblem(open, OWNER)).toBe(`${join(tmp.path, "open")} is writable by others: the socket could be replaced`);
    expect(instanceSocketProblem(socketIn("groupw", 0o775), OWNER)).toBe(`${join(tmp.path, "groupw")} is writable by others: the socket could be replaced`);
    expect(instanceSocketProblem(socketIn("sticky", 0o1777), OWNER)).toBeUndefined();
  });

  test("a socket or a directory of another user is refused", () => {
    const theirs = socketIn("theirs", 0o755);
    chownSync(theirs, 65534, 65534);
    expect(instanceSocketProblem(theirs, OWNER)).toBe(`instance socket ${theirs} is owned by uid 65534, not the instance owner (3)`);
    const dirOfOthers = socketIn("others-dir", 0o755, 65534);
    expect(instanceSocketProblem(dirOfOthers, OWNER)).toBe(`${join(tmp.path, "others-dir")} is owned by uid 65534, not the instance owner (3)`);
  });

  test("every directory up to / is checked: one above the socket's that others can write is refused", () => {
    const outer = join(tmp.path, "outer");
    mkdirSync(outer);
    chmodSync(outer, 0o777);
    const inner = join(outer, "inner");
    mkdirSync(inner);
    chmodSync(inner, 0o700);
    chownSync(inner, OWNER, OWNER);
    const path = join(inner, "local-0");
    listeners.push(Bun.listen<undefined>({ unix: path, socket: { data() {} } }));
    // (anyone could rename inner away and put a directory of their own, with their own socket, in its place)
    expect(instanceSocketProblem(path, OWNER)).toBe(`${outer} is writable by others: the socket could be replaced`);
    chmodSync(outer, 0o1777);
    expect(instanceSocketProblem(path, OWNER)).toBeUndefined();
  });

  test("a path through a symbolic link, or with a \"..\" or \".\" or empty component, is refused", () => {
    const real = socketIn("real", 0o755);
    const link = join(tmp.path, "link");
    symlinkSync(join(tmp.path, "real"), link);
    expect(instanceSocketProblem(join(link, "local-0"), OWNER)).toBe(`${link} is not a directory (a symbolic link)`);
    for (const bad of [`${tmp.path}/other/../real/local-0`, `${tmp.path}/./real/local-0`, `${tmp.path}//real/local-0`, "real/local-0"])
      expect(instanceSocketProblem(bad, OWNER)).toBe(`instance socket ${bad}: not a plain absolute path (an empty, "." or ".." component)`);
    expect(instanceSocketProblem(real, OWNER)).toBeUndefined();
  });

  test("something that is not a socket, or nothing, is refused", () => {
    const file = join(tmp.path, "file");
    writeFileSync(file, "");
    expect(instanceSocketProblem(file, OWNER)).toBe(`instance socket ${file} is not a socket`);
    expect(instanceSocketProblem(join(tmp.path, "absent", "local-0"), OWNER)).toStartWith(`instance socket ${join(tmp.path, "absent", "local-0")}: `);
  });
});
