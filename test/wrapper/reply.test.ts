// oneLine(): text that fits one line of the reply protocol as pam_flux.so reads it.

import { describe, expect, test } from "bun:test";
import { MAX_TEXT_BYTES, oneLine } from "../../src/wrapper/reply";

describe("oneLine()", () => {
  test("keeps short text as it is", () => {
    expect(oneLine("Access denied: user daemon has no active jobs on this node")).toBe(
      "Access denied: user daemon has no active jobs on this node",
    );
  });

  test("replaces control characters, newlines included", () => {
    expect(oneLine("a\nb\rc\x7fd\x00e")).toBe("a?b?c?d?e");
  });

  test("bounds ASCII text to MAX_TEXT_BYTES with an ellipsis", () => {
    const s = oneLine("x".repeat(5000));
    expect(Buffer.byteLength(s)).toBe(MAX_TEXT_BYTES);
    expect(s.endsWith("...")).toBe(true);
  });

  test("bounds multi-byte text by bytes, not characters, and cuts on a code point", () => {
    const s = oneLine("ƒ€😀".repeat(400));
    expect(Buffer.byteLength(s)).toBeLessThanOrEqual(MAX_TEXT_BYTES);
    expect(Buffer.from(s).toString("utf8")).toBe(s);
    expect(s.includes("\uFFFD")).toBe(false);
  });

  test("leaves text of exactly MAX_TEXT_BYTES whole", () => {
    const s = "é".repeat(MAX_TEXT_BYTES / 2);
    expect(oneLine(s)).toBe(s);
  });
});
