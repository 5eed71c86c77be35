// The systemd client against a stand-in systemd on an in-process bus: deadlines, job waits, typed errors.

import { afterAll, afterEach, beforeAll, describe, expect, jest, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import { Variant } from "dbus-native";
import { DEFAULT_CALL_MS, type Signal, SystemBus, unixSocketPath } from "../../src/systemd/bus";
import {
  BusClosedError,
  BusUnavailableError,
  DBusCallError,
  DBusTimeoutError,
  JobFailedError,
  JobTimeoutError,
  PropertyError,
} from "../../src/systemd/errors";
import { lingerEnabled, lingerFileName } from "../../src/systemd/logind";
import { SystemdClient, unitPath } from "../../src/systemd/manager";
import { encodeProperties } from "../../src/systemd/properties";
import { tempDir } from "../e2e/harness";
import { type FakeSystemd, startFakeSystemd } from "./fake-systemd";

const dir = tempDir("flux-pam-systemd-");
let fake: FakeSystemd;
let sd: SystemdClient;

beforeAll(async () => {
  fake = await startFakeSystemd(dir.path);
  sd = await SystemdClient.connect({ address: fake.address });
});
afterAll(async () => {
  await sd.close();
  await fake.close();
  dir.remove();
});
afterEach(() => {
  fake.calls.length = 0;
  fake.plans.clear();
  fake.memberPlans.clear();
  fake.units.clear();
  fake.onCall = undefined;
  fake.flood = 0;
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

/**
 * Whether `p` has settled when a timer of `ms`, set now, fires. Timers fire in the order they fall
 * due, so this orders p's own deadline against a mark: it measures nothing, and a slow machine
 * delays both alike.
 */
async function settledBy(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const mark = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), mark]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lets queued I/O callbacks and their promise reactions run. */
async function turns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Every JobRemoved that reaches `bus`, whoever sent it, as our client's own handler sees it. */
function jobRemovedSeen(bus: SystemBus): { seen: { sender: string; job: string; result: string }[]; off(): void } {
  const seen: { sender: string; job: string; result: string }[] = [];
  const off = bus.onSignal((s: Signal) => {
    if (s.member === "JobRemoved") seen.push({ sender: s.sender, job: String(s.body[1]), result: String(s.body[3]) });
  });
  return { seen, off: () => void off() };
}

describe("connecting to the system bus", () => {
  test("a socket that accepts and never answers fails at the connect deadline, not before", async () => {
    const path = join(dir.path, "silent.sock");
    let received = "";
    const server = Bun.listen({ unix: path, socket: { data: (_s, d) => void (received += d.toString("latin1")) } });
    // The test's clock: the deadline fires when the test moves time on, not when the machine gets to it.
    jest.useFakeTimers();
    try {
      let settled = false;
      const outcome = rejection(SystemBus.connect({ address: `unix:path=${path}`, timeoutMs: 300 })).finally(() => (settled = true));
      // The deadline's timer is set before the socket connects: once our AUTH, BEGIN and Hello
      // (sent without waiting for an OK) have arrived, it runs.
      for (let i = 0; i < 1000 && !received.includes("Hello"); i++) await turns(1);
      expect(received.slice(0, received.indexOf("BEGIN\r\n") + 7)).toBe(`\0AUTH EXTERNAL ${Buffer.from(String(process.geteuid!())).toString("hex")}\r\nBEGIN\r\n`);
      jest.advanceTimersByTime(299);
      await turns();
      expect(settled).toBe(false);
      jest.advanceTimersByTime(1);
      const e = await outcome;
      expect(e).toBeInstanceOf(DBusTimeoutError);
      expect(e.message).toBe(`connect to unix:path=${path}: no answer from the system bus within 300 ms`);
    } finally {
      jest.useRealTimers();
      server.stop(true);
    }
  });

  /** A stand-in bus at DIR/NAME.sock: `answer` sees every byte the client sent so far, at each read. */
  function standInBus(name: string, answer: (s: Socket<undefined>, received: Buffer) => void) {
    const path = join(dir.path, `${name}.sock`);
    let received = Buffer.alloc(0);
    const server = Bun.listen<undefined>({
      unix: path,
      socket: {
        data: (s, d) => {
          received = Buffer.concat([received, d]);
          answer(s, received);
        },
      },
    });
    return { address: `unix:path=${path}`, stop: () => server.stop(true) };
  }

  /** The bus's answer to the Hello that follows BEGIN in `received`, naming the client `name`. */
  async function helloAnswer(received: Buffer, name: string): Promise<Buffer> {
    const { marshall, unmarshall } = await import("dbus-native/lib/message");
    const hello = unmarshall(received.subarray(received.indexOf("BEGIN\r\n") + 7));
    return marshall({ type: 2, serial: 1, replySerial: hello.serial, sender: "org.freedesktop.DBus", destination: name, signature: "s", body: [name] });
  }

  test("AUTH, BEGIN and Hello go in one round trip: an OK, then the Hello's answer later, connects", async () => {
    let okSent = false;
    let helloBeforeOk = false;
    const bus = standInBus("pipelined", (s, received) => {
      if (okSent || !received.toString("latin1").includes("AUTH EXTERNAL")) return;
      okSent = true;
      // every byte of the client's first round arrived before the bus answers anything
      setTimeout(() => {
        helloBeforeOk = received.toString("latin1").includes("Hello");
        s.write("OK 0123456789abcdef0123456789abcdef\r\n");
        // the Hello's answer in a write of its own, later
        setTimeout(async () => s.write(await helloAnswer(received, ":1.42")), 20);
      }, 20);
    });
    try {
      const client = await SystemBus.connect({ address: bus.address, timeoutMs: 5000 });
      expect(helloBeforeOk).toBe(true);
      expect(client.uniqueName).toBe(":1.42");
      await client.close();
    } finally {
      bus.stop();
    }
  });

  test("an OK whose CR and LF come in two reads, the Hello's answer right behind the LF, connects", async () => {
    let answered = false;
    const bus = standInBus("split-ok", (s, received) => {
      const at = received.indexOf("BEGIN\r\n") + 7;
      if (answered || at < 7 || received.length <= at) return;
      answered = true;
      s.write("OK 0123456789abcdef0123456789abcdef\r");
      setTimeout(async () => s.write(Buffer.concat([Buffer.from("\n"), await helloAnswer(received, ":1.43")])), 20);
    });
    try {
      const client = await SystemBus.connect({ address: bus.address, timeoutMs: 2000 });
      expect(client.uniqueName).toBe(":1.43");
      await client.close();
    } finally {
      bus.stop();
    }
  });

  test("a bus that refuses our AUTH fails the connect with its answer, not the Hello's fate", async () => {
    const path = join(dir.path, "refusing.sock");
    const server = Bun.listen({
      unix: path,
      socket: { data: (s, d) => void (d.toString("latin1").includes("AUTH") && s.write("REJECTED EXTERNAL\r\n")) },
    });
    try {
      const e = await rejection(SystemBus.connect({ address: `unix:path=${path}`, timeoutMs: 5000 }));
      expect(e).toBeInstanceOf(BusUnavailableError);
      expect(e.message).toBe(`cannot reach the system bus at unix:path=${path}: the bus refused EXTERNAL authentication as uid ${process.geteuid!()}: "REJECTED EXTERNAL"`);
    } finally {
      server.stop(true);
    }
  });

  test("no socket at the address is BusUnavailableError naming it", async () => {
    const address = `unix:path=${join(dir.path, "nothing-here")}`;
    const e = await rejection(SystemBus.connect({ address, timeoutMs: 1000 }));
    expect(e).toBeInstanceOf(BusUnavailableError);
    expect(e.message).toStartWith(`cannot reach the system bus at ${address}:`);
  });

  test("DBUS_SYSTEM_BUS_ADDRESS is honoured, else /run/dbus/system_bus_socket", async () => {
    const { systemBusAddress } = await import("../../src/systemd/bus");
    expect(systemBusAddress({ DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/x" })).toBe("unix:path=/x");
    expect(systemBusAddress({})).toBe("unix:path=/run/dbus/system_bus_socket");
  });
});

describe("startScope: StartTransientUnit, then wait for the job", () => {
  test("a scope is one StartTransientUnit, no Subscribe (systemd sends a job's JobRemoved to whoever asked for it)", async () => {
    const done = await sd.startScope({ name: "flux-pam-61.scope", slice: "user-1000.slice", pids: [61] });
    expect(done.unit).toBe("flux-pam-61.scope");
    expect(done.job).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
    expect(fake.calls.map((c) => c.member)).toEqual(["StartTransientUnit"]);
  });

  test("StartTransientUnit carries the name, mode fail, Slice as s and PIDs as au", async () => {
    await sd.startScope({ name: "flux-pam-61.scope", slice: "user-1000.slice", pids: [61] });
    const start = fake.calls.find((c) => c.member === "StartTransientUnit")!;
    expect(start.body.slice(0, 2)).toEqual(["flux-pam-61.scope", "fail"]);
    const props = start.body[2] as [string, Variant][];
    expect(props.map(([n, v]) => [n, v.signature, v.value])).toEqual([
      ["Slice", "s", "user-1000.slice"],
      ["PIDs", "au", [61]],
    ]);
  });

  test("does not answer before systemd reports the job done", async () => {
    // The fake sends JobRemoved some time after its reply: an answer at the reply would come first.
    const removed = jobRemovedSeen(sd.bus);
    try {
      const { done, seenThen } = await sd
        .startScope({ name: "flux-pam-62.scope", slice: "user-1000.slice", pids: [62] })
        .then((done) => ({ done, seenThen: removed.seen.map((s) => [s.job, s.result]) }));
      expect(seenThen).toEqual([[done.job, "done"]]);
    } finally {
      removed.off();
    }
  });

  test("a JobRemoved that arrives before the method reply is not missed", async () => {
    fake.plans.set("flux-pam-63.scope", "signal-first");
    const done = await sd.startScope({ name: "flux-pam-63.scope", slice: "user-1000.slice", pids: [63] }, { timeoutMs: 1000 });
    expect(done.unit).toBe("flux-pam-63.scope");
  });

  test("a flood of JobRemoved signals from another peer keeps at most 1024 of them: systemd's own, kept as the 1024th, ends the job", async () => {
    fake.plans.set("flux-pam-69.scope", "flood-first");
    fake.flood = 1023;
    const done = await sd.startScope({ name: "flux-pam-69.scope", slice: "user-1000.slice", pids: [69] }, { timeoutMs: 5000 });
    expect(done.unit).toBe("flux-pam-69.scope");
  });

  test("systemd's JobRemoved after 1024 others is dropped: the job times out (fails closed), and the next job starts afresh", async () => {
    const removed = jobRemovedSeen(sd.bus);
    try {
      fake.plans.set("flux-pam-70.scope", "flood-first");
      fake.flood = 1024;
      const e = await rejection(sd.startScope({ name: "flux-pam-70.scope", slice: "user-1000.slice", pids: [70] }, { timeoutMs: 1000 }));
      expect(e).toBeInstanceOf(JobTimeoutError);
      // it did arrive, after the flood: the cap, not a lost signal, is what the wait ran into
      expect(removed.seen.length).toBe(1025);
      expect(removed.seen.at(-1)!.job).toBe((e as JobTimeoutError).job);
      // Nothing of the flood outlives the job: the same flood before the next job leaves room for systemd's word.
      fake.plans.set("flux-pam-71.scope", "flood-first");
      fake.flood = 1023;
      const done = await sd.startScope({ name: "flux-pam-71.scope", slice: "user-1000.slice", pids: [71] }, { timeoutMs: 5000 });
      expect(done.unit).toBe("flux-pam-71.scope");
    } finally {
      removed.off();
    }
  });

  test("a job that ends in failure is JobFailedError with the unit and systemd's result", async () => {
    fake.plans.set("flux-pam-64.scope", "failed");
    const e = await rejection(sd.startScope({ name: "flux-pam-64.scope", slice: "user-1000.slice", pids: [64] }));
    expect(e).toBeInstanceOf(JobFailedError);
    expect((e as JobFailedError).result).toBe("failed");
    expect(e.message).toStartWith('StartTransientUnit flux-pam-64.scope: job /org/freedesktop/systemd1/job/');
    expect(e.message).toContain('finished with result "failed"');
  });

  test("a job that never finishes is JobTimeoutError at its deadline, not before, and not at the default's", async () => {
    fake.plans.set("flux-pam-65.scope", "never");
    const pending = rejection(sd.startScope({ name: "flux-pam-65.scope", slice: "user-1000.slice", pids: [65] }, { timeoutMs: 200 }));
    expect(await settledBy(pending, 100)).toBe(false);
    // A scope's default budget is 10 s (DEFAULT_SCOPE_MS): a wait that ignored timeoutMs would still be pending.
    expect(await settledBy(pending, 10_000)).toBe(true);
    const e = await pending;
    expect(e).toBeInstanceOf(JobTimeoutError);
    expect(e.message).toMatch(/^StartTransientUnit flux-pam-65\.scope: job \/org\/freedesktop\/systemd1\/job\/\d+ did not finish within 200 ms$/);
  });

  test("a JobRemoved sent to us by anyone but systemd is ignored (a forged one would free the shell early)", async () => {
    const removed = jobRemovedSeen(sd.bus);
    try {
      // systemd's own unique name, from a job it really finishes.
      const real = await sd.startScope({ name: "flux-pam-68.scope", slice: "user-1000.slice", pids: [68] });
      const systemd = removed.seen.find((s) => s.job === real.job)!.sender;
      fake.plans.set("flux-pam-67.scope", "forged");
      let settled = false;
      const pending = rejection(sd.startScope({ name: "flux-pam-67.scope", slice: "user-1000.slice", pids: [67] }, { timeoutMs: 1000 })).finally(
        () => (settled = true),
      );
      // The forged "done" arrives on our connection, from another peer, while the job is pending...
      while (removed.seen.length < 2 && !settled) await turns(1);
      await turns();
      const forged = removed.seen[1];
      expect(forged?.job).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
      expect(forged?.result).toBe("done");
      expect(forged!.sender).not.toBe(systemd);
      // ...and the client goes on waiting for systemd's word, until its deadline.
      expect(settled).toBe(false);
      const e = await pending;
      expect(e).toBeInstanceOf(JobTimeoutError);
      expect((e as JobTimeoutError).job).toBe(forged!.job);
    } finally {
      removed.off();
    }
  });

  test("a bus that goes away while a job is pending fails at once, not at the deadline", async () => {
    const d2 = tempDir("flux-pam-dying-");
    const dying = await startFakeSystemd(d2.path);
    const client = await SystemdClient.connect({ address: dying.address });
    try {
      dying.plans.set("flux-pam-66.scope", "never");
      const pending = rejection(client.startScope({ name: "flux-pam-66.scope", slice: "user-1000.slice", pids: [66] }, { timeoutMs: 5000 }));
      while (!dying.calls.some((c) => c.member === "StartTransientUnit")) await Bun.sleep(5);
      await Bun.sleep(20); // let the reply with the job path arrive
      await dying.close();
      const e = await pending;
      // At the deadline the job would end in JobTimeoutError: BusClosedError comes only from the close.
      expect(e).toBeInstanceOf(BusClosedError);
      expect(e.message).toStartWith("StartTransientUnit flux-pam-66.scope: the system bus connection closed (waiting for job /org/freedesktop/systemd1/job/");
    } finally {
      await client.close();
      d2.remove();
    }
  });

  test("names that are not a scope and a slice are refused before any call", async () => {
    await expect(sd.startScope({ name: "x.service", slice: "user-1000.slice", pids: [1] })).rejects.toThrow(TypeError);
    await expect(sd.startScope({ name: "a.scope", slice: "user-1000.slice", pids: [] })).rejects.toThrow(TypeError);
    expect(fake.calls).toEqual([]);
  });
});

describe("jobs left to systemd", () => {
  test("enqueueStart answers once systemd queued the job, without waiting for it to finish", async () => {
    // The job never finishes: had enqueueStart waited for it, it would end in JobTimeoutError.
    fake.plans.set("user@1996.service", "never");
    const q = await sd.enqueueStart("user@1996.service", { timeoutMs: 1000 });
    expect(q.unit).toBe("user@1996.service");
    expect(q.job).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
    expect(fake.calls).toEqual([{ member: "StartUnit", body: ["user@1996.service", "replace"] }]);
  });

  test("enqueueStop is StopUnit, mode replace", async () => {
    await sd.enqueueStop("user-1996.slice");
    expect(fake.calls).toEqual([{ member: "StopUnit", body: ["user-1996.slice", "replace"] }]);
  });
});

describe("reading units: GetUnit never loads one, a Get on its object path does", () => {
  const gets = (path: string) => fake.calls.filter((c) => c.member === "Get" && c.path === path).map((c) => c.body[1]);

  test("unitStatus of a unit systemd does not hold is undefined, and loads nothing", async () => {
    expect(await sd.unitStatus("user-1990.slice")).toBeUndefined();
    expect(fake.calls.map((c) => c.member)).toEqual(["GetUnit"]);
    expect(fake.units.has("user-1990.slice")).toBe(false);
  });

  test("unitActiveState and sliceUnits read the unit's escaped object path (systemd loads it)", async () => {
    fake.units.set("user-1990.slice", { ActiveState: "active", SliceOf: ["user@1990.service", "flux-pam-7.scope"] });
    expect(await sd.unitActiveState("user@1990.service")).toBe("inactive");
    expect(fake.units.has("user@1990.service")).toBe(true);
    expect(await sd.sliceUnits("user-1990.slice")).toEqual(["user@1990.service", "flux-pam-7.scope"]);
    expect(fake.calls.map((c) => [c.member, c.path, c.body])).toEqual([
      ["Get", "/org/freedesktop/systemd1/unit/user_401990_2eservice", ["org.freedesktop.systemd1.Unit", "ActiveState"]],
      ["Get", "/org/freedesktop/systemd1/unit/user_2d1990_2eslice", ["org.freedesktop.systemd1.Unit", "SliceOf"]],
    ]);
  });

  test("unitStatus names the job queued for the unit, and a stop done frees it", async () => {
    fake.units.set("user-1990.slice", { ActiveState: "active", NeedDaemonReload: true });
    fake.plans.set("user-1990.slice", "never");
    await sd.enqueueStop("user-1990.slice");
    expect(await sd.unitStatus("user-1990.slice")).toEqual({ activeState: "active", needDaemonReload: true, job: "stop" });
    fake.plans.clear();
    await sd.stopUnit("user-1990.slice", { timeoutMs: 1000 });
    expect(await sd.unitStatus("user-1990.slice")).toBeUndefined();
  });

  test("a job that ends between unitStatus's reads: the unit is read again, Job first", async () => {
    const path = "/org/freedesktop/systemd1/unit/user_2d1990_2eslice";
    // The slice's stop is queued when Job is read; by the time its type is read, it is done.
    fake.units.set("user-1990.slice", { ActiveState: "active", NeedDaemonReload: true, job: { id: 9990, type: "stop" } });
    fake.onCall = (c) => {
      if (c.path === "/org/freedesktop/systemd1/job/9990") fake.units.set("user-1990.slice", { ActiveState: "inactive", NeedDaemonReload: true });
    };
    expect(await sd.unitStatus("user-1990.slice")).toEqual({ activeState: "inactive", needDaemonReload: true });
    expect(gets(path)).toEqual(["Job", "ActiveState", "NeedDaemonReload", "Job", "ActiveState", "NeedDaemonReload"]);
  });

  test("a read that runs out of time names the whole budget it was given, not what was left of it", async () => {
    fake.units.set("user-1990.slice", { ActiveState: "active" });
    fake.memberPlans.set("Get", "no-reply");
    const e = await rejection(sd.unitStatus("user-1990.slice", { timeoutMs: 300 }));
    expect(e.message).toBe("Get user-1990.slice: no answer from the system bus within 300 ms");
  });

  test("unitProgress reads a unit's state and its job's type on its object path, Job first", async () => {
    const path = "/org/freedesktop/systemd1/unit/user_401990_2eservice";
    expect(await sd.unitProgress("user@1990.service")).toEqual({ activeState: "inactive" });
    fake.units.set("user@1990.service", { ActiveState: "activating", job: { id: 9992, type: "start", lasting: true } });
    expect(await sd.unitProgress("user@1990.service")).toEqual({ activeState: "activating", job: "start" });
    expect(gets(path)).toEqual(["Job", "ActiveState", "Job", "ActiveState"]);
  });

  test("unitProgress: a job that ends between the reads: read again, the state after its end", async () => {
    fake.units.set("user@1990.service", { ActiveState: "activating", job: { id: 9993, type: "start" } });
    fake.onCall = (c) => {
      if (c.path === "/org/freedesktop/systemd1/job/9993") fake.units.set("user@1990.service", { ActiveState: "active" });
    };
    expect(await sd.unitProgress("user@1990.service")).toEqual({ activeState: "active" });
  });

  test("a job that keeps vanishing: read three times, then the states as last read", async () => {
    fake.units.set("user-1990.slice", { ActiveState: "active", job: { id: 9991, type: "stop" } });
    expect(await sd.unitStatus("user-1990.slice")).toEqual({ activeState: "active", needDaemonReload: false });
    expect(fake.calls.filter((c) => c.path === "/org/freedesktop/systemd1/job/9991").length).toBe(3);
  });
});

describe("names on the bus", () => {
  test("unitPath escapes a unit name as systemd's bus_label_escape does", () => {
    expect(unitPath("user@1000.service")).toBe("/org/freedesktop/systemd1/unit/user_401000_2eservice");
    expect(unitPath("user-1000.slice")).toBe("/org/freedesktop/systemd1/unit/user_2d1000_2eslice");
    expect(unitPath("0x.scope")).toBe("/org/freedesktop/systemd1/unit/_30x_2escope");
  });

  test("unixSocketPath takes the first unix:path= of an address, %-escapes decoded", () => {
    expect(unixSocketPath("unix:path=/run/dbus/system_bus_socket")).toBe("/run/dbus/system_bus_socket");
    expect(unixSocketPath("tcp:host=x,port=1;unix:guid=abc,path=/tmp/a%20b")).toBe("/tmp/a b");
    expect(unixSocketPath("unix:abstract=/tmp/dbus-x")).toBeUndefined();
    expect(unixSocketPath("unix:path=/tmp/%zz")).toBeUndefined();
  });
});

describe("every call has a deadline and typed errors", () => {
  test("a D-Bus error reply is DBusCallError naming the unit and systemd's error", async () => {
    fake.plans.set("user-1999.slice", "no-such-unit");
    const e = await rejection(sd.setUnitProperties("user-1999.slice", encodeProperties({ AllowedCPUs: "0" })));
    expect(e).toBeInstanceOf(DBusCallError);
    expect((e as DBusCallError).dbusName).toBe("org.freedesktop.systemd1.NoSuchUnit");
    expect(e.message).toBe("SetUnitProperties user-1999.slice: Unit user-1999.slice not found. (org.freedesktop.systemd1.NoSuchUnit)");
  });

  test("a call systemd never answers is DBusTimeoutError at its deadline, not the default's", async () => {
    fake.plans.set("user-1998.slice", "no-reply");
    const pending = rejection(sd.killUnit("user-1998.slice", 15, { timeoutMs: 250 }));
    expect(await settledBy(pending, DEFAULT_CALL_MS)).toBe(true);
    const e = await pending;
    expect(e).toBeInstanceOf(DBusTimeoutError);
    expect(e.message).toBe("KillUnit user-1998.slice: no answer from the system bus within 250 ms");
  });

  test("startUnit that is never answered times out as a whole, not per step", async () => {
    fake.plans.set("user@1997.service", "no-reply");
    const e = await rejection(sd.startUnit("user@1997.service", { timeoutMs: 200 }));
    expect(e).toBeInstanceOf(DBusTimeoutError);
    expect(e.message).toContain("StartUnit user@1997.service");
  });

  test("the connection stays usable after a timeout", async () => {
    fake.plans.set("user-1998.slice", "no-reply");
    expect(await rejection(sd.killUnit("user-1998.slice", 15, { timeoutMs: 100 }))).toBeInstanceOf(DBusTimeoutError);
    await sd.killUnit("user-1000.slice", 15);
    expect(fake.calls.at(-1)).toEqual({ member: "KillUnit", body: ["user-1000.slice", "all", 15] });
  });
});

describe("SetUnitProperties carries typed variants", () => {
  test("ay, s and a(ss) with the reset first, runtime=true", async () => {
    await sd.setSliceProperties("user-1000.slice", { AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/null rw,/dev/zero r" });
    const call = fake.calls.find((c) => c.member === "SetUnitProperties")!;
    expect(call.body[0]).toBe("user-1000.slice");
    expect(call.body[1]).toBe(true);
    const props = (call.body[2] as [string, Variant][]).map(([n, v]) => [n, v.signature, v.value instanceof Uint8Array ? [...v.value] : v.value]);
    expect(props).toEqual([
      ["DeviceAllow", "a(ss)", []],
      ["AllowedCPUs", "ay", [0x03]],
      ["DevicePolicy", "s", "closed"],
      ["DeviceAllow", "a(ss)", [["/dev/null", "rw"], ["/dev/zero", "r"]]],
    ]);
  });

  test("a bogus property is refused before anything is sent", async () => {
    await expect(sd.setSliceProperties("user-1000.slice", { Bogus: "1" })).rejects.toThrow(PropertyError);
    expect(fake.calls).toEqual([]);
  });
});

describe("linger", () => {
  const lingerDir = join(dir.path, "linger");
  mkdirSync(lingerDir, { recursive: true });

  test("the linger file decides, as logind reads it (access, any file type), and the bus is not asked", async () => {
    writeFileSync(join(lingerDir, "carol"), "");
    mkdirSync(join(lingerDir, "erin"), { recursive: true });
    rmSync(join(lingerDir, "dave"), { force: true });
    expect(lingerEnabled({ name: "carol", uid: 1002 }, { lingerDir })).toEqual({ enabled: true, source: "file" });
    expect(lingerEnabled({ name: "erin", uid: 1004 }, { lingerDir })).toEqual({ enabled: true, source: "file" });
    expect(lingerEnabled({ name: "dave", uid: 1003 }, { lingerDir })).toEqual({ enabled: false, source: "file" });
    const before = fake.calls.length;
    expect(await sd.linger({ name: "no-such-user-x", uid: 1005 })).toEqual({ enabled: false, source: "file" });
    expect(fake.calls.length).toBe(before);
  });

  test("a name is looked up as logind spells the file: systemd's cescape() of its UTF-8 bytes", () => {
    expect(lingerFileName("alice")).toBe("alice");
    expect(lingerFileName("DOMAIN\\user")).toBe("DOMAIN\\\\user");
    expect(lingerFileName("jos\u00e9")).toBe("jos\\303\\251");
    expect(lingerFileName("a'b\"c\td\x7f")).toBe("a\\'b\\\"c\\td\\177");
    // winbind's DOMAIN\user lingers as the file DOMAIN\\user: found; a file of the raw name is not logind's
    writeFileSync(join(lingerDir, "DOMAIN\\\\user"), "");
    writeFileSync(join(lingerDir, "EXAMPLE\\bob"), "");
    expect(lingerEnabled({ name: "DOMAIN\\user", uid: 1006 }, { lingerDir })).toEqual({ enabled: true, source: "file" });
    expect(lingerEnabled({ name: "EXAMPLE\\bob", uid: 1007 }, { lingerDir })).toEqual({ enabled: false, source: "file" });
  });

  test("a name that is not one throws; a linger directory that is a file holds no one", () => {
    for (const name of ["", ".", "..", "a/b"]) expect(() => lingerEnabled({ name, uid: 1 }, { lingerDir })).toThrow(TypeError);
    writeFileSync(join(lingerDir, "notadir"), "");
    // ENOTDIR: the linger directory is a file: no user lingers there (logind's access() says the same)
    expect(lingerEnabled({ name: "x", uid: 1 }, { lingerDir: join(lingerDir, "notadir") })).toEqual({ enabled: false, source: "file" });
  });
});

