import { describe, expect, test } from "bun:test";
import { JobIdError, formatDothex, formatF58, formatKvs, jobId, parseJobId } from "../../src/flux/jobid";

const ID = jobId(1227286904832n);

describe("parseJobId()", () => {
  test("reads every RFC 19 encoding of the same id", () => {
    for (const text of ["1227286904832", "0x11dc0000000", "0000.011d.c000.0000", "job.0000.011d.c000.0000", "ƒZEr9Bmq", "fZEr9Bmq"]) {
      expect(parseJobId(text)).toBe(ID);
    }
  });

  test("F58 matches the RFC 19 test vectors (base58, bitcoin alphabet)", () => {
    const vectors: [bigint, string][] = [
      [0n, "ƒ1"],
      [1n, "ƒ2"],
      [57n, "ƒz"],
      [58n, "ƒ21"],
      [4294967295n, "ƒ7YXq9G"],
      [18446744073709551615n, "ƒjpXCZedGfVQ"],
    ];
    for (const [n, text] of vectors) {
      expect(formatF58(jobId(n))).toBe(text);
      expect(parseJobId(text)).toBe(jobId(n));
    }
    expect(formatF58(ID)).toBe("ƒZEr9Bmq");
    expect(formatDothex(ID)).toBe("0000.011d.c000.0000");
    expect(formatKvs(ID)).toBe("job.0000.011d.c000.0000");
  });

  test("ids above 2^53 round-trip exactly through every encoding", () => {
    const big = jobId((1n << 64n) - 3n);
    for (const text of [big.toString(), formatF58(big), formatF58(big, "f"), formatDothex(big), formatKvs(big), `0x${big.toString(16)}`]) {
      expect(parseJobId(text)).toBe(big);
    }
  });

  test("zero is ƒ1", () => {
    expect(formatF58(jobId(0n))).toBe("ƒ1");
    expect(parseJobId("ƒ1")).toBe(jobId(0n));
  });

  for (const bad of ["", "abc", "-1", "18446744073709551616", "0x1ffffffffffffffff", "ƒ0OIl", "f", "1.5", "job.0000.0000", "12 34"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => parseJobId(bad)).toThrow(JobIdError);
    });
  }

  test("mnemonic words are refused with a message that says so", () => {
    expect(() => parseJobId("academy-academy-academy--academy-academy-academy")).toThrow(/mnemonic/);
  });
});
