import { describe, expect, test } from "bun:test";
import { parseAccountArgs } from "../../src/commands/account-args";
import { UsageError } from "../../src/commands/pam-args";

describe("parseAccountArgs()", () => {
  test("no words: defaults", () => {
    expect(parseAccountArgs([])).toEqual({ allowGuestUser: false, debug: false, timeout: 5 });
  });

  test("pam.d words", () => {
    expect(parseAccountArgs(["allow-guest-user", "debug", "uri=local:///run/x=y", "timeout=500ms"])).toEqual({
      allowGuestUser: true,
      debug: true,
      uri: "local:///run/x=y",
      timeout: 0.5,
    });
  });

  test("flag forms, with = or a separate value", () => {
    expect(parseAccountArgs(["--allow-guest-user", "--uri", "local:///a", "--timeout=2s"])).toMatchObject({ allowGuestUser: true, uri: "local:///a", timeout: 2 });
  });

  for (const bad of [["allow-everyone"], ["uri"], ["uri="], ["--uri"], ["debug=1"], ["timeout=soon"], ["-d"], ["timeout=inf"], ["timeout=infinity"], ["timeout=2h"]]) {
    test(`refuses ${JSON.stringify(bad)} as a usage error`, () => {
      expect(() => parseAccountArgs(bad)).toThrow(UsageError);
    });
  }
});
