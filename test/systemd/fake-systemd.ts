// A stand-in systemd on dbus-native's in-process bus, for the races real systemd does not
// let a test choose: JobRemoved before the reply, a job that never ends, a call never answered.
//
// It holds units as systemd does, enough for the hooks' reads: GetUnit answers only for a unit it
// holds (NoSuchUnit otherwise: it never loads one); Properties.Get on a unit's object path
// (/org/freedesktop/systemd1/unit/user_401000_2eservice) loads the unit if it must, as systemd
// does, and answers its Unit properties (ActiveState, NeedDaemonReload, Job, SliceOf, ...) and the
// four limits of its type's interface (none); a job's object path answers JobType while the job is
// queued, UnknownObject once it is gone. A job's end moves its unit: a start done makes it active, a
// start failed makes it failed, a stop done makes it inactive and frees it (unless `pinned`).

import * as dbus from "dbus-native";
import type { Message, MessageBus } from "dbus-native";
import { join } from "node:path";

const PATH = "/org/freedesktop/systemd1";
const MANAGER = "org.freedesktop.systemd1.Manager";
const PROPERTIES = "org.freedesktop.DBus.Properties";
const UNIT_IFACE = "org.freedesktop.systemd1.Unit";
const JOB_IFACE = "org.freedesktop.systemd1.Job";
const UNIT_PREFIX = `${PATH}/unit/`;
const JOB_PREFIX = `${PATH}/job/`;

/** What the fake does with a call (a job's call: with its job too). */
export type JobPlan =
  | "done" // reply, then JobRemoved "done" a little later
  | "signal-first" // JobRemoved "done" is sent before the method reply
  | "failed" // JobRemoved with result "failed"
  | "timeout" // JobRemoved with result "timeout"
  | "never" // reply with a job, never finish it
  | "forged" // never finish it, but another client sends the caller a JobRemoved "done" for it
  | "flood-first" // another client sends the caller `flood` JobRemoved for jobs not its own, then as "signal-first"
  | "no-reply" // never answer the call
  | "no-such-unit" // error reply org.freedesktop.systemd1.NoSuchUnit
  | "access-denied"; // error reply org.freedesktop.DBus.Error.AccessDenied (a refusal that is not "no such unit")

export interface RecordedCall {
  member: string;
  /** the arguments, variants kept as dbus.Variant so their signatures can be checked */
  body: unknown[];
  /** the object path, for calls on a unit's or a job's object (Properties.Get, GetAll) */
  path?: string;
}

/** A unit as the fake holds it. */
export interface FakeUnit {
  /** default "inactive" */
  ActiveState?: string;
  /** default false */
  NeedDaemonReload?: boolean;
  /** a slice's units (its SliceOf); default none */
  SliceOf?: string[];
  /**
   * the job queued for it (set by the fake's own jobs; a test may plant one: its path answers as a
   * job that already ended, UnknownObject, unless `lasting`)
   */
  job?: { id: number; type: string; lasting?: boolean };
  /** stays held once stopped (another unit refers to it): a stop done does not free it */
  pinned?: boolean;
  /** its DevicePolicy (default "auto"): a limit in force, for the readers of limits */
  DevicePolicy?: string;
}

export interface FakeSystemd {
  address: string;
  calls: RecordedCall[];
  /** unit -> plan for every call about it */
  plans: Map<string, JobPlan>;
  /** method -> plan, taking precedence over the unit's: a method refused or never answered for every unit */
  memberPlans: Map<string, JobPlan>;
  /** the units systemd holds, by name; GetUnit answers NoSuchUnit for any other */
  units: Map<string, FakeUnit>;
  /** how many JobRemoved signals a "flood-first" job's flood holds; default 0 */
  flood: number;
  /** called with each recorded call before it is answered: a test may change the fake's state there */
  onCall?: (call: RecordedCall) => void;
  close(): Promise<void>;
}

interface DBusFailure extends Error {
  dbusName: string;
}

function failure(dbusName: string, message: string): DBusFailure {
  return Object.assign(new Error(message), { dbusName });
}

