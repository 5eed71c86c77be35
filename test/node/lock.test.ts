import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import * as fs from "node:fs";
import { chmodSync, chownSync, mkdirSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LockTimeoutError, NodeStateError } from "../../src/node/errors";
import { acquireUidLock, lockPath } from "../../src/node/lock";
import { checkLockDir } from "../../src/node/lock-dir";
import { createMarker, markerExists, markerPath, removeMarker } from "../../src/node/marker";
import { tempDir } from "../e2e/harness";

let tmp: ReturnType<typeof tempDir>;
let dir: string;
beforeEach(() => {
  tmp = tempDir();
  dir = join(tmp.path, "locks");
});
afterEach(() => tmp.remove());

describe("checkLockDir()", () => {
  test("creates a missing directory 0700 when asked", () => {
    checkLockDir(dir, true);
    expect(statSync(dir).mode & 0o7777).toBe(0o700);
  });

  test("refuses a missing directory for a login", () => {
    expect(() => checkLockDir(dir, false)).toThrow(/does not exist/);
  });

  for (const mode of [0o770, 0o707, 0o720, 0o702]) {
    test(`refuses a directory of mode ${mode.toString(8)} as group/other writable`, () => {
      mkdirSync(dir);
      chmodSync(dir, mode);
      expect(() => checkLockDir(dir, true)).toThrow(/group\/other writable/);
    });
  }

  test("refuses a directory not owned by root", () => {
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 1, 1);
    expect(() => checkLockDir(dir, true)).toThrow(/owned by uid 1, not root/);
  });

  test("refuses a symlink to a good directory", () => {
    mkdirSync(join(tmp.path, "real"), { mode: 0o700 });
    symlinkSync(join(tmp.path, "real"), dir);
    expect(() => checkLockDir(dir, true)).toThrow(/symbolic link/);
  });

  // The races of a lock dir whose parent others can write (a FLUX_PAM_LOCK_DIR under /tmp):
  // a symlink planted at the name must never lead root to chmod what it points to.
  describe("a symlink planted while the directory is being created is not followed", () => {
    const realMkdir = fs.mkdirSync;
    let target: string;
    beforeEach(() => {
      target = join(tmp.path, "victim");
      mkdirSync(target);
      chmodSync(target, 0o755);
    });
    /** checkLockDir(dir, true) with `before` / `after` run around its mkdir of `dir`. */
    const createRacing = (race: { before?: () => void; after?: () => void }) => {
      const spy = spyOn(fs, "mkdirSync").mockImplementation(((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
        if (p !== dir) return realMkdir(p, o);
        race.before?.();
        const r = realMkdir(p, o);
        race.after?.();
        return r;
      }) as typeof fs.mkdirSync);
      try {
        checkLockDir(dir, true);
      } finally {
        spy.mockRestore();
      }
    };

    test("between the lstat and the mkdir (which then fails EEXIST): the target keeps its mode", () => {
      expect(() => createRacing({ before: () => symlinkSync(target, dir) })).toThrow(/symbolic link/);
      expect(statSync(target).mode & 0o7777).toBe(0o755);
    });

    test("between the mkdir and setting its mode: the target keeps its mode", () => {
      const swap = () => {
        renameSync(dir, join(tmp.path, "moved"));
        symlinkSync(target, dir);
      };
      expect(() => createRacing({ after: swap })).toThrow(/replaced while being created/);
      expect(statSync(target).mode & 0o7777).toBe(0o755);
    });
  });
});

