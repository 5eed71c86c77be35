import { describe, expect, test } from "bun:test";
import { ConfigError, pamConfig } from "../../src/flux/config";

describe("pamConfig()", () => {
  test("an empty config means every default", () => {
    expect(pamConfig({})).toEqual({
      manageUserSlice: false,
      killUserSlice: false,
      killSliceGraceTime: 30,
      debug: false,
      constrainResources: false,
      allowGuestUser: false,
      allowRootOwner: false,
      privateMode: false,
    });
  });

  test("reads every key", () => {
    expect(
      pamConfig({
        pam: { "manage-user-slice": true, "kill-user-slice": true, "kill-slice-grace-time": "0.5h", debug: true },
        exec: { service: "sdexec", "sdexec-constrain-resources": true },
        access: { "allow-guest-user": true, "allow-root-owner": true, "private-mode": true },
      }),
    ).toEqual({
      manageUserSlice: true,
      killUserSlice: true,
      killSliceGraceTime: 1800,
      debug: true,
      constrainResources: true,
      allowGuestUser: true,
      allowRootOwner: true,
      privateMode: true,
    });
  });

  test("a bare number of seconds is a grace time", () => {
    expect(pamConfig({ pam: { "kill-slice-grace-time": 45 } }).killSliceGraceTime).toBe(45);
  });

  for (const [what, cfg] of [
    ["a string where a boolean belongs", { pam: { "manage-user-slice": "true" } }],
    ["a table that is not a table", { pam: true }],
    ["a grace time that is not a duration", { pam: { "kill-slice-grace-time": "soon" } }],
    ["an infinite grace time", { pam: { "kill-slice-grace-time": "infinity" } }],
    ["a negative grace time", { pam: { "kill-slice-grace-time": -1 } }],
  ] as const) {
    test(`refuses ${what}`, () => {
      expect(() => pamConfig(cfg as never)).toThrow(ConfigError);
    });
  }
});
