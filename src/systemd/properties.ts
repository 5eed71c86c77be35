// The mapper's string properties -> typed D-Bus (name, variant) pairs for SetUnitProperties, and back.
// Only properties whose D-Bus type we know are sent; anything else is refused, never guessed.

import { formatIdset, IdsetError, parseIdset } from "../flux/idset";
import { PropertyError } from "./errors";
import type { UnitProperty } from "./types";

const UINT64_MAX = (1n << 64n) - 1n;
const UINT32_MAX = 0xffffffff;

// A CPU or NUMA node number past this is a typo or a lie: no node has 65536 CPUs.
const MAX_MASK_ID = 0xffff;

/** An idset as systemd's CPU bitmask: bit i of byte i/8 is id i (little-endian, as cpu_set_to_dbus). */
export function idsetToMask(ids: readonly number[]): Uint8Array {
  if (ids.length === 0) return new Uint8Array(0);
  const max = ids[ids.length - 1]!;
  const mask = new Uint8Array((max >> 3) + 1);
  for (const id of ids) mask[id >> 3]! |= 1 << (id & 7);
  return mask;
}

export function maskToIdset(mask: Uint8Array): string {
  const ids: number[] = [];
  mask.forEach((byte, i) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) ids.push(i * 8 + bit);
  });
  return formatIdset(ids);
}

function text(name: string, value: string): string {
  return `${name}=${value}`;
}

function maskProperty(name: string, value: string): UnitProperty {
  let ids: readonly number[];
  try {
    ids = parseIdset(value);
  } catch (e) {
    if (e instanceof IdsetError) throw new PropertyError(name, value, "not an idset (e.g. 0-3,8)");
    throw e;
  }
  // systemd reads an empty mask as "no restriction": the slice would get every CPU or node.
  if (ids.length === 0) throw new PropertyError(name, value, "an empty set would lift the limit instead of setting one");
  if (ids[ids.length - 1]! > MAX_MASK_ID) throw new PropertyError(name, value, `ids above ${MAX_MASK_ID} are not accepted`);
  return { name, signature: "ay", value: idsetToMask(ids), text: text(name, formatIdset(ids)) };
}

const SIZE_FACTORS: Record<string, bigint> = {
  "": 1n,
  B: 1n,
  K: 1n << 10n,
  M: 1n << 20n,
  G: 1n << 30n,
  T: 1n << 40n,
  P: 1n << 50n,
  E: 1n << 60n,
};

/** systemd's parse_size (base 1024): "4096", "512M", "1.5G". */
export function parseSize(value: string): bigint | undefined {
  const m = /^(\d{1,20})(?:\.(\d{1,9}))?([BKMGTPE]?)$/.exec(value.trim());
  if (!m) return undefined;
  const factor = SIZE_FACTORS[m[3]!]!;
  const frac = m[2] ?? "";
  const scale = 10n ** BigInt(frac.length);
  const n = (BigInt(m[1]!) * scale + BigInt(frac || "0")) * factor / scale;
  return n >= UINT64_MAX ? undefined : n;
}

/** "50%", "12.5%" -> per-myriad (5000, 1250), as systemd's parse_permyriad. */
export function parsePermyriad(value: string): number | undefined {
  const m = /^(\d{1,3})(?:\.(\d{1,2}))?%$/.exec(value.trim());
  if (!m) return undefined;
  const p = Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0"));
  return p <= 10000 ? p : undefined;
}

/** UINT32_SCALE_FROM_PERMYRIAD: a fraction of UINT32_MAX, rounded, as systemctl sends MemoryMaxScale. */
function scaleFromPermyriad(p: number): number {
  return Number((BigInt(p) * BigInt(UINT32_MAX) + 5000n) / 10000n);
}