describe("acquireUidLock()", () => {
  beforeEach(() => checkLockDir(dir, true));

  test("creates the lock file 0600 and takes it", async () => {
    const l = await acquireUidLock(dir, 1000, 1000);
    expect(statSync(lockPath(dir, 1000)).mode & 0o7777).toBe(0o600);
    l.release();
  });

  test("a second holder waits until the first releases", async () => {
    const first = await acquireUidLock(dir, 1000, 1000);
    let got = false;
    const second = acquireUidLock(dir, 1000, 5000).then((l) => ((got = true), l));
    await Bun.sleep(100);
    expect(got).toBe(false);
    first.release();
    (await second).release();
    expect(got).toBe(true);
  });

  test("another process holding the lock makes us give up at the timeout", async () => {
    writeFileSync(lockPath(dir, 7), "");
    chmodSync(lockPath(dir, 7), 0o600);
    const holder = Bun.spawn(["flock", lockPath(dir, 7), "sleep", "5"], { stdout: "ignore" });
    try {
      await Bun.sleep(200);
      const e = await acquireUidLock(dir, 7, 300).catch((e) => e);
      expect(e).toBeInstanceOf(LockTimeoutError);
    } finally {
      holder.kill();
      await holder.exited;
    }
  });

  test("locks of different users are independent: one user's held lock does not hold another's", async () => {
    const a = await acquireUidLock(dir, 1, 100);
    try {
      // The same user's lock is held (the control: this would time out for uid 2 if they were one lock)...
      expect(await acquireUidLock(dir, 1, 50).catch((e) => e)).toBeInstanceOf(LockTimeoutError);
      // ...while another user's is had at once.
      const b = await acquireUidLock(dir, 2, 50);
      expect(b.path).toBe(lockPath(dir, 2));
      b.release();
    } finally {
      a.release();
    }
  });

  test("refuses a lock file that root does not own (someone else made it first)", async () => {
    checkLockDir(dir, true);
    writeFileSync(lockPath(dir, 1000), "", { mode: 0o600 });
    chownSync(lockPath(dir, 1000), 65534, 65534);
    const e = await acquireUidLock(dir, 1000, 100).catch((e) => e);
    expect(e).toBeInstanceOf(NodeStateError);
    expect(e.message).toBe(`${lockPath(dir, 1000)}: lock file is owned by uid 65534, not root`);
  });

  for (const [what, make] of [
    ["a FIFO", (p: string) => Bun.spawnSync(["mkfifo", "-m", "600", p])],
    ["a directory", (p: string) => mkdirSync(p)],
  ] as const) {
    test(`refuses a lock file that is ${what}, at once`, async () => {
      checkLockDir(dir, true);
      make(lockPath(dir, 1000));
      const e = await acquireUidLock(dir, 1000, 100).catch((e) => e);
      expect(e).toBeInstanceOf(NodeStateError);
      expect(e.message).toBe(`${lockPath(dir, 1000)}: lock file is not a regular file`);
    });
  }

  test("refuses a symlinked lock file", async () => {
    writeFileSync(join(tmp.path, "target"), "");
    symlinkSync(join(tmp.path, "target"), lockPath(dir, 1000));
    const e = await acquireUidLock(dir, 1000, 100).catch((e) => e);
    expect(e).toBeInstanceOf(NodeStateError);
    expect(e.message).toContain("symbolic link");
  });
});

describe("marker", () => {
  beforeEach(() => checkLockDir(dir, true));

  test("create is idempotent and makes a 0600 file; remove is idempotent", () => {
    expect(markerExists(dir, 1000)).toBe(false);
    createMarker(dir, 1000);
    createMarker(dir, 1000);
    expect(statSync(markerPath(dir, 1000)).mode & 0o7777).toBe(0o600);
    expect(markerExists(dir, 1000)).toBe(true);
    removeMarker(dir, 1000);
    removeMarker(dir, 1000);
    expect(markerExists(dir, 1000)).toBe(false);
  });

  test("a symlinked marker is refused by create, exists and remove, and left in place", () => {
    writeFileSync(join(tmp.path, "target"), "");
    symlinkSync(join(tmp.path, "target"), markerPath(dir, 1000));
    expect(() => createMarker(dir, 1000)).toThrow(/symbolic link/);
    expect(() => markerExists(dir, 1000)).toThrow(/symbolic link/);
    expect(() => removeMarker(dir, 1000)).toThrow(/symbolic link/);
  });

  for (const [what, make] of [
    ["a FIFO", (p: string) => Bun.spawnSync(["mkfifo", "-m", "600", p])],
    ["a directory", (p: string) => mkdirSync(p)],
  ] as const) {
    test(`a marker that is ${what} is refused by create (at once: no open that waits for a reader), exists and remove`, () => {
      make(markerPath(dir, 1000));
      const why = `${markerPath(dir, 1000)}: marker is not a regular file`;
      expect(() => createMarker(dir, 1000)).toThrow(why);
      expect(() => markerExists(dir, 1000)).toThrow(why);
      expect(() => removeMarker(dir, 1000)).toThrow(why);
    });
  }

  test("a dangling symlink is not followed to create a file", () => {
    symlinkSync(join(tmp.path, "created-through-link"), markerPath(dir, 1000));
    expect(() => createMarker(dir, 1000)).toThrow(/symbolic link/);
    expect(() => statSync(join(tmp.path, "created-through-link"))).toThrow();
  });
});
