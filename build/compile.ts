// Compiles an entry point into one self-contained executable, as `make` builds build/flux-pam
// (and bench/floor.ts its yardstick, with the same options). Bun's API rather than its CLI for
// one thing the CLI cannot do: dbus-native's files get small stand-ins for node:util and
// node:assert (src/systemd/dbus-native-shims/), which they use for util.inspect (and its custom
// symbol) and one assert(value) call, and which are most of what loading dbus-native's
// marshalling costs a short process.
//
// Usage: bun build/compile.ts [--jit-policy N] [--bytecode-order FILE[,FILE...]] ENTRY OUTFILE

import type { BuildConfig, BunPlugin } from "bun";
import { basename, join } from "node:path";

const SHIMS = join(import.meta.dir, "../src/systemd/dbus-native-shims");
/**
 * dbus-native's files that load node:util or node:assert: the line that does, what else the file
 * may do with the module (the stand-in has that and nothing more), and the stand-in.
 */
const SHIMMED: Record<string, { line: string; name: string; uses: RegExp; allowed: string; shim: string }> = {
  // util.inspect and util.inspect.custom only
  "values.js": { line: "const util = require('util');", name: "util", uses: /\butil\b(?!\.inspect\b)/g, allowed: "util.inspect", shim: join(SHIMS, "util.cjs") },
  // assert(value) calls only
  "marshall.js": { line: "const assert = require('assert');", name: "assert", uses: /\bassert\b(?!\()/g, allowed: "assert(...)", shim: join(SHIMS, "assert.cjs") },
};

/**
 * Only dbus-native's own files, and each at its one require line (Bun hands a plugin no
 * require of a builtin, so the line itself is rewritten): everything else keeps the real modules.
 * A dbus-native whose file no longer has that line, or uses the module for more than the stand-in
 * offers, fails the build rather than loading node:util again or failing at run time.
 */
export const dbusNativeShims: BunPlugin = {
  name: "dbus-native-shims",
  setup(build) {
    build.onLoad({ filter: /[/\\]node_modules[/\\]dbus-native[/\\]lib[/\\](values|marshall)\.js$/ }, async (args) => {
      const { line, name, uses, allowed, shim } = SHIMMED[basename(args.path)]!;
      const text = await Bun.file(args.path).text();
      const changed = `${args.path}: dbus-native changed (see build/compile.ts):`;
      if (text.split(line).length !== 2) throw new Error(`${changed} expected the line ${JSON.stringify(line)} once`);
      const rest = text.replace(line, "").replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, "");
      const other = rest.match(uses);
      if (other) throw new Error(`${changed} it uses ${name} for more than ${allowed} (${other.length} other use${other.length > 1 ? "s" : ""})`);
      return { contents: text.replace(line, line.replace(/require\('[a-z]+'\)/, `require(${JSON.stringify(shim)})`)), loader: "js" };
    });
  },
};

/** What every build shares, compiled or not (test/e2e/bundle.test.ts bundles with it, uncompiled). */
export function bundleConfig(entry: string): BuildConfig {
  return {
    entrypoints: [entry],
    target: "bun",
    format: "cjs",
    minify: true,
    sourcemap: "none",
    bytecode: true,
    plugins: [dbusNativeShims],
  };
}

export interface CompileOptions {
  jitPolicy?: number;
  bytecodeOrder?: string[];
}

export async function compile(entry: string, outfile: string, opts: CompileOptions = {}): Promise<void> {
  const result = await Bun.build({
    ...bundleConfig(entry),
    throw: false, // the logs below say what failed; a thrown AggregateError's message does not
    compile: {
      outfile,
      // Run as root from PAM in the caller's working directory: never read a bunfig.toml (a
      // preload script!), .env, tsconfig.json or package.json found there.
      autoloadBunfig: false,
      autoloadDotenv: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
      ...(opts.jitPolicy === undefined ? {} : { jitPolicy: opts.jitPolicy }),
      ...(opts.bytecodeOrder?.length ? { bytecodeOrder: opts.bytecodeOrder } : {}),
    },
  });
  if (!result.success) throw new Error(`compile ${entry}:\n${result.logs.map(String).join("\n")}`);
}

function parseArgs(argv: string[]): { entry: string; outfile: string; opts: CompileOptions } {
  const opts: CompileOptions = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [name, inline] = a.startsWith("--") ? (a.split(/=(.*)/s, 2) as [string, string | undefined]) : [a, undefined];
    const value = () => inline ?? argv[++i] ?? "";
    if (name === "--jit-policy") {
      const n = Number(value());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--jit-policy: not a positive number`);
      opts.jitPolicy = n;
    } else if (name === "--bytecode-order") opts.bytecodeOrder = value().split(",").filter(Boolean);
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else rest.push(a);
  }
  if (rest.length !== 2) throw new Error("usage: bun build/compile.ts [--jit-policy N] [--bytecode-order FILE[,FILE...]] ENTRY OUTFILE");
  return { entry: rest[0]!, outfile: rest[1]!, opts };
}

if (import.meta.main) {
  try {
    const { entry, outfile, opts } = parseArgs(process.argv.slice(2));
    await compile(entry, outfile, opts);
  } catch (e) {
    console.error(`build/compile.ts: ${(e as Error).message}`);
    process.exit(1);
  }
}
