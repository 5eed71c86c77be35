// A node for a test file of the compiled binary's node commands: a lock directory (0700), the test
// broker and a stand-in systemd on its own bus, started before the file's tests and stopped after.

import { afterAll, beforeAll } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Scenario } from "../broker/scenario";
import { type FakeSystemd, startFakeSystemd } from "../systemd/fake-systemd";
import { type BrokerProcess, startBrokerProcess, tempDir } from "./harness";

export interface StandInNode {
  dir: { path: string };
  locks: string;
  broker: BrokerProcess;
  systemd: FakeSystemd;
}

export function standInNode(first: Scenario, prefix: string): StandInNode {
  const dir = tempDir(prefix);
  // (broker and systemd: set before the first test)
  const node = { dir, locks: join(dir.path, "locks") } as unknown as StandInNode;
  beforeAll(async () => {
    mkdirSync(node.locks, { mode: 0o700 });
    node.broker = await startBrokerProcess(first, dir.path);
    node.systemd = await startFakeSystemd(dir.path);
  });
  afterAll(async () => {
    await node.systemd?.close();
    await node.broker?.stop();
    dir.remove();
  });
  return node;
}