/** MemoryMax and friends: bytes (t), "infinity", or a percentage of RAM sent as NAMEScale (u). */
function memoryProperty(name: string, value: string): UnitProperty {
  const v = value.trim();
  if (v === "infinity") return { name, signature: "t", value: UINT64_MAX, text: text(name, v) };
  const p = parsePermyriad(v);
  if (p !== undefined) return { name: `${name}Scale`, signature: "u", value: scaleFromPermyriad(p), text: text(name, v) };
  const bytes = parseSize(v);
  if (bytes === undefined) throw new PropertyError(name, value, 'not a size (bytes with an optional K/M/G/T suffix, a percentage, or "infinity")');
  return { name, signature: "t", value: bytes, text: text(name, v) };
}

function tasksMaxProperty(name: string, value: string): UnitProperty {
  const v = value.trim();
  if (v === "infinity") return { name, signature: "t", value: UINT64_MAX, text: text(name, v) };
  const p = parsePermyriad(v);
  if (p !== undefined) return { name: `${name}Scale`, signature: "u", value: scaleFromPermyriad(p), text: text(name, v) };
  if (!/^\d{1,19}$/.test(v) || BigInt(v) === 0n) throw new PropertyError(name, value, 'not a positive count, a percentage, or "infinity"');
  return { name, signature: "t", value: BigInt(v), text: text(name, v) };
}

/** CPUQuota=20% travels as CPUQuotaPerSecUSec (t): CPU time per second of wall clock. */
function cpuQuotaProperty(name: string, value: string): UnitProperty {
  const m = /^(\d{1,7})(?:\.(\d{1,2}))?%$/.exec(value.trim());
  const p = m ? Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0")) : 0;
  if (!m || p <= 0) throw new PropertyError(name, value, "not a positive percentage (e.g. 200% for two CPUs)");
  return { name: "CPUQuotaPerSecUSec", signature: "t", value: BigInt(p) * 100n, text: text(name, value.trim()) };
}

function weightProperty(name: string, value: string): UnitProperty {
  const v = value.trim();
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 10000) throw new PropertyError(name, value, "not a weight between 1 and 10000");
  return { name, signature: "t", value: BigInt(v), text: text(name, v) };
}

const TRUE_WORDS = new Set(["1", "yes", "y", "true", "t", "on"]);
const FALSE_WORDS = new Set(["0", "no", "n", "false", "f", "off"]);

function booleanProperty(name: string, value: string): UnitProperty {
  const v = value.trim().toLowerCase();
  if (TRUE_WORDS.has(v)) return { name, signature: "b", value: true, text: text(name, "yes") };
  if (FALSE_WORDS.has(v)) return { name, signature: "b", value: false, text: text(name, "no") };
  throw new PropertyError(name, value, "not a boolean (yes/no)");
}

const DEVICE_POLICIES = new Set(["auto", "closed", "strict"]);

function devicePolicyProperty(name: string, value: string): UnitProperty {
  const v = value.trim();
  if (!DEVICE_POLICIES.has(v)) throw new PropertyError(name, value, "not one of auto, closed, strict");
  return { name, signature: "s", value: v, text: text(name, v) };
}

/** "/dev/nvidia0 rw,/dev/nvidiactl rw" -> one (path, perms) entry per device, as systemd's valid_device_allow_pattern wants. */
export function parseDeviceAllow(value: string): [string, string][] {
  const out: [string, string][] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    if (item === "") continue;
    const m = /^(\S+)(?:\s+(\S+))?$/.exec(item);
    if (!m) throw new PropertyError("DeviceAllow", value, `"${item}" is not "PATH [rwm]"`);
    const path = m[1]!;
    const perms = m[2] ?? "rwm";
    if (!(path.startsWith("/dev/") || /^(char|block)-\S+$/.test(path)))
      throw new PropertyError("DeviceAllow", value, `"${path}" is neither a /dev/ path nor char-NAME / block-NAME`);
    if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length)
      throw new PropertyError("DeviceAllow", value, `"${perms}" is not a set of r, w, m`);
    out.push([path, perms]);
  }
  return out;
}

