import { describe, expect, test } from "bun:test";
import { parseAccountArgs, parseHookArgs, parseSessionArgs } from "../../src/commands/pam-words";
import { UsageError } from "../../src/commands/pam-args";

describe("parseAccountArgs()", () => {
  test("no words: defaults", () => {
    expect(parseAccountArgs([])).toEqual({ allowGuestUser: false, debug: false, timeout: 5, jobHint: true });
  });

  test("pam.d words", () => {
    expect(parseAccountArgs(["allow-guest-user", "debug", "uri=local:///run/x=y", "timeout=500ms"])).toEqual({
      allowGuestUser: true,
      debug: true,
      uri: "local:///run/x=y",
      timeout: 0.5,
      jobHint: true,
    });
  });

  test("no-job-hint (the module option) and silent (PAM_SILENT) both turn the job hint off", () => {
    expect(parseAccountArgs(["no-job-hint"]).jobHint).toBe(false);
    expect(parseAccountArgs(["silent"]).jobHint).toBe(false);
    expect(parseAccountArgs(["--no-job-hint"]).jobHint).toBe(false);
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

describe("parseSessionArgs()", () => {
  test("defaults: scope prefix flux-pam, 10 s", () => {
    expect(parseSessionArgs([])).toEqual({ scopePrefix: "flux-pam", debug: false, timeout: 10 });
  });

  test("the words pam_flux.so passes", () => {
    expect(parseSessionArgs(["scope-prefix=login", "lock-dir=/run/x", "debug", "uri=local:///s", "timeout=9s"])).toEqual({
      scopePrefix: "login",
      lockDir: "/run/x",
      uri: "local:///s",
      debug: true,
      timeout: 9,
    });
  });

  for (const bad of [["scope-prefix=a/b"], ["scope-prefix=a b"], ["allow-guest-user"], ["lock-dir"]]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      expect(() => parseSessionArgs(bad)).toThrow(UsageError);
    });
  }
});

describe("parseHookArgs()", () => {
  test("--dry-run or nothing", () => {
    expect(parseHookArgs("prolog", [])).toEqual({ dryRun: false });
    expect(parseHookArgs("prolog", ["--dry-run"])).toEqual({ dryRun: true });
  });

  test("anything else is a usage error", () => {
    expect(() => parseHookArgs("housekeeping", ["--force"])).toThrow(UsageError);
  });
});
