// The runtime drop-ins of a unit (src/systemd/dropins.ts): which are the limits' (flux-pam's),
// and that removing those leaves an administrator's other runtime properties alone.

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LIMITS } from "../../src/decide/drift";
import { removeRuntimeDropins, runtimeDropins } from "../../src/systemd/dropins";
import { tempDir } from "../e2e/harness";

const UNIT = "user-1000.slice";
let root: ReturnType<typeof tempDir>;
const dir = () => join(root.path, `${UNIT}.d`);

function dropins(names: string[]): void {
  mkdirSync(dir(), { recursive: true });
  for (const n of names) writeFileSync(join(dir(), n), "[Slice]\n");
}

beforeEach(() => {
  root = tempDir("flux-pam-dropins-");
});
afterEach(() => root.remove());

describe("runtime drop-ins", () => {
  test("listed by property: the limits' are told from an administrator's TasksMax and MemoryMax", () => {
    dropins(["50-TasksMax.conf", "50-MemoryMax.conf", "50-AllowedCPUs.conf", "50-DeviceAllow.conf", "README", "60-AllowedCPUs.conf"]);
    expect(runtimeDropins(UNIT, undefined, root.path).map((f) => f.slice(dir().length + 1))).toEqual([
      "50-AllowedCPUs.conf",
      "50-DeviceAllow.conf",
      "50-MemoryMax.conf",
      "50-TasksMax.conf",
    ]);
    expect(runtimeDropins(UNIT, LIMITS, root.path).map((f) => f.slice(dir().length + 1))).toEqual(["50-AllowedCPUs.conf", "50-DeviceAllow.conf"]);
    for (const n of LIMITS) {
      root.remove();
      root = tempDir("flux-pam-dropins-");
      dropins(["50-TasksMax.conf", `50-${n}.conf`]);
      expect(runtimeDropins(UNIT, LIMITS, root.path)).toEqual([join(dir(), `50-${n}.conf`)]);
    }
  });

  test("removing the limits' keeps the administrator's, and the directory that holds them", () => {
    dropins(["50-TasksMax.conf", ...LIMITS.map((n) => `50-${n}.conf`)]);
    expect(removeRuntimeDropins(UNIT, LIMITS, root.path)).toHaveLength(LIMITS.length);
    expect(readdirSync(dir())).toEqual(["50-TasksMax.conf"]);
  });

  test("removing the last of them removes the directory; a missing directory is nothing to remove", () => {
    dropins(LIMITS.map((n) => `50-${n}.conf`));
    removeRuntimeDropins(UNIT, LIMITS, root.path);
    expect(existsSync(dir())).toBe(false);
    expect(removeRuntimeDropins(UNIT, LIMITS, root.path)).toEqual([]);
    expect(runtimeDropins(UNIT, LIMITS, root.path)).toEqual([]);
  });
});