/** The empty DeviceAllow that makes systemd drop the whole list before the new entries. */
export const DEVICE_ALLOW_RESET: UnitProperty = { name: "DeviceAllow", signature: "a(ss)", value: [], text: "DeviceAllow=" };

/**
 * Every character and every block device, with every permission: systemd's char-* / block-*
 * wildcards. A fixed list for liftDevices() only; it never comes from the mapper.
 */
const ALL_DEVICES: readonly (readonly [string, string])[] = [
  ["char-*", "rwm"],
  ["block-*", "rwm"],
];

/**
 * The "lift device restrictions" properties: DevicePolicy=auto with DeviceAllow= every char and
 * block device, which makes systemd put a device program on the unit's cgroup that lets every
 * open(2) through. Housekeeping sets them on the slice before the last job's revert: systemd 252
 * manages the device program only while the unit has a device policy, so the revert alone leaves
 * the last job's program in the kernel for as long as a process keeps the slice's cgroup alive.
 * A fresh list on each call.
 */
export function liftDevices(): UnitProperty[] {
  const entries = ALL_DEVICES.map(([path, perms]): [string, string] => [path, perms]);
  return [
    { name: "DevicePolicy", signature: "s", value: "auto", text: text("DevicePolicy", "auto") },
    deviceAllowProperty(entries),
  ];
}

/** One DeviceAllow of (path, perms) entries, already checked. */
function deviceAllowProperty(entries: [string, string][]): UnitProperty {
  return { name: "DeviceAllow", signature: "a(ss)", value: entries, text: text("DeviceAllow", entries.map(([p, r]) => `${p} ${r}`).join(",")) };
}

function deviceAllowProperties(value: string): UnitProperty[] {
  const entries = parseDeviceAllow(value);
  return entries.length === 0 ? [] : [deviceAllowProperty(entries)];
}

type Encoder = (name: string, value: string) => UnitProperty;

/** Every property flux-pam will send, with its D-Bus type. DeviceAllow is handled apart (it expands). */
const ENCODERS: Record<string, Encoder> = {
  AllowedCPUs: maskProperty,
  AllowedMemoryNodes: maskProperty,
  DevicePolicy: devicePolicyProperty,
  MemoryMin: memoryProperty,
  MemoryLow: memoryProperty,
  MemoryHigh: memoryProperty,
  MemoryMax: memoryProperty,
  MemorySwapMax: memoryProperty,
  TasksMax: tasksMaxProperty,
  CPUQuota: cpuQuotaProperty,
  CPUWeight: weightProperty,
  IOWeight: weightProperty,
  CPUAccounting: booleanProperty,
  MemoryAccounting: booleanProperty,
  TasksAccounting: booleanProperty,
  IOAccounting: booleanProperty,
};

export const KNOWN_PROPERTIES: readonly string[] = [...Object.keys(ENCODERS), "DeviceAllow"].sort();

/**
 * The names of the runtime drop-ins (50-NAME.conf under /run/systemd/system.control/UNIT.d) that
 * the properties flux-pam sends may leave: each known property's own, and NAMEScale for a memory
 * limit or TasksMax given as a percentage, which travels as NAMEScale and which systemd files
 * under that name (observed with systemd 252; CPUQuota's drop-in keeps its own name).
 */
export const DROPIN_PROPERTIES: readonly string[] = [
  ...KNOWN_PROPERTIES,
  ...Object.entries(ENCODERS)
    .filter(([, encode]) => encode === memoryProperty || encode === tasksMaxProperty)
    .map(([name]) => `${name}Scale`),
].sort();

export interface EncodeOptions {
  /**
   * Start with an empty DeviceAllow even when the mapper sent none, so devices granted to jobs
   * that have ended are dropped. Default true: a slice must never keep a device nobody asked for.
   */
  resetDeviceAllow?: boolean;
}

/**
 * The mapper's {property: string} -> the list for SetUnitProperties, in the mapper's order, with
 * DeviceAllow's reset first. Throws PropertyError for anything it cannot type.
 */
