import { describe, expect, test } from "bun:test";
import {
  JsonReal,
  JsonSyntaxError,
  MAX_JSON_CONTAINERS,
  MAX_JSON_DEPTH,
  MAX_JSON_EXACT_NUMBERS,
  MAX_JSON_MEMBERS,
  isObject,
  parseJson,
  stringifyJson,
  toBigInt,
} from "../../src/flux/json";

describe("parseJson()", () => {
  test("keeps integers above 2^53 exact as bigint", () => {
    expect(parseJson('{"id":18446744073709551615}')).toEqual({ id: 18446744073709551615n });
    expect(parseJson("9007199254740993")).toBe(9007199254740993n);
  });

  test("returns safe integers as numbers, and numbers with a fraction or an exponent as JsonReal", () => {
    expect(parseJson('[1,-2,0.5,1e3,1795660432.2232015]')).toEqual([
      1,
      -2,
      new JsonReal(0.5, "0.5"),
      new JsonReal(1000, "1e3"),
      new JsonReal(1795660432.2232015, "1795660432.2232015"),
    ]);
  });

  test("reads strings with escapes", () => {
    expect(parseJson('"a\\"b\\u00e9\\n"')).toBe('a"bé\n');
  });

  test("a __proto__ key stays data", () => {
    const v = parseJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(v)).toEqual(["__proto__"]);
  });

  for (const bad of ["", "{", '{"a"}', "[1,]", "tru", '"\u0001"', "1 2", "{'a':1}", "1.5.5", "01", "-", "1e", ".5", "{1.5:0}", '{"a":1.5 2.5}', "[1.5", '"abc', "NaN", "Infinity"]) {
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

describe("parseJson(): what a reply may hold", () => {
  test("an integer written as a real (1002.0, 1002e0) is a JsonReal, never an integer", () => {
    const v = parseJson('{"userid":1002.0,"state":16e0,"x":1002}') as Record<string, unknown>;
    expect(v.userid).toEqual(new JsonReal(1002, "1002.0"));
    expect(v.state).toEqual(new JsonReal(16, "16e0"));
    expect(toBigInt(v.userid as never)).toBeUndefined();
    expect(v.x).toBe(1002);
    expect(isObject(v.userid as never)).toBe(false);
  });

  test("reals, u64 integers and strings that look like our placeholders survive together", () => {
    const text = '[0.5,18446744073709551615,1.5,"0.5","1.5",{"a":[2.5,{"b":9007199254740993}]},"\\\\",3.5,"\\"",-0.0]';
    const v = parseJson(text);
    expect(v).toEqual([
      new JsonReal(0.5, "0.5"),
      18446744073709551615n,
      new JsonReal(1.5, "1.5"),
      "0.5",
      "1.5",
      { a: [new JsonReal(2.5, "2.5"), { b: 9007199254740993n }] },
      "\\",
      new JsonReal(3.5, "3.5"),
      '"',
      new JsonReal(-0, "-0.0"),
    ]);
    // ...and re-encode byte for byte.
    expect(stringifyJson(v)).toBe(text);
  });

  test("a string of 2 MB and of 8 MB is read", () => {
    for (const n of [2 << 20, 8 << 20]) {
      const s = "x".repeat(n);
      expect(parseJson(`{"s":"${s}","n":1.5}`)).toEqual({ s, n: new JsonReal(1.5, "1.5") });
    }
  });

  test("a 100,000-deep reply is refused saying so, not with a stack overflow", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(() => parseJson(deep)).toThrow(`invalid JSON: nested deeper than ${MAX_JSON_DEPTH} levels at offset ${MAX_JSON_DEPTH}`);
    const objects = '{"a":'.repeat(100_000) + "1" + "}".repeat(100_000);
    expect(() => parseJson(objects)).toThrow("nested deeper than");
  });

  test("nesting up to the limit is read", () => {
    const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
    expect(() => parseJson(ok)).not.toThrow();
  });

  test("brackets inside strings do not count as nesting", () => {
    const s = "[{".repeat(1000);
    expect(parseJson(JSON.stringify({ s }))).toEqual({ s });
  });

  test("a key repeated in an object is refused (jansson cannot write one)", () => {
    expect(() => parseJson('{"userid":1000,"userid":1002}')).toThrow("invalid JSON: a key is repeated in an object");
    expect(() => parseJson('[{"a":{"b":1,"b":2}}]')).toThrow("a key is repeated");
    expect(parseJson('[{"a":1},{"a":2}]')).toEqual([{ a: 1 }, { a: 2 }]);
  });

  test("an integer longer than 20 digits is refused, not rounded", () => {
    expect(() => parseJson(`[${"9".repeat(21)}]`)).toThrow("an integer of 21 digits at offset 1, longer than any 64-bit integer");
    expect(() => parseJson(`${"1".repeat(200_000)}`)).toThrow("an integer of 200000 digits");
    expect(parseJson("99999999999999999999")).toBe(99999999999999999999n);
  });

  test("what a reply may cost is bounded: objects and arrays, members, exact numbers", () => {
    expect(() => parseJson(`[${"{},".repeat(MAX_JSON_CONTAINERS)}{}]`)).toThrow(`invalid JSON: more than ${MAX_JSON_CONTAINERS} objects and arrays`);
    expect(() => parseJson(`[${"0,".repeat(MAX_JSON_MEMBERS)}0]`)).toThrow(`invalid JSON: more than ${MAX_JSON_MEMBERS} values in arrays and objects`);
    expect(() => parseJson(`[${"0.5,".repeat(MAX_JSON_EXACT_NUMBERS)}0.5]`)).toThrow(`invalid JSON: more than ${MAX_JSON_EXACT_NUMBERS} reals and integers past 2^53`);
    // each bound, just met, is fine
    expect((parseJson(`[${"{},".repeat(MAX_JSON_CONTAINERS - 2)}{}]`) as unknown[]).length).toBe(MAX_JSON_CONTAINERS - 1);
    expect((parseJson(`[${"18446744073709551615,".repeat(MAX_JSON_EXACT_NUMBERS - 1)}1]`) as unknown[]).length).toBe(MAX_JSON_EXACT_NUMBERS);
  });

  test("a text past maxLength is refused before it is read", () => {
    expect(() => parseJson('"abcdef"', { maxLength: 4 })).toThrow("invalid JSON: 8 characters, more than the 4 accepted");
  });

  test("the runtime parser's words come without its prefix", () => {
    expect(() => parseJson("[1,]")).toThrow(/^invalid JSON: (?!JSON Parse error)/);
  });
});
