import { describe, expect, test } from "bun:test";
import { JsonSyntaxError, parseJson, stringifyJson } from "../../src/flux/json";

describe("parseJson()", () => {
  test("keeps integers above 2^53 exact as bigint", () => {
    expect(parseJson('{"id":18446744073709551615}')).toEqual({ id: 18446744073709551615n });
    expect(parseJson("9007199254740993")).toBe(9007199254740993n);
  });

  test("returns safe integers and floats as numbers", () => {
    expect(parseJson('[1,-2,0.5,1e3,1795660432.2232015]')).toEqual([1, -2, 0.5, 1000, 1795660432.2232015]);
  });

  test("reads strings with escapes", () => {
    expect(parseJson('"a\\"b\\u00e9\\n"')).toBe('a"bé\n');
  });

  test("a __proto__ key stays data", () => {
    const v = parseJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(v)).toEqual(["__proto__"]);
  });

  for (const bad of ["", "{", '{"a"}', "[1,]", "tru", '"\u0001"', "1 2", "{'a':1}"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => parseJson(bad)).toThrow(JsonSyntaxError);
    });
  }
});

describe("stringifyJson()", () => {
  test("writes bigints as exact integers", () => {
    expect(stringifyJson({ id: 18446744073709551615n, keys: ["R"], flags: 0 })).toBe('{"id":18446744073709551615,"keys":["R"],"flags":0}');
  });

  test("matches JSON.stringify for plain values", () => {
    const v = { a: [1, "x", null, true, 0.25], b: { c: "é\"" } };
    expect(stringifyJson(v)).toBe(JSON.stringify(v));
  });
});
