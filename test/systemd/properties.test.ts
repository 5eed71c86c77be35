// Encoding the mapper's string properties into the D-Bus types systemd expects, and reading them back.

import { describe, expect, test } from "bun:test";
import { formatIdset } from "../../src/flux/idset";
import { PropertyError } from "../../src/systemd/errors";
import {
  decodeProperties,
  DEVICE_ALLOW_RESET,
  DROPIN_PROPERTIES,
  encodeProperties,
  formatProperty,
  idsetToMask,
  KNOWN_PROPERTIES,
  liftDevices,
  maskToIdset,
  parseDeviceAllow,
  parseSize,
} from "../../src/systemd/properties";

const bytes = (m: Uint8Array) => [...m];
const UINT64_MAX = (1n << 64n) - 1n;

describe("CPU and memory node bitmasks (ay, little-endian as systemd's cpu_set_to_dbus)", () => {
  const cases: [number[], number[]][] = [
    [[0, 1], [0x03]],
    [[8], [0x00, 0x01]],
    [[0], [0x01]],
    [[7], [0x80]],
    [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [0xff, 0xff]],
    [[1, 9, 17], [0x02, 0x02, 0x02]],
    [[63], [0, 0, 0, 0, 0, 0, 0, 0x80]],
    [[], []],
  ];
  for (const [ids, mask] of cases) {
    test(`{${ids.join(",")}} -> [${mask.map((b) => `0x${b.toString(16).padStart(2, "0")}`).join(",")}]`, () => {
      expect(bytes(idsetToMask(ids))).toEqual(mask);
      expect(maskToIdset(new Uint8Array(mask))).toBe(formatIdset(ids));
    });
  }

  test("AllowedCPUs=0-1 is sent as ay [0x03]", () => {
    const [, p] = encodeProperties({ AllowedCPUs: "0-1" });
    expect(p).toMatchObject({ name: "AllowedCPUs", signature: "ay", text: "AllowedCPUs=0-1" });
    expect(bytes(p!.value as Uint8Array)).toEqual([0x03]);
  });

  test("AllowedMemoryNodes=8 is sent as ay [0x00,0x01]", () => {
    const [, p] = encodeProperties({ AllowedMemoryNodes: "8" });
    expect(p!.signature).toBe("ay");
    expect(bytes(p!.value as Uint8Array)).toEqual([0x00, 0x01]);
  });

  test("a mask reads back as an idset", () => {
    expect(maskToIdset(new Uint8Array([0x0f, 0x01]))).toBe("0-3,8");
  });

  test("an idset that is not one is refused", () => {
    expect(() => encodeProperties({ AllowedCPUs: "0-x" })).toThrow(PropertyError);
    expect(() => encodeProperties({ AllowedCPUs: "70000" })).toThrow(/above 65535/);
  });

  test("an empty AllowedCPUs or AllowedMemoryNodes is refused: systemd would read it as no limit at all", () => {
    for (const [name, value] of [["AllowedCPUs", ""], ["AllowedMemoryNodes", " "]])
      expect(() => encodeProperties({ [name!]: value! })).toThrow(/empty set would lift the limit/);
  });
});

