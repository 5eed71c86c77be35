// The fault matrix (test/reliability/README.md): each fault against each command, with its exact
// outcome. The cases are made by broker-faults.ts, node-faults.ts, systemd-faults.ts and
// hostile-input.ts; here they all start at once (those that wait out a deadline only sleep, the
// others take turns four at a time), so the file lasts about as long as its longest deadline
// (a hook waiting 60 s for a lock another process holds), not the sum of them.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startBroker } from "../broker/broker";
import { tempDir } from "../e2e/harness";
import { ensureBuilt, realHelper } from "../pam/harness";
import { type FakeSystemd, startFakeSystemd } from "../systemd/fake-systemd";
import { brokerCases } from "./broker-faults";
import { nodeCases } from "./node-faults";
import { systemdCases } from "./systemd-faults";
import { inputCases } from "./hostile-input";
import { accountArgv, lockDirWithMarker, type MatrixCase, type MatrixEnv, NODE, pamAccount, pool, run, sessionArgv, sessionEnv } from "./harness";

const cases: MatrixCase[] = [...brokerCases(), ...nodeCases(), ...systemdCases(), ...inputCases()];

const dir = tempDir("flux-pam-matrix-");
let fake: FakeSystemd;
let env: MatrixEnv;
let stopGood: () => void;
const results: Promise<{ ms: number; check(): void }>[] = [];

beforeAll(async () => {
  await ensureBuilt();
  const helper = realHelper(dir.path);
  fake = await startFakeSystemd(dir.path);
  const good = startBroker(join(dir.path, "good.sock"), NODE);
  stopGood = () => good.stop();
  let k = 0;
  env = {
    bus: fake.address,
    helper,
    good: `local://${good.path}`,
    caseDir() {
      const d = join(dir.path, `case-${k++}`);
      mkdirSync(d);
      chmodSync(d, 0o755);
      return d;
    },
  };
  const fast = pool(4);
  for (const c of cases) {
    const r = c.slow ? c.run(env) : fast(() => c.run(env));
    r.catch(() => {}); // awaited by its test; never an unhandled rejection meanwhile
    results.push(r);
  }
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(results);
  stopGood?.();
  await fake?.close();
  dir.remove();
}, 120_000);

const groups = [...new Set(cases.map((c) => c.group))];
for (const g of groups) {
  describe(g, () => {
    cases.forEach((c, i) => {
      if (c.group !== g) return;
      test(`${c.fault} / ${c.path}: ${c.expect}${c.deadlineMs ? ", within its deadline + 1 s" : ""}`, async () => {
        const r = await results[i]!;
        r.check();
        if (c.deadlineMs !== undefined) expect(r.ms).toBeLessThan(c.deadlineMs + 1000);
      }, 120_000);
    });
  });
}

test("README.md's tables name every fault of the matrix, each in its own row", () => {
  const readme = readFileSync(join(import.meta.dir, "README.md"), "utf8");
  const rows = new Set(readme.split("\n").filter((l) => l.startsWith("| ")).map((l) => l.slice(2, l.indexOf(" |", 2)).replace(/\\\|/g, "|")));
  const missing = [...new Set(cases.map((c) => c.fault))].filter((f) => !rows.has(f));
  expect(missing).toEqual([]);
});

test("no broker fault led to a systemd call that changes anything", async () => {
  await Promise.allSettled(results);
  const writes = fake.calls.filter((c) => !["LoadUnit", "GetUnit", "Subscribe"].includes(c.member));
  expect(writes.map((c) => c.member)).toEqual([]);
}, 120_000);

test("a positive control: the good broker admits, and a session opens its scope on the stand-in systemd", async () => {
  const lockDir = lockDirWithMarker(dir.path, "control");
  const a = await run(accountArgv(env.good), { PAM_USER: "daemon", PAM_SERVICE: "sshd" });
  expect([a.code, a.stdout, a.stderr]).toEqual([0, "", ""]);
  const s = await run(sessionArgv(env.good, lockDir), sessionEnv(fake.address));
  expect([s.code, s.stderr]).toEqual([0, ""]);
  expect(fake.calls.map((c) => c.member)).toContain("StartTransientUnit");
  const pa = await pamAccount(dir.path, "control", env.helper, `uri=${env.good}`);
  expect(pa.calls.map((c) => c.name)).toEqual(["PAM_SUCCESS"]);
}, 60_000);
