// The live checks against a test broker and a stand-in systemd on an in-process bus, linger files in a directory of the test's.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as dbus from "dbus-native";
import type { MessageBus } from "dbus-native";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { auditConfigInForce, auditLive, auditRanksPerNode } from "../../src/audit/live";
import { Tree } from "../../src/audit/tree";
import { ConfigError } from "../../src/flux/config";
import { SystemdClient } from "../../src/systemd/manager";
import { type Broker, startBroker } from "../broker/broker";
import { tempDir } from "../e2e/harness";

const dir = tempDir("flux-pam-live-");
let broker: Broker;
let bus: { address: string; close(): Promise<void> };

/** systemd's Manager with only Version (linger is the files': daemon, uid 1, lingers; bin, uid 2, does not). */
async function startBus(version: string): Promise<typeof bus> {
  const server = dbus.createBroker();
  const address = await new Promise<string>((resolve, reject) =>
    server.listen({ socket: join(dir.path, "system_bus_socket") }, (err, a) => (err ? reject(err) : resolve(a))),
  );
  const svc: MessageBus = dbus.createClient({ busAddress: address, fdTransport: false });
  await svc.requestName("org.freedesktop.systemd1", 0);
  svc.exportInterface({ Version: version }, "/org/freedesktop/systemd1", {
    name: "org.freedesktop.systemd1.Manager",
    properties: { Version: { type: "s", access: "read" } },
  });
  return {
    address,
    async close() {
      await svc.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

beforeAll(async () => {
  broker = startBroker(join(dir.path, "broker.sock"), {
    rank: 3,
    owner: 0,
    config: { pam: { "manage-user-slice": true } },
    jobs: [
      { id: "11", userid: 1, ranks: "3" },
      { id: "12", userid: 1, ranks: "2-3" },
      { id: "13", userid: 2, ranks: "3" },
      { id: "14", userid: 0, ranks: "3" },
    ],
  });
  bus = await startBus("252.30-1~deb12u1");
});
afterAll(async () => {
  broker.stop();
  await bus.close();
  dir.remove();
});

describe("the systemd client reads the manager's version", () => {
  test("Version over Properties.Get", async () => {
    const sd = await SystemdClient.connect({ address: bus.address });
    try {
      expect(await sd.version()).toBe("252.30-1~deb12u1");
    } finally {
      await sd.close();
    }
  });
});

describe("the live audit", () => {
  const lingerDir = join(dir.path, "linger");
  mkdirSync(lingerDir, { recursive: true });
  writeFileSync(join(lingerDir, "daemon"), ""); // uid 1, as the broker's jobs and the findings say
  const opts = () => ({ uri: `local://${broker.path}`, timeoutMs: 3000, busAddress: bus.address, lingerDir });
  const lines = async (o: Parameters<typeof auditLive>[1], files?: Parameters<typeof auditLive>[2]) =>
    (await auditLive(new Tree("/"), o, files)).findings.filter((f) => f.area !== "cgroup").map((f) => `${f.severity} ${f.area}: ${f.what}`);

  test("systemd's version, the broker's view, and linger of every job user but the owner", async () => {
    expect(await lines(opts())).toEqual([
      "ok systemd: systemd 252.30-1~deb12u1",
      `ok broker: local://${broker.path}: rank 3, instance owner root (uid 0), 4 running jobs here`,
      `ok broker: local://${broker.path}, config in force: the instance runs as root: the hooks are its owner`,
      "error linger: linger is enabled for daemon (uid 1), who has running jobs here: user@1.service outlives the jobs, sessions can escape the slice, and daemon's next prolog here fails",
    ]);
    // One job-list.list for every user: no userid in the constraint.
    const list = broker.requests.find((r) => r.topic === "job-list.list")!;
    expect(JSON.stringify(list.payload)).not.toContain("userid\":[");
  });

  test("the broker running with other values than the files is a warning", async () => {
    const files = { manageUserSlice: false, killUserSlice: false, killSliceGraceTime: 30, debug: false, constrainResources: false, allowGuestUser: false, allowRootOwner: false, privateMode: false };
    expect((await lines(opts(), files)).filter((l) => l.startsWith("warning"))).toEqual([
      "warning broker: the broker runs with pam.manage-user-slice = true, /etc/flux/system/conf.d says false",
    ]);
    expect(auditConfigInForce(new ConfigError("broker config: pam.debug must be true or false"), files)[0]!.what).toBe(
      "the broker's config in force is not usable: broker config: pam.debug must be true or false",
    );
  });

  test("an instance owned by flux: root's owner role and sdexec-mapper in force are checked", async () => {
    const b = startBroker(join(dir.path, "flux-owned.sock"), {
      owner: 64999,
      config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true } },
      mapper: "absent",
    });
    try {
      const got = (await lines({ ...opts(), uri: `local://${b.path}` })).filter((l) => l.startsWith("error broker") || l.startsWith("ok broker"));
      expect(got.slice(1)).toEqual([
        `error broker: local://${b.path}, config in force: access.allow-root-owner is not true: the hooks run as root, which the broker treats as a guest, so it refuses them the job's R (job-info.lookup: EPERM): every prolog fails and drains the node`,
        "error broker: sdexec-mapper does not answer (the sdexec-mapper module is not loaded) while exec.sdexec-constrain-resources is on: every prolog fails",
      ]);
      b.set({ owner: 64999, config: { pam: { "manage-user-slice": true }, exec: { "sdexec-constrain-resources": true }, access: { "allow-root-owner": true } } });
      expect((await lines({ ...opts(), uri: `local://${b.path}` })).filter((l) => l.startsWith("ok broker")).slice(1)).toEqual([
        `ok broker: local://${b.path}, config in force: access.allow-root-owner = true: the hooks (run as root) are an owner of the instance`,
        "ok broker: sdexec-mapper answers: the prolog can map jobs' resources to the slice's properties",
      ]);
      // The mapper was asked with stats-get, which changes nothing, never with a lookup.
      expect(b.requests.map((r) => r.topic)).toContain("sdexec-mapper.stats-get");
      expect(b.requests.map((r) => r.topic)).not.toContain("sdexec-mapper.lookup");
    } finally {
      b.stop();
    }
  });

  test("two ranks of the instance on this node (a test instance's --test-size): an error naming them", async () => {
    const b = startBroker(join(dir.path, "two-ranks.sock"), { rank: 1, owner: 0, hosts: ["vm", "vm", "other"], config: {} });
    try {
      const got = (await lines({ ...opts(), uri: `local://${b.path}` })).filter((l) => l.startsWith("error broker"));
      expect(got).toEqual([
        "error broker: 2 ranks of the instance run on vm (ranks 0, 1): the hooks keep one slice per node but count the jobs of their own rank, so one rank's last job tears the slice down while jobs of another run (flux-pam(1) CAVEATS)",
      ]);
      expect(b.requests.filter((r) => r.topic === "attr.get").map((r) => (r.payload as { name: string }).name)).toContain("hostlist");
    } finally {
      b.stop();
    }
  });

  test("auditRanksPerNode(): one rank a node is fine; a hostlist too long to walk is not checked, never expanded", () => {
    expect(auditRanksPerNode({ hostname: "fluke7", hostlist: "fluke[1-9]" })).toEqual([]);
    expect(auditRanksPerNode({ hostname: "x", hostlist: "x,x,x" })[0]!.what).toStartWith("3 ranks of the instance run on x (ranks 0, 1, 2)");
    const huge = auditRanksPerNode({ hostname: "node7", hostlist: "node[0-4294967295]" });
    expect(huge.map((f) => `${f.severity} ${f.what}`)).toEqual([`warning the instance's hostlist names more than ${1 << 20} ranks: brokers per node not checked`]);
  });

  test("no broker and no bus: both said, linger read from the files", async () => {
    const got = await lines({ uri: `local://${dir.path}/absent.sock`, timeoutMs: 500, busAddress: `unix:path=${dir.path}/absent-bus` });
    expect(got[0]).toStartWith(`warning systemd: the system bus is not reachable (cannot reach the system bus at unix:path=${dir.path}/absent-bus`);
    expect(got[1]).toStartWith(`warning broker: local://${dir.path}/absent.sock not reachable (`);
    // What the linger files of the machine running the test say is its own business.
    expect(got[2]).toMatch(/^(ok|warning) linger: broker not reachable, every linger file counts: /);
  });
});
