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
  const flags = (await Bun.$`make -s -C ${ROOT} compile-flags`.text()).trim().split(/\s+/);
  const ts = join(dir, `${name}.ts`);
  const out = join(dir, name);
  writeFileSync(ts, source);
  await Bun.$`${process.execPath} ${join(ROOT, "build/compile.ts")} ${flags} ${ts} ${out}`.quiet();
  return out;
}