export function encodeProperties(props: Readonly<Record<string, string>>, opts: EncodeOptions = {}): UnitProperty[] {
  const out: UnitProperty[] = [];
  if (opts.resetDeviceAllow ?? true) out.push(DEVICE_ALLOW_RESET);
  for (const [name, value] of Object.entries(props)) {
    if (name === "DeviceAllow") {
      if (!(opts.resetDeviceAllow ?? true)) out.push(DEVICE_ALLOW_RESET);
      out.push(...deviceAllowProperties(value));
      continue;
    }
    const encode = ENCODERS[name];
    if (!encode) throw new PropertyError(name, value, `flux-pam does not know this property's D-Bus type (it knows ${KNOWN_PROPERTIES.join(", ")})`);
    out.push(encode(name, value));
  }
  return out;
}

/** A property as systemd reports it (GetAll) -> the mapper's spelling, for check-user and tests. */
type Decoder = (v: unknown) => string | undefined;

const asBytes: Decoder = (v) => (v instanceof Uint8Array ? maskToIdset(v) : undefined);
const asString: Decoder = (v) => (typeof v === "string" ? v : undefined);
const asSize: Decoder = (v) => (typeof v === "bigint" ? (v === UINT64_MAX ? "infinity" : v.toString()) : undefined);
const asBool: Decoder = (v) => (typeof v === "boolean" ? (v ? "yes" : "no") : undefined);
const asOptional: Decoder = (v) => (typeof v === "bigint" ? (v === UINT64_MAX ? "" : v.toString()) : undefined);
const asDevices: Decoder = (v) =>
  Array.isArray(v) && v.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string")
    ? (v as [string, string][])
        .map(([p, r]) => `${p} ${r}`)
        .sort() // systemd lists them in its own order, which carries no meaning
        .join(",")
    : undefined;
// CPUQuotaPerSecUSec: 10000 us of CPU per second is 1%.
const asQuota: Decoder = (v) => (typeof v === "bigint" ? (v === UINT64_MAX ? "" : `${Number(v) / 10000}%`) : undefined);

/** D-Bus property name -> [mapper name, decoder]. */
const DECODERS: Record<string, [string, Decoder]> = {
  AllowedCPUs: ["AllowedCPUs", asBytes],
  AllowedMemoryNodes: ["AllowedMemoryNodes", asBytes],
  DevicePolicy: ["DevicePolicy", asString],
  DeviceAllow: ["DeviceAllow", asDevices],
  MemoryMin: ["MemoryMin", asSize],
  MemoryLow: ["MemoryLow", asSize],
  MemoryHigh: ["MemoryHigh", asSize],
  MemoryMax: ["MemoryMax", asSize],
  MemorySwapMax: ["MemorySwapMax", asSize],
  TasksMax: ["TasksMax", asSize],
  CPUQuotaPerSecUSec: ["CPUQuota", asQuota],
  CPUWeight: ["CPUWeight", asOptional],
  IOWeight: ["IOWeight", asOptional],
  CPUAccounting: ["CPUAccounting", asBool],
  MemoryAccounting: ["MemoryAccounting", asBool],
  TasksAccounting: ["TasksAccounting", asBool],
  IOAccounting: ["IOAccounting", asBool],
};

/** The known resource properties out of a GetAll reply, in the mapper's spelling. */
export function decodeProperties(all: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [dbusName, [name, decode]] of Object.entries(DECODERS)) {
    if (!(dbusName in all)) continue;
    const v = decode(all[dbusName]);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** How a property reads in a dry-run line or a log: Name=value, quoted when it holds spaces. */
export function formatProperty(p: UnitProperty): string {
  const eq = p.text.indexOf("=");
  const value = p.text.slice(eq + 1);
  return /[\s"]/.test(value) ? `${p.text.slice(0, eq)}=${JSON.stringify(value)}` : p.text;
}
