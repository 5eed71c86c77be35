import { describe, expect, test } from "bun:test";
import { IdsetError, formatIdset, idsetUnion, parseIdset } from "../../src/flux/idset";
import { FsdError, parseFsd } from "../../src/flux/fsd";
import { expandHostlist } from "../../src/flux/hostlist";

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
});
