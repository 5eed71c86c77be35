// How build/compile.ts bundles: dbus-native's marshalling gets the stand-ins for node:util and
// node:assert (src/systemd/dbus-native-shims/), which behave as the real modules do where
// dbus-native uses them; a dbus-native whose files changed fails the build.

import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bundleConfig } from "../../build/compile";
import { BUN, ROOT, tempDir } from "./harness";

const SHIMS = join(ROOT, "src/systemd/dbus-native-shims");
// an assignment of the module, whatever the bundler names the variable (util, import_node_util, ...)
const TOP_LEVEL_UTIL = /[\w$]*\s*=\s*require\("(node:)?util"\)/;
const TOP_LEVEL_ASSERT = /[\w$]*\s*=\s*require\("(node:)?assert"\)/;

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

  test("the util stand-in: node:util's inspect.custom symbol, and its inspect, as a bundled Variant prints", async () => {
    const shim = require(join(SHIMS, "util.cjs"));
    const util = require("node:util");
    expect(shim.inspect.custom).toBe(util.inspect.custom);
    const v = { a: [1, "x"], [util.inspect.custom]: () => "custom!" };
    expect(shim.inspect(v, { depth: 0 })).toBe(util.inspect(v, { depth: 0 }));
    // dbus-native's own values.js, bundled with the stand-in: its Variant's custom inspect runs
    const dir = tempDir("flux-pam-bundle-");
    try {
      const file = join(dir.path, "values.cjs");
      writeFileSync(file, await bundleText(join(ROOT, "node_modules/dbus-native/lib/values.js")));
      const { Variant } = require(file);
      expect(util.inspect(new Variant("s", "x"))).toBe("Variant('s', 'x')");
      expect(util.inspect([new Variant("au", [1, 2])])).toBe("[ Variant('au', [ 1, 2 ]) ]");
    } finally {
      dir.remove();
    }
  });

  test("the assert stand-in: a truthy value passes, anything else throws node:assert's AssertionError", () => {
    const assert = require(join(SHIMS, "assert.cjs"));
    const real = require("node:assert");
    expect(() => assert(1 === 1)).not.toThrow();
    expect(() => assert("x")).not.toThrow();
    // as marshall.js calls it: one argument (node:assert then words the message itself)
    expect(() => assert(false)).toThrow(real.AssertionError);
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

  describe("a changed dbus-native fails the build (build/compile.ts, as make runs it)", () => {
    async function compileWith(values: string): Promise<string> {
      const dir = tempDir("flux-pam-bundle-");
      try {
        const lib = join(dir.path, "node_modules/dbus-native/lib");
        mkdirSync(lib, { recursive: true });
        writeFileSync(join(lib, "values.js"), values);
        writeFileSync(join(dir.path, "entry.js"), "module.exports = require('dbus-native/lib/values.js');\n");
        const p = Bun.spawn([BUN, join(ROOT, "build/compile.ts"), join(dir.path, "entry.js"), join(dir.path, "out")], { stdout: "pipe", stderr: "pipe" });
        const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
        expect(code).toBe(1);
        return err;
      } finally {
        dir.remove();
      }
    }

    test("the require line gone", async () => {
      expect(await compileWith("const { inspect } = require('util');\nmodule.exports = { inspect };\n")).toContain("expected the line");
    });

    test("util used for more than inspect", async () => {
      const err = await compileWith("const util = require('util');\nmodule.exports = (x) => util.format('%s', util.inspect(x));\n");
      expect(err).toContain("uses util for more than util.inspect (1 other use)");
    });
  });
});