describe("DeviceAllow (a(ss)) and DevicePolicy (s)", () => {
  test("the list always starts with the empty reset, then one entry per device", () => {
    const props = encodeProperties({ DevicePolicy: "closed", DeviceAllow: "/dev/nvidia0 rw,/dev/nvidiactl rw" });
    expect(props.map((p) => [p.name, p.signature, p.value])).toEqual([
      ["DeviceAllow", "a(ss)", []],
      ["DevicePolicy", "s", "closed"],
      ["DeviceAllow", "a(ss)", [["/dev/nvidia0", "rw"], ["/dev/nvidiactl", "rw"]]],
    ]);
  });

  test("with no DeviceAllow from the mapper the reset is still sent: devices of ended jobs are dropped", () => {
    expect(encodeProperties({ AllowedCPUs: "0" })[0]).toEqual(DEVICE_ALLOW_RESET);
  });

  test("an empty DeviceAllow is the reset alone", () => {
    expect(encodeProperties({ DeviceAllow: "" })).toEqual([DEVICE_ALLOW_RESET]);
  });

  test("resetDeviceAllow: false still resets before a DeviceAllow the mapper sent", () => {
    expect(encodeProperties({ AllowedCPUs: "0" }, { resetDeviceAllow: false }).map((p) => p.name)).toEqual(["AllowedCPUs"]);
    expect(encodeProperties({ DeviceAllow: "/dev/null r" }, { resetDeviceAllow: false }).map((p) => p.text)).toEqual([
      "DeviceAllow=",
      "DeviceAllow=/dev/null r",
    ]);
  });

  test("a device without permissions gets rwm, as systemd's default", () => {
    expect(parseDeviceAllow("/dev/null")).toEqual([["/dev/null", "rwm"]]);
  });

  test("char-/block- class names are devices too", () => {
    expect(parseDeviceAllow("char-nvidia-uvm rw, block-loop r")).toEqual([
      ["char-nvidia-uvm", "rw"],
      ["block-loop", "r"],
    ]);
  });

  for (const bad of ["a rw", "/dev/null rwx", "/dev/null rr", "/etc/passwd r", "/dev/a b c"]) {
    test(`DeviceAllow=${JSON.stringify(bad)} is refused`, () => {
      expect(() => encodeProperties({ DeviceAllow: bad })).toThrow(PropertyError);
    });
  }

  test("DevicePolicy must be auto, closed or strict", () => {
    expect(() => encodeProperties({ DevicePolicy: "open" })).toThrow(/auto, closed, strict/);
  });
});

describe("liftDevices: the last job's DevicePolicy=auto with every char and block device, before the revert", () => {
  test("exactly DevicePolicy (s) auto and DeviceAllow (a(ss)) char-* rwm, block-* rwm, in that order", () => {
    expect(liftDevices()).toEqual([
      { name: "DevicePolicy", signature: "s", value: "auto", text: "DevicePolicy=auto" },
      { name: "DeviceAllow", signature: "a(ss)", value: [["char-*", "rwm"], ["block-*", "rwm"]], text: "DeviceAllow=char-* rwm,block-* rwm" },
    ]);
  });

  test("no DeviceAllow reset: the wildcards allow every device whatever else the list holds", () => {
    expect(liftDevices().map((p) => p.text)).not.toContain("DeviceAllow=");
  });

  test("a fresh list on each call: a caller changing one cannot change the next", () => {
    const first = liftDevices();
    (first[1]!.value as [string, string][]).push(["/dev/null", "r"]);
    first.pop();
    expect(liftDevices()).toHaveLength(2);
    expect(liftDevices()[1]!.value).toEqual([["char-*", "rwm"], ["block-*", "rwm"]]);
  });

  test("its dry-run spelling", () => {
    expect(liftDevices().map(formatProperty)).toEqual(["DevicePolicy=auto", 'DeviceAllow="char-* rwm,block-* rwm"']);
  });
});

