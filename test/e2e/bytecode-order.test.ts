// The binary's bytecode is laid out by the recorded profiles (build/bytecode-order.ts), and those
// profiles still describe the code: a profile no function of the current code is in would lay
// nothing out, silently giving the time back.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ORDER_DIR, PROFILES } from "../../build/bytecode-order";
import { BINARY, type BrokerProcess, ROOT, startBrokerProcess, tempDir } from "./harness";

/** The function entries (`F <hash>`) of an order file. */
function functions(text: string): string[] {
  return text.split("\n").filter((l) => l.startsWith("F "));
}

describe("bytecode layout", () => {
  test("the build passes every profile, a login's first, in the recorder's order", async () => {
    const made = await Bun.$`make -s -B -n -C ${ROOT} build/flux-pam`.text();
    const line = made.split("\n").find((l) => l.includes("build/compile.ts") && l.includes("src/cli.ts"));
    expect(line).toBeDefined();
    const flag = line!.split(/\s+/).find((w) => w.startsWith("--bytecode-order="));
    expect(flag).toBe(`--bytecode-order=${PROFILES.map((p) => relative(ROOT, join(ORDER_DIR, `${p}.txt`))).join(",")}`);
    for (const p of PROFILES) {
      const text = readFileSync(join(ORDER_DIR, `${p}.txt`), "utf8");
      expect(text.startsWith("v2\n")).toBe(true);
      expect(functions(text).length).toBeGreaterThan(50);
    }
  });

  describe("the account profile against what account runs now", () => {
    const dir = tempDir("flux-pam-order-");
    let broker: BrokerProcess | undefined;
    beforeAll(async () => {
      broker = await startBrokerProcess({ rank: 0, jobs: [{ id: "1227286904832", userid: 1, ranks: "0" }] }, dir.path);
    });
    afterAll(async () => {
      await broker?.stop();
      dir.remove();
    });

    test("most functions an admitted login runs are in the committed profile (else: make bytecode-order)", async () => {
      const out = join(dir.path, "account.txt");
      const p = Bun.spawn([BINARY, "account", `uri=${broker!.uri}`], {
        env: { PAM_USER: "daemon", PAM_SERVICE: "sshd", PATH: "/usr/bin:/bin", BUN_BYTECODE_ORDER_OUT: out },
        stdout: "ignore",
        stderr: "pipe",
      });
      expect(await p.exited).toBe(0);
      expect(existsSync(out)).toBe(true);
      const ran = functions(readFileSync(out, "utf8"));
      expect(ran.length).toBeGreaterThan(50);
      const profiled = new Set(functions(readFileSync(join(ORDER_DIR, "account.txt"), "utf8")));
      const missing = ran.filter((f) => !profiled.has(f));
      // A few changed functions only lose their place; a fifth of them means the profile is stale.
      expect(missing.length / ran.length).toBeLessThan(0.2);
    });
  });
});
