// The systemd client against real systemd 252 in a systemd-nspawn container, checked from systemd's
// own state: systemctl show, /proc/PID/cgroup, the drop-ins under /run/systemd/system.control.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { bootContainer, type Container, containerSkipReason, ROOT } from "./container";

const skip = containerSkipReason();
if (skip) console.warn(`SKIPPED: systemd container tests: ${skip}`);

const DRIVER = "/opt/flux-pam/test/systemd-driver";

interface DriverResult {
  ok: boolean;
  result?: unknown;
  error?: { name: string; message: string; [k: string]: unknown };
}

/** Compiles test/systemd/client-driver.ts exactly as the Makefile compiles flux-pam. */
async function buildDriver(): Promise<void> {
  const p = Bun.spawn(
    [process.execPath, "build", "--compile", "--bytecode", "--minify", "--sourcemap=none", "test/systemd/client-driver.ts", "--outfile", join("build", "test", "systemd-driver")],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`compiling the driver failed: ${err}`);
}

describe.skipIf(skip !== undefined)("systemd client in a container (real systemd)", () => {
  let c: Container;

  beforeAll(
    async () => {
      await buildDriver();
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

  async function until(cond: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(20)) if (await cond()) return true;
    return cond();
  }

  async function gone(pid: number, ms: number): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(50))
      if ((await c.exec(["test", "-e", `/proc/${pid}`])).code !== 0) return true;
    return false;
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
      await ok("set", "user-1000.slice", JSON.stringify({ AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/null rw,/dev/zero r" }));
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
      expect(await ok("props", "user-1000.slice")).toMatchObject({ AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/null rw,/dev/zero r" });
    });

    test("unitProperties of a few names reads only those, as GetAll spells them", async () => {
      expect(await ok("props", "user-1000.slice", "AllowedCPUs", "DevicePolicy", "DeviceAllow")).toEqual({
        AllowedCPUs: "0-1",
        DevicePolicy: "closed",
        DeviceAllow: "/dev/null rw,/dev/zero r",
      });
    });

    test("a second SetUnitProperties with one device drops the other", async () => {
      await ok("set", "user-1000.slice", JSON.stringify({ AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/zero r" }));
      expect(await show("user-1000.slice", "DeviceAllow")).toBe("DeviceAllow=/dev/zero r");
    });

    test("revert (RevertUnitFiles + Reload) removes the drop-ins and the properties", async () => {
      await ok("revert", "user-1000.slice");
      expect((await c.exec(["test", "-e", "/run/systemd/system.control/user-1000.slice.d"])).code).not.toBe(0);
      expect(await show("user-1000.slice", "AllowedCPUs", "DevicePolicy", "DeviceAllow")).toBe("AllowedCPUs=\nDevicePolicy=auto");
    });

    test("revert of a slice that has no runtime properties is harmless (housekeeping always reverts)", async () => {
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
      const r = await driver("set", "user-1000.slice", JSON.stringify({ Bogus: "1" }));
      expect(r.error).toMatchObject({ name: "PropertyError", property: "Bogus" });
      expect(r.error!.message).toStartWith(`unit property Bogus="1": flux-pam does not know this property's D-Bus type`);
      expect((await c.exec(["test", "-e", "/run/systemd/system.control/user-1000.slice.d"])).code).not.toBe(0);
    });

    test("a property systemd refuses for the unit is a DBusCallError naming the unit", async () => {
      const r = await driver("set", "multi-user.target", JSON.stringify({ AllowedCPUs: "0" }));
      expect(r.error).toMatchObject({ name: "DBusCallError", unit: "multi-user.target", dbusName: "org.freedesktop.DBus.Error.PropertyReadOnly" });
      expect(r.error!.message).toStartWith("SetUnitProperties multi-user.target: Cannot set property");
    });
  });

  describe("user@UID.service, KillUnit and the orphan scan", () => {
    test("startUnit returns once user@1002.service is active", async () => {
      const r = (await ok("start", "user@1002.service")) as { unit: string; job: string };
      expect(r.unit).toBe("user@1002.service");
      expect(await show("user@1002.service", "ActiveState")).toBe("ActiveState=active");
      expect(await ok("state", "user@1002.service")).toEqual({ loadState: "loaded", activeState: "active", subState: "running" });
    });

    test("the orphan scan lists the slice's processes outside user@1002.service, and only those", async () => {
      const pid = await sleeper();
      await ok("scope", `flux-pam-${pid}.scope`, "user-1002.slice", String(pid));
      const outside = (await ok("pids", "/sys/fs/cgroup/user.slice/user-1002.slice", "user@1002.service")) as { mount: string; pids: number[] };
      expect(outside).toEqual({ mount: "/sys/fs/cgroup", pids: [pid] });
      const all = (await ok("pids", "/sys/fs/cgroup/user.slice/user-1002.slice")) as { pids: number[] };
      expect(all.pids.length).toBeGreaterThan(1); // systemd --user and (sd-pam) too
      expect(all.pids).toContain(pid);
    });

    test("KillUnit of the slice signals every process in it", async () => {
      const outside = ((await ok("pids", "/sys/fs/cgroup/user.slice/user-1002.slice", "user@1002.service")) as { pids: number[] }).pids;
      expect(outside.length).toBe(1);
      await ok("kill", "user-1002.slice", "15");
      expect(await gone(outside[0]!, 3000)).toBe(true);
    });

    test("stopUnit returns once user@1002.service is inactive", async () => {
      await ok("start", "user@1002.service");
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
      await ok("start", "user@1002.service");
      expect(await ok("status", "user@1002.service")).toEqual({ activeState: "active", needDaemonReload: false });
      expect(await ok("active", "user@1002.service")).toBe("active");
      const loaded = (await c.run(["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "LoadUnit", "s", "user@1002.service"])).trim();
      const { unitPath } = await import("../../src/systemd/manager");
      expect(loaded).toBe(`o "${unitPath("user@1002.service")}"`);
    });

    test("enqueueStop answers once the stop is queued; systemd finishes it on its own", async () => {
      const r = (await ok("enqueue-stop", "user@1002.service")) as { job: string; unit: string };
      expect(r.job).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
      expect(await until(async () => (await show("user@1002.service", "ActiveState")) === "ActiveState=inactive")).toBe(true);
    });

    test("a job that cannot finish in time is a JobTimeoutError naming the unit", async () => {
      const r = await driver("start", "user@1002.service", "1");
      expect(r.ok).toBe(false);
      expect(["JobTimeoutError", "DBusTimeoutError"]).toContain(r.error!.name);
      expect(r.error!.message).toStartWith("StartUnit user@1002.service:");
      await ok("stop", "user@1002.service");
    });
  });

  describe("linger", () => {
    test("logind's User.Linger follows loginctl enable-linger / disable-linger", async () => {
      expect(await ok("linger", "bob", "1001")).toEqual({ enabled: false, source: "file", detail: "logind has no such user" });
      await c.run(["loginctl", "enable-linger", "bob"]);
      expect(await ok("linger", "bob", "1001")).toEqual({ enabled: true, source: "logind" });
      await c.run(["loginctl", "disable-linger", "bob"]);
      // logind may already have dropped bob (no sessions, no linger): then it has no such user and
      // the file answers. Either way linger is off; which of the two answers is a race in logind.
      const after = (await ok("linger", "bob", "1001")) as { enabled: boolean; source: string };
      expect(after.enabled).toBe(false);
      expect(["logind", "file"]).toContain(after.source);
    });

    test("without logind the linger file decides", async () => {
      await c.run(["touch", "/var/lib/systemd/linger/carol"]);
      expect(await ok("linger-no-bus", "carol", "1002")).toEqual({ enabled: true, source: "file", detail: "no system bus" });
      expect(await ok("linger-no-bus", "alice", "1000")).toEqual({ enabled: false, source: "file", detail: "no system bus" });
      await c.run(["systemctl", "mask", "--now", "systemd-logind"]);
      try {
        const r = (await ok("linger", "carol", "1002")) as { enabled: boolean; source: string; detail: string };
        expect(r).toMatchObject({ enabled: true, source: "file" });
        expect(r.detail).toStartWith("logind did not answer: GetUser user carol (uid 1002):");
      } finally {
        await c.run(["systemctl", "unmask", "systemd-logind"]);
        await c.run(["systemctl", "start", "systemd-logind"]);
      }
    });
  });

  describe("deadlines and timings", () => {
    test("a bus socket that accepts and never answers fails at the deadline, in the compiled binary", async () => {
      const r = await driver("silent-bus", "300");
      expect(r.error).toMatchObject({ name: "DBusTimeoutError", ms: 300 });
      expect(r.error!.elapsedMs as number).toBeLessThan(1000);
    });

    test("one of each call kind, timed", async () => {
      const ms = (await ok("bench", "1001")) as Record<string, number>;
      console.log(`systemd call timings (ms): ${JSON.stringify(ms)}`);
      for (const v of Object.values(ms)) expect(v).toBeLessThan(5000);
    });
  });
});
