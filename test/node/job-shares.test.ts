import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RankShare } from "../../src/flux/r";
import { readShares, removeShares, sharesPath, writeShares } from "../../src/node/job-shares";
import { lockDirPerTest } from "../e2e/harness";

const locks = lockDirPerTest();

const two = new Map<bigint, RankShare>([
  [18446744073709551615n, { cores: [0, 1], gpus: [0], host: "node0" }],
  [5n, { cores: [4], gpus: [] }],
]);

describe("the record of the jobs' shares", () => {
  test("reads back what was written, job ids exact beyond 2^53", () => {
    writeShares(locks.dir, 1000, 3, two);
    expect(readShares(locks.dir, 1000, 3)).toEqual(two);
    expect(statSync(sharesPath(locks.dir, 1000)).mode & 0o777).toBe(0o600);
  });

  test("a second write replaces the first (ended jobs are dropped)", () => {
    writeShares(locks.dir, 1000, 3, two);
    writeShares(locks.dir, 1000, 3, new Map([[5n, { cores: [4], gpus: [] }]]));
    expect([...readShares(locks.dir, 1000, 3).keys()]).toEqual([5n]);
  });

  test("is empty when missing, of another rank, or not what writeShares writes: the hook then asks the broker", () => {
    expect(readShares(locks.dir, 1000, 3).size).toBe(0);
    writeShares(locks.dir, 1000, 3, two);
    expect(readShares(locks.dir, 1000, 4).size).toBe(0);
    for (const text of ["{", '{"rank":3,"jobs":{"x":{"cores":[0],"gpus":[]}}}', '{"rank":3,"jobs":{"1":{"cores":[-1],"gpus":[]}}}', '{"rank":3,"jobs":{"1":{"cores":[0]}}}', "[]"]) {
      writeFileSync(sharesPath(locks.dir, 1000), text);
      expect(readShares(locks.dir, 1000, 3).size).toBe(0);
    }
  });

  test("a symlink in its place is neither followed when read nor written through", () => {
    const elsewhere = join(locks.tmp, "elsewhere");
    writeShares(locks.dir, 1001, 3, two);
    writeFileSync(elsewhere, readFileSync(sharesPath(locks.dir, 1001)));
    symlinkSync(elsewhere, sharesPath(locks.dir, 1000));
    expect(readShares(locks.dir, 1000, 3).size).toBe(0);
    writeShares(locks.dir, 1000, 3, new Map());
    expect(readFileSync(elsewhere, "utf8")).toContain("18446744073709551615"); // untouched
    expect(readShares(locks.dir, 1000, 3).size).toBe(0); // the link was replaced by a record of no jobs
  });

  test("removeShares forgets it, and is idempotent", () => {
    writeShares(locks.dir, 1000, 3, two);
    removeShares(locks.dir, 1000);
    expect(existsSync(sharesPath(locks.dir, 1000))).toBe(false);
    removeShares(locks.dir, 1000);
  });
});