describe("sizes, quotas, weights, booleans", () => {
  test("MemoryMax with suffixes is bytes (t), base 1024 as systemd's parse_size", () => {
    expect(parseSize("4096")).toBe(4096n);
    expect(parseSize("512M")).toBe(512n << 20n);
    expect(parseSize("1.5G")).toBe(3n << 29n);
    expect(parseSize("2T")).toBe(2n << 40n);
    expect(parseSize("1KB")).toBeUndefined();
    const [, p] = encodeProperties({ MemoryMax: "8G" });
    expect(p).toMatchObject({ name: "MemoryMax", signature: "t", value: 8n << 30n });
  });

  test("MemoryMax=infinity is UINT64_MAX", () => {
    expect(encodeProperties({ MemoryMax: "infinity" })[1]).toMatchObject({ signature: "t", value: UINT64_MAX });
  });

  test("MemoryMax=50% travels as MemoryMaxScale (u), a fraction of 2^32-1", () => {
    expect(encodeProperties({ MemoryMax: "50%" })[1]).toMatchObject({ name: "MemoryMaxScale", signature: "u", value: 2147483648, text: "MemoryMax=50%" });
    expect(encodeProperties({ MemoryHigh: "100%" })[1]).toMatchObject({ name: "MemoryHighScale", value: 0xffffffff });
  });

  test("every NAMEScale a percentage travels as is among the drop-in names a teardown removes (systemd files it as 50-NAMEScale.conf)", () => {
    const scaled = KNOWN_PROPERTIES.flatMap((name) => {
      try {
        return encodeProperties({ [name]: "50%" }).map((p) => p.name).filter((n) => n.endsWith("Scale"));
      } catch {
        return []; // no percentage form
      }
    });
    expect(scaled.sort()).toEqual(["MemoryHighScale", "MemoryLowScale", "MemoryMaxScale", "MemoryMinScale", "MemorySwapMaxScale", "TasksMaxScale"]);
    expect(DROPIN_PROPERTIES).toEqual([...KNOWN_PROPERTIES, ...scaled].sort());
  });

  test("CPUQuota=150% travels as CPUQuotaPerSecUSec=1500000 (t)", () => {
    expect(encodeProperties({ CPUQuota: "150%" })[1]).toMatchObject({ name: "CPUQuotaPerSecUSec", signature: "t", value: 1500000n });
    expect(() => encodeProperties({ CPUQuota: "0%" })).toThrow(PropertyError);
    expect(() => encodeProperties({ CPUQuota: "2" })).toThrow(PropertyError);
  });

  test("TasksMax: count, infinity or a percentage", () => {
    expect(encodeProperties({ TasksMax: "512" })[1]).toMatchObject({ name: "TasksMax", signature: "t", value: 512n });
    expect(encodeProperties({ TasksMax: "infinity" })[1]).toMatchObject({ value: UINT64_MAX });
    expect(encodeProperties({ TasksMax: "10%" })[1]).toMatchObject({ name: "TasksMaxScale", signature: "u" });
    expect(() => encodeProperties({ TasksMax: "0" })).toThrow(PropertyError);
  });

  test("CPUWeight is 1..10000 (t)", () => {
    expect(encodeProperties({ CPUWeight: "100" })[1]).toMatchObject({ signature: "t", value: 100n });
    expect(() => encodeProperties({ CPUWeight: "0" })).toThrow(PropertyError);
    expect(() => encodeProperties({ CPUWeight: "idle" })).toThrow(PropertyError);
  });

  test("accounting switches are booleans (b)", () => {
    expect(encodeProperties({ MemoryAccounting: "yes", CPUAccounting: "false" }).slice(1)).toMatchObject([
      { name: "MemoryAccounting", signature: "b", value: true },
      { name: "CPUAccounting", signature: "b", value: false },
    ]);
    expect(() => encodeProperties({ IOAccounting: "maybe" })).toThrow(PropertyError);
  });
});

describe("unknown properties are refused, never guessed", () => {
  test("a bogus property names itself and what is known", () => {
    let err: unknown;
    try {
      encodeProperties({ AllowedCPUs: "0", Bogus: "1" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PropertyError);
    expect((err as PropertyError).property).toBe("Bogus");
    expect((err as Error).message).toContain('unit property Bogus="1": flux-pam does not know this property\'s D-Bus type');
    expect((err as Error).message).toContain("AllowedCPUs");
  });
});

describe("reading properties back (GetAll -> the mapper's spelling)", () => {
  test("masks, devices, sizes, quota", () => {
    expect(
      decodeProperties({
        AllowedCPUs: new Uint8Array([0x03]),
        AllowedMemoryNodes: new Uint8Array([]),
        DevicePolicy: "closed",
        DeviceAllow: [["/dev/null", "rw"], ["/dev/zero", "r"]],
        MemoryMax: UINT64_MAX,
        MemoryHigh: 1073741824n,
        CPUQuotaPerSecUSec: 1500000n,
        CPUWeight: UINT64_MAX,
        MemoryAccounting: true,
        Unrelated: "x",
      }),
    ).toEqual({
      AllowedCPUs: "0-1",
      AllowedMemoryNodes: "",
      DevicePolicy: "closed",
      DeviceAllow: "/dev/null rw,/dev/zero r",
      MemoryMax: "infinity",
      MemoryHigh: "1073741824",
      CPUQuota: "150%",
      CPUWeight: "",
      MemoryAccounting: "yes",
    });
  });
});

describe("dry-run spelling", () => {
  test("values with spaces are quoted", () => {
    const props = encodeProperties({ AllowedCPUs: "1,0", DeviceAllow: "/dev/null rw" });
    expect(props.map(formatProperty)).toEqual(["DeviceAllow=", "AllowedCPUs=0-1", 'DeviceAllow="/dev/null rw"']);
  });
});
