// The yardstick the targets are set against: a program of the same Bun, compiled exactly as
// flux-pam is (build/compile.ts with make compile-flags), that does one thing only. What a
// command takes above it is what flux-pam, the broker and systemd add; the floor itself moves
// from machine to machine.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

/** Compiles `source` (the program's whole text) to DIR/NAME and returns its path. */
export async function buildFloor(dir: string, name: string, source: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const ts = join(dir, `${name}.ts`);
  writeFileSync(ts, source);
  return compileFloor(ts, join(dir, name));
}

/** Compiles the program `entry` (a file, which may import the project's own) to `out`. */
export async function compileFloor(entry: string, out: string): Promise<string> {
  const flags = (await Bun.$`make -s -C ${ROOT} compile-flags`.text()).trim().split(/\s+/);
  await Bun.$`${process.execPath} ${join(ROOT, "build/compile.ts")} ${flags} ${entry} ${out}`.quiet();
  return out;
}
