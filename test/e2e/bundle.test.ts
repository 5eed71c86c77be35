// How build/compile.ts bundles: dbus-native's marshalling gets the stand-ins for node:util and
// node:assert (src/systemd/dbus-native-shims/), which behave as the real modules do where
// dbus-native uses them; a dbus-native whose files changed fails the build.

import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bundleConfig } from "../../build/compile";
import { ROOT, tempDir } from "./harness";

const SHIMS = join(ROOT, "src/systemd/dbus-native-shims");
const TOP_LEVEL_UTIL = /\butil\s*=\s*require\("(node:)?util"\)/;
const TOP_LEVEL_ASSERT = /\bassert\s*=\s*require\("(node:)?assert"\)/;

async function bundleText(entry: string, withPlugins = true): Promise<string> {
  const cfg = bundleConfig(entry);
  const r = await Bun.build({ ...cfg, minify: false, bytecode: false, ...(withPlugins ? {} : { plugins: [] }) });
  expect(r.success).toBe(true);
  return r.outputs[0]!.text();
}

describe("bundle", () => {
  test("dbus-native's marshalling, as flux-pam loads it, requires neither node:util nor node:assert when loaded", async () => {
    const entry = join(ROOT, "node_modules/dbus-native/lib/message.js");
    const shimmed = await bundleText(entry);
    expect(shimmed).toContain('Symbol.for("nodejs.util.inspect.custom")');
    expect(shimmed).not.toMatch(TOP_LEVEL_UTIL);
    expect(shimmed).not.toMatch(TOP_LEVEL_ASSERT);
    // the control: the same bundle without the stand-ins loads both
    const plain = await bundleText(entry, false);
    expect(plain).toMatch(TOP_LEVEL_UTIL);
    expect(plain).toMatch(TOP_LEVEL_ASSERT);
  });

  test("the util stand-in: node:util's inspect.custom symbol, and its inspect", () => {
    const shim = require(join(SHIMS, "util.cjs"));
    const util = require("node:util");
    expect(shim.inspect.custom).toBe(util.inspect.custom);
    const v = { a: [1, "x"], [util.inspect.custom]: () => "custom!" };
    expect(shim.inspect(v, { depth: 0 })).toBe(util.inspect(v, { depth: 0 }));
    expect(shim.inspect({ b: new Map([[1, 2]]) })).toBe(util.inspect({ b: new Map([[1, 2]]) }));
  });

  test("the assert stand-in: a truthy value passes, anything else throws node:assert's AssertionError", () => {
    const assert = require(join(SHIMS, "assert.cjs"));
    const real = require("node:assert");
    expect(() => assert(1 === 1)).not.toThrow();
    expect(() => assert("x")).not.toThrow();
    for (const falsy of [false, 0, "", null, undefined]) {
      let err: unknown;
      try {
        assert(falsy, "tree has one element");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(real.AssertionError);
      expect((err as Error).message).toBe("tree has one element");
    }
  });

  test("a dbus-native whose files no longer have the require line fails the build", async () => {
    const dir = tempDir("flux-pam-bundle-");
    try {
      const lib = join(dir.path, "node_modules/dbus-native/lib");
      mkdirSync(lib, { recursive: true });
      writeFileSync(join(lib, "values.js"), "const { inspect } = require('util');\nmodule.exports = { inspect };\n");
      writeFileSync(join(dir.path, "entry.js"), "module.exports = require('dbus-native/lib/values.js');\n");
      let failure = "";
      try {
        const r = await Bun.build({ ...bundleConfig(join(dir.path, "entry.js")), minify: false, bytecode: false, throw: false });
        failure = r.success ? "" : r.logs.map(String).join("\n");
      } catch (e) {
        failure = String(e);
      }
      expect(failure).toContain("expected the line");
    } finally {
      dir.remove();
    }
  });
});
