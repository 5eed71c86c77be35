// The systemd client against real systemd 252 in a systemd-nspawn container, checked from systemd's
// own state: systemctl show, /proc/PID/cgroup, the drop-ins under /run/systemd/system.control.

// Each test sets up the state it asserts on (a slice's properties, user@1002.service running or
// not, its own sleepers), so any one of them runs alone (bun test -t NAME).
// How long each call takes is not a test: bench/systemd-calls.ts.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { until } from "./alice-node";
import { bootContainer, buildClientDriver, CLIENT_DRIVER as DRIVER, type Container, containerSkipReason } from "./container";

const skip = containerSkipReason();
if (skip) console.warn(`SKIPPED: systemd container tests: ${skip}`);

interface DriverResult {
  ok: boolean;
  result?: unknown;
  error?: { name: string; message: string; [k: string]: unknown };
}

describe.skipIf(skip !== undefined)("systemd client in a container (real systemd)", () => {
  let c: Container;

  beforeAll(
    async () => {
      await buildClientDriver();
      c = await bootContainer();
      console.log(`container booted in ${Math.round(c.bootMs)} ms`);
    },
    { timeout: 20 * 60_000 }, // a first run builds the rootfs with debootstrap
  );
  afterAll(async () => {
    await c?.stop();
  });

  async function driver(...args: string[]): Promise<DriverResult> {
    const r = await c.exec([DRIVER, ...args]);
    const line = r.stdout.trim().split("\n").at(-1) ?? "";
    try {
      return JSON.parse(line) as DriverResult;
    } catch {
      throw new Error(`driver ${args.join(" ")} printed no result (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
  }

  async function ok(...args: string[]): Promise<unknown> {
    const r = await driver(...args);
    if (!r.ok) throw new Error(`driver ${args.join(" ")} failed: ${r.error?.message}`);
    return r.result;
  }

  /** A sleep started from outside any unit, like a process sshd forked; returns its pid. */
  async function sleeper(): Promise<number> {
    return Number((await c.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"])).trim());
  }

  async function show(unit: string, ...props: string[]): Promise<string> {
    return (await c.run(["systemctl", "show", ...props.flatMap((p) => ["-p", p]), unit])).trim();
  }

  function lines(text: string, sort = true): string[] {
    const l = text.trim().split("\n");
    return sort ? l.sort() : l;
  }

  async function gone(pid: number, ms: number): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(50))
      if ((await c.exec(["test", "-e", `/proc/${pid}`])).code !== 0) return true;
    return false;
  }

  const dropinDir = (unit: string) => `/run/systemd/system.control/${unit}.d`;
  const exists = async (path: string) => (await c.exec(["test", "-e", path])).code === 0;

  /** user-1000.slice with the two-device set of the first test below. */
  const TWO_DEVICES = { AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/null rw,/dev/zero r" };

  /** user@1002.service running (started by systemctl, not by the client under test). */
  async function userServiceUp(): Promise<void> {
    await c.run(["systemctl", "start", "user@1002.service"]);
    expect(await show("user@1002.service", "ActiveState")).toBe("ActiveState=active");
  }

  /** user@1002.service stopped (by systemctl). */
  async function userServiceDown(): Promise<void> {
    await c.run(["systemctl", "stop", "user@1002.service"]);
    expect(await show("user@1002.service", "ActiveState")).toBe("ActiveState=inactive");
  }

  describe("startScope", () => {
    test("the pid is in user-1000.slice/NAME.scope the moment the call returns", async () => {
      const pid = await sleeper();
      const r = (await ok("scope", `flux-pam-${pid}.scope`, "user-1000.slice", String(pid))) as { cgroup: string };
      expect(r.cgroup).toBe(`/user.slice/user-1000.slice/flux-pam-${pid}.scope`);
      expect(await show(`flux-pam-${pid}.scope`, "ActiveState", "Slice")).toBe("Slice=user-1000.slice\nActiveState=active");
    });

    test("a shell forked right after the call starts inside the scope (the sshd race)", async () => {
      const r = (await ok("scope-self", "flux-pam-race.scope", "user-1000.slice")) as { self: string; child: string };
      expect(r.self).toBe("/user.slice/user-1000.slice/flux-pam-race.scope");
      expect(r.child).toBe("/user.slice/user-1000.slice/flux-pam-race.scope");
    });

    test("a scope name already in use is a DBusCallError naming the unit and systemd's error (mode fail)", async () => {
      const pid = await sleeper();
      await ok("scope", `flux-pam-dup-${pid}.scope`, "user-1000.slice", String(pid));
      const r = await driver("scope", `flux-pam-dup-${pid}.scope`, "user-1000.slice", String(pid));
      expect(r.ok).toBe(false);
      expect(r.error).toMatchObject({ name: "DBusCallError", unit: `flux-pam-dup-${pid}.scope`, dbusName: "org.freedesktop.systemd1.UnitExists" });
      expect(r.error!.message).toStartWith(`StartTransientUnit flux-pam-dup-${pid}.scope: Unit flux-pam-dup-${pid}.scope `);
      expect(r.error!.message).toEndWith(" (org.freedesktop.systemd1.UnitExists)");
    });
  });

  describe("runtime properties of user-1000.slice", () => {
    test("AllowedCPUs=0-1, DevicePolicy=closed and two devices are what systemctl shows, as drop-ins under /run", async () => {
      await ok("set", "user-1000.slice", JSON.stringify(TWO_DEVICES));
      // systemd keeps device entries in its own order; order carries no meaning for access.
      expect(lines(await show("user-1000.slice", "AllowedCPUs", "DevicePolicy", "DeviceAllow"))).toEqual([
        "AllowedCPUs=0-1",
        "DeviceAllow=/dev/null rw",
        "DeviceAllow=/dev/zero r",
        "DevicePolicy=closed",
      ]);
      const dropins = await c.run(["ls", "/run/systemd/system.control/user-1000.slice.d"]);
      expect(dropins.trim().split("\n")).toEqual(["50-AllowedCPUs.conf", "50-DeviceAllow.conf", "50-DevicePolicy.conf"]);
      // The reset is in the drop-in too, so a reload does not bring back devices of older jobs.
      const written = lines(await c.run(["grep", "^DeviceAllow", "/run/systemd/system.control/user-1000.slice.d/50-DeviceAllow.conf"]), false);
      expect(written[0]).toBe("DeviceAllow=");
      expect(written.slice(1).sort()).toEqual(["DeviceAllow=/dev/null rw", "DeviceAllow=/dev/zero r"]);
    });

    test("unitProperties reads them back in the mapper's spelling (for check-user)", async () => {
      await ok("set", "user-1000.slice", JSON.stringify(TWO_DEVICES));
      expect(await ok("props", "user-1000.slice")).toMatchObject({ AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/null rw,/dev/zero r" });
    });

    test("unitProperties of a few names reads only those, as GetAll spells them", async () => {
      await ok("set", "user-1000.slice", JSON.stringify(TWO_DEVICES));
      expect(await ok("props", "user-1000.slice", "AllowedCPUs", "DevicePolicy", "DeviceAllow")).toEqual({
        AllowedCPUs: "0-1",
        DevicePolicy: "closed",
        DeviceAllow: "/dev/null rw,/dev/zero r",
      });
    });

    test("a second SetUnitProperties with one device drops the other", async () => {
      await ok("set", "user-1000.slice", JSON.stringify(TWO_DEVICES));
      expect(lines(await show("user-1000.slice", "DeviceAllow"))).toEqual(["DeviceAllow=/dev/null rw", "DeviceAllow=/dev/zero r"]);
      await ok("set", "user-1000.slice", JSON.stringify({ AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/zero r" }));
      expect(await show("user-1000.slice", "DeviceAllow")).toBe("DeviceAllow=/dev/zero r");
    });

    test("revert (RevertUnitFiles + Reload) removes the drop-ins and the properties", async () => {
      await ok("set", "user-1000.slice", JSON.stringify(TWO_DEVICES));
      expect(await exists(dropinDir("user-1000.slice"))).toBe(true);
      await ok("revert", "user-1000.slice");
      expect(await exists(dropinDir("user-1000.slice"))).toBe(false);
      expect(await show("user-1000.slice", "AllowedCPUs", "DevicePolicy", "DeviceAllow")).toBe("AllowedCPUs=\nDevicePolicy=auto");
    });

    test("revert of a slice that has no runtime properties is harmless (housekeeping always reverts)", async () => {
      expect(await exists(dropinDir("user-1001.slice"))).toBe(false);
      await ok("revert", "user-1001.slice");
      expect(await show("user-1001.slice", "DevicePolicy")).toBe("DevicePolicy=auto");
    });

    test("every known property lands exactly as systemctl set-property puts it", async () => {
      const props: Record<string, string> = {
        AllowedCPUs: "1,3",
        AllowedMemoryNodes: "0",
        MemoryMax: "50%",
        MemoryHigh: "1.5G",
        MemoryLow: "64M",
        MemoryMin: "4096",
        MemorySwapMax: "infinity",
        TasksMax: "512",
        CPUQuota: "150%",
        CPUWeight: "200",
        IOWeight: "300",
        CPUAccounting: "yes",
        IOAccounting: "no",
        DevicePolicy: "strict",
        DeviceAllow: "/dev/null rw",
      };
      await c.run(["systemctl", "set-property", "--runtime", "fluxtesta.slice", ...Object.entries(props).map(([k, v]) => `${k}=${v}`)]);
      await ok("set", "fluxtestb.slice", JSON.stringify(props));
      const shown = [
        "AllowedCPUs",
        "AllowedMemoryNodes",
        "MemoryMax",
        "MemoryHigh",
        "MemoryLow",
        "MemoryMin",
        "MemorySwapMax",
        "TasksMax",
        "CPUQuotaPerSecUSec",
        "CPUWeight",
        "IOWeight",
        "CPUAccounting",
        "IOAccounting",
        "DevicePolicy",
        "DeviceAllow",
      ];
      const a = await show("fluxtesta.slice", ...shown);
      expect(a).toContain("AllowedCPUs=1 3");
      expect(a).toContain("CPUQuotaPerSecUSec=1.500000s");
      expect(await show("fluxtestb.slice", ...shown)).toBe(a);
    });

    test("a bogus property is refused with a clear error before systemd sees it", async () => {
      // A slice of its own, never given properties: nothing under /run is any other test's.
      expect(await exists(dropinDir("fluxtestc.slice"))).toBe(false);
      const r = await driver("set", "fluxtestc.slice", JSON.stringify({ AllowedCPUs: "0", Bogus: "1" }));
      expect(r.error).toMatchObject({ name: "PropertyError", property: "Bogus" });
      expect(r.error!.message).toStartWith(`unit property Bogus="1": flux-pam does not know this property's D-Bus type`);
      // not even the known property went: the call was never made
      expect(await exists(dropinDir("fluxtestc.slice"))).toBe(false);
      expect(await show("fluxtestc.slice", "AllowedCPUs")).toBe("AllowedCPUs=");
    });

    test("a property systemd refuses for the unit is a DBusCallError naming the unit", async () => {
      const r = await driver("set", "multi-user.target", JSON.stringify({ AllowedCPUs: "0" }));
      expect(r.error).toMatchObject({ name: "DBusCallError", unit: "multi-user.target", dbusName: "org.freedesktop.DBus.Error.PropertyReadOnly" });
      expect(r.error!.message).toStartWith("SetUnitProperties multi-user.target: Cannot set property");
    });
  });

  describe("user@UID.service, KillUnit and the orphan scan", () => {
    test("startUnit returns once user@1002.service is active", async () => {
      await userServiceDown();
      const r = (await ok("start", "user@1002.service")) as { unit: string; job: string };
      expect(r.unit).toBe("user@1002.service");
      expect(await show("user@1002.service", "ActiveState")).toBe("ActiveState=active");
      expect(await ok("state", "user@1002.service")).toEqual({ loadState: "loaded", activeState: "active", subState: "running" });
    });

    test("the orphan scan lists the slice's processes outside user@1002.service, and only those", async () => {
      await userServiceUp();
      const pid = await sleeper();
      try {
        await ok("scope", `flux-pam-${pid}.scope`, "user-1002.slice", String(pid));
        const outside = (await ok("pids", "/sys/fs/cgroup/user.slice/user-1002.slice", "user@1002.service")) as { mount: string; pids: number[] };
        expect(outside).toEqual({ mount: "/sys/fs/cgroup", pids: [pid] });
        const all = (await ok("pids", "/sys/fs/cgroup/user.slice/user-1002.slice")) as { pids: number[] };
        expect(all.pids.length).toBeGreaterThan(1); // systemd --user and (sd-pam) too
        expect(all.pids).toContain(pid);
      } finally {
        // the scope goes with its one process: the slice is left as the test found it
        await c.exec(["kill", String(pid)]);
        expect(await gone(pid, 10_000)).toBe(true);
      }
    });

    test("KillUnit of the slice signals every process in it", async () => {
      await userServiceUp();
      const pid = await sleeper();
      await ok("scope", `flux-pam-${pid}.scope`, "user-1002.slice", String(pid));
      const before = ((await ok("pids", "/sys/fs/cgroup/user.slice/user-1002.slice")) as { pids: number[] }).pids;
      expect(before).toContain(pid); // and systemd --user, (sd-pam)
      expect(before.length).toBeGreaterThan(1);
      await ok("kill", "user-1002.slice", "15");
      for (const p of before) expect(await gone(p, 10_000)).toBe(true);
    });

    test("stopUnit returns once user@1002.service is inactive", async () => {
      await userServiceUp();
      await ok("stop", "user@1002.service");
      expect(await show("user@1002.service", "ActiveState")).toBe("ActiveState=inactive");
    });

    test("unitStatus of a unit systemd does not hold is null, and asking does not load it", async () => {
      const getUnit = () => c.exec(["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "GetUnit", "s", "flux-pam-never.service"]);
      expect((await getUnit()).code).not.toBe(0);
      expect(await ok("status", "flux-pam-never.service")).toBeNull();
      expect((await getUnit()).code).not.toBe(0);
    });

    test("unitStatus and unitActiveState (one Get on systemd's object path) agree with systemctl", async () => {
      await userServiceUp();
      expect(await ok("status", "user@1002.service")).toEqual({ activeState: "active", needDaemonReload: false });
      expect(await ok("active", "user@1002.service")).toBe("active");
      const loaded = (await c.run(["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "LoadUnit", "s", "user@1002.service"])).trim();
      const { unitPath } = await import("../../src/systemd/manager");
      expect(loaded).toBe(`o "${unitPath("user@1002.service")}"`);
    });

    test("enqueueStop answers once the stop is queued; systemd finishes it on its own", async () => {
      await userServiceUp();
      const r = (await ok("enqueue-stop", "user@1002.service")) as { job: string; unit: string };
      expect(r.job).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
      expect(await until(async () => (await show("user@1002.service", "ActiveState")) === "ActiveState=inactive")).toBe(true);
    });

    test("a job that cannot finish in time is a JobTimeoutError naming the unit and the job", async () => {
      // A start job that takes ten minutes: systemd answers StartUnit at once, the job outlives the
      // budget. (The budget is for the answer to come within it; a call never answered is
      // DBusTimeoutError, client.test.ts's, since real systemd cannot be made to stay silent.)
      const unit = "flux-pam-slow.service";
      await c.run(["sh", "-c", `printf '[Service]\\nType=oneshot\\nExecStart=/bin/sleep 600\\n' > /run/systemd/system/${unit} && systemctl daemon-reload`]);
      try {
        const r = await driver("start", unit, "3000");
        expect(r.ok).toBe(false);
        expect(r.error).toMatchObject({ name: "JobTimeoutError", unit, ms: 3000 });
        expect(r.error!.message).toMatch(/^StartUnit flux-pam-slow\.service: job \/org\/freedesktop\/systemd1\/job\/\d+ did not finish within 3000 ms$/);
        expect(r.error!.job).toBe(r.error!.message.split(" ")[3]);
        // systemd still runs the job the client gave up on
        expect(await show(unit, "ActiveState")).toBe("ActiveState=activating");
      } finally {
        await c.run(["systemctl", "stop", unit]);
        await c.run(["sh", "-c", `rm /run/systemd/system/${unit} && systemctl daemon-reload`]);
      }
    });
  });

  describe("linger", () => {
    /**
     * logind's own User.Linger for a user it knows (it knows a lingering one), read until it is
     * `want` or 2 s have passed (a bound: logind may still be taking the user in), then returned.
     */
    const logindLinger = async (uid: number, want: string) => {
      let got = "";
      for (const end = Date.now() + 2000; Date.now() < end; await Bun.sleep(50)) {
        const r = await c.exec(["busctl", "get-property", "org.freedesktop.login1", `/org/freedesktop/login1/user/_${uid}`, "org.freedesktop.login1.User", "Linger"]);
        got = `${r.stdout.trim()}${r.stderr.trim()}`;
        if (got === want) break;
      }
      return got;
    };

    test("the answer follows loginctl enable-linger / disable-linger, and is logind's own User.Linger", async () => {
      expect(await ok("linger", "bob", "1001")).toEqual({ enabled: false, source: "file" });
      await c.run(["loginctl", "enable-linger", "bob"]);
      try {
        expect(await ok("linger", "bob", "1001")).toEqual({ enabled: true, source: "file" });
        expect(await logindLinger(1001, "b true")).toBe("b true");
        // logind reads the same file on every ask: the file gone, logind says so too, at once
        await c.run(["rm", "/var/lib/systemd/linger/bob"]);
        expect(await ok("linger", "bob", "1001")).toEqual({ enabled: false, source: "file" });
        // (or logind let bob go: nothing keeps a user without sessions or linger; then it knows no bob)
        const after = await logindLinger(1001, "b false");
        expect(after === "b false" || /Unknown object|not known/i.test(after)).toBe(true);
      } finally {
        await c.run(["loginctl", "disable-linger", "bob"]);
      }
      expect(await ok("linger", "bob", "1001")).toEqual({ enabled: false, source: "file" });
    });

    test("logind is not asked: stopped and masked, the answer is the same", async () => {
      await c.run(["touch", "/var/lib/systemd/linger/carol"]);
      try {
        expect(await ok("linger-no-bus", "carol", "1002")).toEqual({ enabled: true, source: "file" });
        expect(await ok("linger-no-bus", "alice", "1000")).toEqual({ enabled: false, source: "file" });
        await c.run(["systemctl", "mask", "--now", "systemd-logind"]);
        try {
          expect(await ok("linger", "carol", "1002")).toEqual({ enabled: true, source: "file" });
          expect(await ok("linger", "alice", "1000")).toEqual({ enabled: false, source: "file" });
        } finally {
          await c.run(["systemctl", "unmask", "systemd-logind"]);
          await c.run(["systemctl", "start", "systemd-logind"]);
        }
      } finally {
        await c.run(["rm", "-f", "/var/lib/systemd/linger/carol"]);
      }
    });
  });

  describe("one connection", () => {
    test("a bus socket that accepts and never answers fails at the deadline, in the compiled binary", async () => {
      const r = await driver("silent-bus", "300");
      expect(r.error).toMatchObject({ name: "DBusTimeoutError", ms: 300 });
      expect(r.error!.message).toMatch(/^connect to unix:path=\/tmp\/silent-\d+\.sock: no answer from the system bus within 300 ms$/);
      // Not a measure of speed: below the connect's 5 s default, it did not wait for the default.
      // (When it fires, on the test's own clock: client.test.ts.)
      expect(r.error!.elapsedMs as number).toBeLessThan(5000);
    });

    test("carries one of each call kind in turn, from connect to close", async () => {
      // bench/systemd-calls.ts times the same calls.
      const ms = (await ok("bench", "1001")) as Record<string, number>;
      expect(Object.keys(ms)).toEqual([
        "connect",
        "startScope",
        "startScopeSecond",
        "setSliceProperties",
        "unitProperties",
        "unitState",
        "linger",
        "startUserService",
        "stopUserService",
        "killUnit",
        "revertUnit",
        "close",
      ]);
      // what the calls did, as systemd has it afterwards: user@ stopped again, the slice reverted
      expect(await show("user@1001.service", "ActiveState")).toBe("ActiveState=inactive");
      expect(await exists(dropinDir("user-1001.slice"))).toBe(false);
    });
  });
});