/** systemd's bus_label_escape: every byte but a-z, A-Z and (not first) 0-9 as _XX. */
export function fakeUnitPath(unit: string): string {
  let label = "";
  for (const [i, b] of [...Buffer.from(unit)].entries()) {
    const alnum = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39 && i > 0);
    label += alnum ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, "0")}`;
  }
  return `${UNIT_PREFIX}${label || "_"}`;
}

/** bus_label_unescape: the unit a unit object path names. */
function unitOfPath(path: string): string {
  const label = path.slice(UNIT_PREFIX.length);
  if (label === "_") return "";
  return Buffer.from(label.replace(/_([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString();
}

/** The interface that holds a unit type's resource properties (org.freedesktop.systemd1.Slice). */
const typeInterface = (unit: string) => {
  const type = unit.slice(unit.lastIndexOf(".") + 1);
  return `org.freedesktop.systemd1.${type.charAt(0).toUpperCase()}${type.slice(1)}`;
};

export async function startFakeSystemd(dir: string): Promise<FakeSystemd> {
  const broker = dbus.createBroker();
  const address = await new Promise<string>((resolve, reject) =>
    broker.listen({ socket: join(dir, "system_bus_socket") }, (err, a) => (err ? reject(err) : resolve(a))),
  );
  const svc: MessageBus = dbus.createClient({ busAddress: address, fdTransport: false, variants: "wrap" });
  await svc.requestName("org.freedesktop.systemd1", 0);

  const fake: FakeSystemd = {
    address,
    calls: [],
    plans: new Map(),
    memberPlans: new Map(),
    units: new Map(),
    flood: 0,
    close: async () => {},
  };
  const { calls, plans, memberPlans, units } = fake;
  /** queued jobs: id -> its unit and type */
  const jobs = new Map<number, { unit: string; type: string }>();
  let nextJob = 100;

  const record = (call: RecordedCall) => {
    calls.push(call);
    fake.onCall?.(call);
  };
  const planFor = (member: string, unit: string) => memberPlans.get(member) ?? plans.get(unit);
  /** The unit, held from now on (systemd loads it). */
  const hold = (unit: string): FakeUnit => {
    let u = units.get(unit);
    if (!u) units.set(unit, (u = {}));
    return u;
  };

  // A job's end or a forged signal scheduled before close() would otherwise write to a closed
  // connection: dbus-native reports that as an 'error' nobody listens for, which ends the test
  // process in whatever test runs at that moment.
  let closed = false;
  const later = (f: () => void, ms: number) => setTimeout(() => closed || f(), ms);
  const jobRemoved = (id: number, job: string, unit: string, result: string) =>
    closed || svc.sendSignal(PATH, MANAGER, "JobRemoved", "uoss", [id, job, unit, result]);

  /** The job's end as systemd makes it: the unit moves, the job goes, a stopped unit is freed. */
  const finish = (id: number, result: string) => {
    const j = jobs.get(id);
    if (!j) return;
    jobs.delete(id);
    const u = units.get(j.unit);
    if (u?.job?.id === id) delete u.job;
    if (u && result === "done") u.ActiveState = j.type === "stop" ? "inactive" : "active";
    if (u && result === "failed" && j.type === "start") u.ActiveState = "failed";
    if (u && j.type === "stop" && u.ActiveState === "inactive" && !u.pinned) units.delete(j.unit);
    jobRemoved(id, `${PATH}/job/${id}`, j.unit, result);
  };

  // Any local user can address a signal to a connection's unique name, bypassing match rules.
  const attacker: MessageBus = dbus.createClient({ busAddress: address, fdTransport: false });
  await attacker.getId();
  let forgedSerial = 1000;
  const forge = (to: string, id: number, job: string, unit: string) =>
    attacker.connection.message({
      type: dbus.messageType.signal,
      serial: forgedSerial++,
      destination: to,
      path: PATH,
      interface: MANAGER,
      member: "JobRemoved",
      signature: "uoss",
      body: [id, job, unit, "done"],
    });

  const refuse = (plan: JobPlan | undefined, unit: string) => {
    if (plan === "no-such-unit") throw failure("org.freedesktop.systemd1.NoSuchUnit", `Unit ${unit} not found.`);
    if (plan === "access-denied") throw failure("org.freedesktop.DBus.Error.AccessDenied", "Permission denied");
  };

  const job = (member: string, type: string) => (unit: string, ...rest: unknown[]) => {
    const msg = rest.at(-1) as { sender: string };
    record({ member, body: [unit, ...rest.slice(0, -1)] });
    const plan = planFor(member, unit) ?? "done";
    if (plan === "no-reply") return new Promise(() => {});
    refuse(plan, unit);
    const id = nextJob++;
    const path = `${PATH}/job/${id}`;
    jobs.set(id, { unit, type });
    hold(unit).job = { id, type };
    switch (plan) {
      case "signal-first":
        finish(id, "done");
        return path;
      case "never":
        return path;
      case "forged":
        later(() => forge(msg.sender, id, path, unit), 20);
        return path;
      case "flood-first":
        return (async () => {
          for (let i = 0; i < fake.flood; i++) forge(msg.sender, 1_000_000 + i, `${PATH}/job/${1_000_000 + i}`, unit);
          // The bus handles one connection's messages in order: once it has answered the attacker's
          // GetId, it has passed the whole flood on, and systemd's own signal comes after it.
          await attacker.getId();
          finish(id, "done");
          return path;
        })();
      default:
        later(() => finish(id, plan), 50);
        return path;
    }
  };
  const plain = (member: string, out: string, answer: (...args: unknown[]) => unknown) => (...args: unknown[]) => {
    const body = args.slice(0, -1);
    record({ member, body });
    const unit = typeof body[0] === "string" ? body[0] : Array.isArray(body[0]) && typeof body[0][0] === "string" ? body[0][0] : "";
    const plan = planFor(member, unit);
    if (plan === "no-reply") return new Promise(() => {});
    refuse(plan, unit);
    return out === "" ? null : answer(...body);
  };

  svc.setMethodCallHandler(PATH, MANAGER, "Subscribe", [plain("Subscribe", "", () => null), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "StartTransientUnit", [job("StartTransientUnit", "start"), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "StartUnit", [job("StartUnit", "start"), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "StopUnit", [job("StopUnit", "stop"), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "SetUnitProperties", [plain("SetUnitProperties", "", (unit) => void hold(String(unit))), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "KillUnit", [plain("KillUnit", "", () => null), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "RevertUnitFiles", [plain("RevertUnitFiles", "a(sss)", () => []), "a(sss)"]);
  svc.setMethodCallHandler(PATH, MANAGER, "Reload", [plain("Reload", "", () => null), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "ResetFailedUnit", [
    plain("ResetFailedUnit", "", (unit) => {
      const u = units.get(String(unit));
      if (!u) throw failure("org.freedesktop.systemd1.NoSuchUnit", `Unit ${String(unit)} not loaded.`);
      if (u.ActiveState === "failed") u.ActiveState = "inactive";
      return null;
    }),
    "",
  ]);
  // LoadUnit loads (holds) the unit; GetUnit answers only for a unit held, and never loads one.
  svc.setMethodCallHandler(PATH, MANAGER, "LoadUnit", [
    plain("LoadUnit", "o", (unit) => {
      hold(String(unit));
      return fakeUnitPath(String(unit));
    }),
    "o",
  ]);
  svc.setMethodCallHandler(PATH, MANAGER, "GetUnit", [
    plain("GetUnit", "o", (unit) => {
      if (!units.has(String(unit))) throw failure("org.freedesktop.systemd1.NoSuchUnit", `Unit ${String(unit)} not loaded.`);
      return fakeUnitPath(String(unit));
    }),
    "o",
  ]);

  /** A unit's properties as [signature, value], per interface. */
  const unitProperties = (unit: string, iface: string): Record<string, [string, unknown]> | undefined => {
    const u = hold(unit);
    const state = u.ActiveState ?? "inactive";
    if (iface === UNIT_IFACE)
      return {
        Id: ["s", unit],
        LoadState: ["s", "loaded"],
        ActiveState: ["s", state],
        SubState: ["s", state === "active" ? "running" : state === "failed" ? "failed" : "dead"],
        NeedDaemonReload: ["b", u.NeedDaemonReload ?? false],
        Job: ["(uo)", u.job ? [u.job.id, `${JOB_PREFIX}${u.job.id}`] : [0, "/"]],
        // (a dependency list: every unit has one; a slice's names its units)
        SliceOf: ["as", u.SliceOf ?? []],
      };
    if (iface === typeInterface(unit))
      return {
        AllowedCPUs: ["ay", Buffer.alloc(0)],
        AllowedMemoryNodes: ["ay", Buffer.alloc(0)],
        DevicePolicy: ["s", u.DevicePolicy ?? "auto"],
        DeviceAllow: ["a(ss)", []],
      };
    return undefined;
  };
  /** The fake's own job, or a lasting one a test planted on a unit (a job that never ends). */
  const jobOf = (id: number): { unit: string; type: string } | undefined => {
    const planted = [...units.entries()].find(([, u]) => u.job?.id === id && u.job.lasting);
    return jobs.get(id) ?? (planted ? { unit: planted[0], type: planted[1].job!.type } : undefined);
  };
  const jobProperties = (id: number, iface: string): Record<string, [string, unknown]> | undefined => {
    const j = jobOf(id);
    if (!j || iface !== JOB_IFACE) return undefined;
    return { Id: ["u", id], JobType: ["s", j.type], State: ["s", "running"], Unit: ["(so)", [j.unit, fakeUnitPath(j.unit)]] };
  };

  // Properties.Get / GetAll on units' and jobs' object paths: answered here, before dbus-native's
  // own handler (which knows only exported objects): systemd answers for any unit's path, loading it.
  const onProperties = async (msg: Message): Promise<void> => {
    const path = msg.path!;
    const body = (msg.body ?? []) as unknown[];
    const member = msg.member!;
    record({ member, body, path });
    const isUnit = path.startsWith(UNIT_PREFIX);
    const unit = isUnit ? unitOfPath(path) : "";
    const plan = planFor(member, unit);
    if (plan === "no-reply") return;
    if (plan === "no-such-unit") return svc.sendError(msg, "org.freedesktop.systemd1.NoSuchUnit", `Unit ${unit} not found.`);
    if (plan === "access-denied") return svc.sendError(msg, "org.freedesktop.DBus.Error.AccessDenied", "Permission denied");
    const iface = String(body[0]);
    const props = isUnit ? unitProperties(unit, iface) : jobProperties(Number(path.slice(JOB_PREFIX.length)), iface);
    if (props === undefined) {
      if (!isUnit && !jobOf(Number(path.slice(JOB_PREFIX.length)))) return svc.sendError(msg, "org.freedesktop.DBus.Error.UnknownObject", `Unknown object '${path}'.`);
      return svc.sendError(msg, "org.freedesktop.DBus.Error.UnknownInterface", `Unknown interface ${iface}.`);
    }
    if (member === "GetAll") return svc.sendReply(msg, "a{sv}", [Object.entries(props)]);
    if (member !== "Get") return svc.sendError(msg, "org.freedesktop.DBus.Error.UnknownMethod", `Unknown method ${member}.`);
    const v = props[String(body[1])];
    if (v === undefined) return svc.sendError(msg, "org.freedesktop.DBus.Error.UnknownProperty", `Unknown property ${String(body[1])}.`);
    svc.sendReply(msg, "v", [v]);
  };
  const conn = svc.connection as unknown as NodeJS.EventEmitter;
  const inner = conn.listeners("message") as ((m: Message) => void)[];
  conn.removeAllListeners("message");
  conn.on("message", (msg: Message) => {
    const ours =
      msg.type === dbus.messageType.methodCall &&
      msg.interface === PROPERTIES &&
      msg.destination === "org.freedesktop.systemd1" &&
      (msg.path?.startsWith(UNIT_PREFIX) || msg.path?.startsWith(JOB_PREFIX));
    if (ours) void onProperties(msg);
    else for (const l of inner) l.call(conn, msg);
  });

  fake.close = async () => {
    closed = true;
    await attacker.close();
    await svc.close();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  };
  return fake;
}
