import { describe, expect, test } from "bun:test";
import {
  IdsetError,
  formatIdset,
  formatRanges,
  idsetUnion,
  parseIdRanges,
  parseIdset,
  parseIdsetIds,
  rangesFirst,
  rangesHave,
  rangesIndexOf,
  rangesUnion,
} from "../../src/flux/idset";
import { FsdError, parseFsd } from "../../src/flux/fsd";
import { expandHostlist, hostlistNth, hostlistPositions } from "../../src/flux/hostlist";

describe("idsets (RFC 22)", () => {
  test("parse ranges and singletons, sorted and unique", () => {
    expect(parseIdset("7,0-3,2")).toEqual([0, 1, 2, 3, 7]);
    expect(parseIdset("[1-2]")).toEqual([1, 2]);
    expect(parseIdset("")).toEqual([]);
  });

  test("format compresses runs", () => {
    expect(formatIdset([0, 1, 2, 3, 7, 9, 10])).toBe("0-3,7,9-10");
  });

  test("union", () => {
    expect(formatIdset(idsetUnion(parseIdset("0-1"), parseIdset("3"), parseIdset("1-2")))).toBe("0-3");
  });

  for (const bad of ["a", "3-1", "1,,2", "-1", "0-99999999"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => parseIdset(bad)).toThrow(IdsetError);
    });
  }
});

describe("idsets from a broker, as libidset writes them: parseIdRanges()", () => {
  test("ids and ranges, ascending, optionally in brackets; the empty set", () => {
    expect(parseIdRanges("0-3,7,9-10")).toEqual([[0, 3], [7, 7], [9, 10]]);
    expect(parseIdRanges("[1-2]")).toEqual([[1, 2]]);
    expect(parseIdRanges("0,1,2")).toEqual([[0, 0], [1, 1], [2, 2]]);
    expect(parseIdRanges("")).toEqual([]);
  });

  test("the whole u32 range is one range: membership without expanding", () => {
    const all = parseIdRanges("0-4294967295");
    expect(all).toEqual([[0, 4294967295]]);
    expect(rangesHave(all, 0)).toBe(true);
    expect(rangesHave(all, 4294967295)).toBe(true);
    expect(rangesHave(all, 4294967296)).toBe(false);
    expect(rangesFirst(all)).toBe(0);
    expect(rangesIndexOf(all, 4000000000)).toBe(4000000000);
  });

  test("membership, first id and position on several ranges", () => {
    const r = parseIdRanges("2-3,7,100-200");
    expect([1, 2, 3, 4, 7, 99, 100, 150, 200, 201].map((i) => rangesHave(r, i))).toEqual([false, true, true, false, true, false, true, true, true, false]);
    expect(rangesFirst(r)).toBe(2);
    expect([2, 3, 7, 100, 200, 5].map((i) => rangesIndexOf(r, i))).toEqual([0, 1, 2, 3, 103, -1]);
    expect(rangesFirst([])).toBeUndefined();
  });

  test("union merges overlapping and adjacent ranges", () => {
    expect(formatRanges(rangesUnion(parseIdRanges("0-1,9"), parseIdRanges("2-3"), parseIdRanges("5,8-10")))).toBe("0-3,5,8-10");
  });

  // What no idset encoder writes: blanks, leading zeros, unsorted or overlapping parts,
  // a range that is not lo < hi, ids past u32, an empty part, stray signs or brackets.
  for (const bad of [" 0", "0 ", "0, 2", "0 -3", "00", "01", "0-03", "3,0-1", "0-3,2", "2,2", "3-3", "3-1", "4294967296", "0-99999999999", "1,,2", ",1", "1,", "-1", "+1", "[]", "[0-1", "0-1]", "a", "0x1", "1.0", "1e0", "１"]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      expect(() => parseIdRanges(bad)).toThrow(IdsetError);
    });
  }

  test("ids are spelled out only with a bound", () => {
    expect(parseIdsetIds("0-3,7")).toEqual([0, 1, 2, 3, 7]);
    expect(() => parseIdsetIds("0-4294967295")).toThrow("too many ids");
  });

  test("a refusal quotes a hostile idset clipped", () => {
    const long = "x".repeat(10_000);
    expect(() => parseIdRanges(long)).toThrow(/^"x{61}\.\.\." is not an idset/);
  });
});

describe("Flux Standard Duration (RFC 23)", () => {
  test("units and bare seconds", () => {
    expect(parseFsd("30s")).toBe(30);
    expect(parseFsd("1m")).toBe(60);
    expect(parseFsd("0.5h")).toBe(1800);
    expect(parseFsd("2d")).toBe(172800);
    expect(parseFsd("45")).toBe(45);
    expect(parseFsd("100ms")).toBe(0.1);
    expect(parseFsd(12)).toBe(12);
    expect(parseFsd("infinity")).toBe(Infinity);
  });

  for (const bad of ["", "s", "1x", "-1s", "1 h", "1h30m"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => parseFsd(bad)).toThrow(FsdError);
    });
  }
});

describe("hostlists (RFC 29)", () => {
  test("expand brackets with padding, in order", () => {
    expect(expandHostlist("node[08-10],login1")).toEqual(["node08", "node09", "node10", "login1"]);
    expect(expandHostlist("vm")).toEqual(["vm"]);
  });

  test("the n-th host is found without expanding", () => {
    expect(hostlistNth(["node[10-12]"], 1)).toBe("node11");
    expect(hostlistNth(["a1,b[01-02]", "c"], 3)).toBe("c");
    expect(hostlistNth(["node[0-4294967295]"], 4000000000)).toBe("node4000000000");
    expect(hostlistNth(["r[1-2]n[1-3]"], 4)).toBe("r2n2");
    expect(hostlistNth(["vm"], 1)).toBeUndefined();
    expect(hostlistNth(["node[a-b]"], 0)).toBeUndefined();
  });

  test("the positions of a host, in one walk: bounded, never expanded", () => {
    expect(hostlistPositions("vm,vm,other", "vm", 10)).toEqual([0, 1]);
    expect(hostlistPositions("node[08-10],node09", "node09", 10)).toEqual([1, 3]);
    expect(hostlistPositions("fluke[1-9]", "fluke7", 10)).toEqual([6]);
    expect(hostlistPositions("node[0-4294967295]", "node7", 1 << 20)).toBe("too many");
    expect(hostlistPositions("node[a-b]", "node7", 10)).toBeUndefined();
  });
});
