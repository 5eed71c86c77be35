// A stand-in systemd and logind on dbus-native's in-process bus, for the races real systemd does not
// let a test choose: JobRemoved before the reply, a job that never ends, a call never answered.

import * as dbus from "dbus-native";
import type { MessageBus } from "dbus-native";
import { join } from "node:path";

const PATH = "/org/freedesktop/systemd1";
const MANAGER = "org.freedesktop.systemd1.Manager";

/** What the fake does with a job for a unit. */
export type JobPlan =
  | "done" // reply, then JobRemoved "done" a little later
  | "signal-first" // JobRemoved "done" is sent before the method reply
  | "failed" // JobRemoved with result "failed"
  | "timeout" // JobRemoved with result "timeout"
  | "never" // reply with a job, never finish it
  | "forged" // never finish it, but another client sends the caller a JobRemoved "done" for it
  | "no-reply" // never answer the call
  | "no-such-unit"; // error reply

export interface RecordedCall {
  member: string;
  /** the arguments, variants kept as dbus.Variant so their signatures can be checked */
  body: unknown[];
}

export interface FakeSystemd {
  address: string;
  calls: RecordedCall[];
  plans: Map<string, JobPlan>;
  /** method -> plan, taking precedence over the unit's: a method refused or never answered for every unit */
  memberPlans: Map<string, JobPlan>;
  /** unit -> ActiveState, as LoadUnit's object reports it (default "inactive") */
  activeStates: Map<string, string>;
  /** uid -> Linger; a uid not here is NoSuchUser */
  lingering: Map<number, boolean>;
  close(): Promise<void>;
}

interface DBusFailure extends Error {
  dbusName: string;
}

function failure(dbusName: string, message: string): DBusFailure {
  return Object.assign(new Error(message), { dbusName });
}

export async function startFakeSystemd(dir: string, opts: { logind?: boolean } = {}): Promise<FakeSystemd> {
  const broker = dbus.createBroker();
  const address = await new Promise<string>((resolve, reject) =>
    broker.listen({ socket: join(dir, "system_bus_socket") }, (err, a) => (err ? reject(err) : resolve(a))),
  );
  const svc: MessageBus = dbus.createClient({ busAddress: address, fdTransport: false, variants: "wrap" });
  await svc.requestName("org.freedesktop.systemd1", 0);
  if (opts.logind !== false) await svc.requestName("org.freedesktop.login1", 0);

  const calls: RecordedCall[] = [];
  const plans = new Map<string, JobPlan>();
  const memberPlans = new Map<string, JobPlan>();
  const activeStates = new Map<string, string>();
  const lingering = new Map<number, boolean>();
  let nextJob = 100;

  const jobRemoved = (id: number, job: string, unit: string, result: string) =>
    svc.sendSignal(PATH, MANAGER, "JobRemoved", "uoss", [id, job, unit, result]);

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

  const job = (member: string) => (unit: string, ...rest: unknown[]) => {
    const msg = rest.at(-1) as { sender: string };
    calls.push({ member, body: [unit, ...rest.slice(0, -1)] });
    const plan = memberPlans.get(member) ?? plans.get(unit) ?? "done";
    const id = nextJob++;
    const path = `${PATH}/job/${id}`;
    switch (plan) {
      case "no-reply":
        return new Promise(() => {});
      case "no-such-unit":
        throw failure("org.freedesktop.systemd1.NoSuchUnit", `Unit ${unit} not found.`);
      case "signal-first":
        jobRemoved(id, path, unit, "done");
        return path;
      case "never":
        return path;
      case "forged":
        setTimeout(() => forge(msg.sender, id, path, unit), 20);
        return path;
      default:
        setTimeout(() => jobRemoved(id, path, unit, plan), 50);
        return path;
    }
  };
  const plain = (member: string, out: string, answer: (...args: unknown[]) => unknown) => (...args: unknown[]) => {
    const body = args.slice(0, -1);
    calls.push({ member, body });
    const unit = typeof body[0] === "string" ? body[0] : Array.isArray(body[0]) && typeof body[0][0] === "string" ? body[0][0] : "";
    const plan = memberPlans.get(member) ?? plans.get(unit);
    if (plan === "no-reply") return new Promise(() => {});
    if (plan === "no-such-unit") throw failure("org.freedesktop.systemd1.NoSuchUnit", `Unit ${unit} not found.`);
    return out === "" ? null : answer(...body);
  };

  svc.setMethodCallHandler(PATH, MANAGER, "Subscribe", [plain("Subscribe", "", () => null), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "StartTransientUnit", [job("StartTransientUnit"), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "StartUnit", [job("StartUnit"), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "StopUnit", [job("StopUnit"), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "SetUnitProperties", [plain("SetUnitProperties", "", () => null), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "KillUnit", [plain("KillUnit", "", () => null), ""]);
  svc.setMethodCallHandler(PATH, MANAGER, "RevertUnitFiles", [plain("RevertUnitFiles", "a(sss)", () => []), "a(sss)"]);
  svc.setMethodCallHandler(PATH, MANAGER, "Reload", [plain("Reload", "", () => null), ""]);
  // LoadUnit: each unit gets an object whose Unit properties Properties.Get answers (dbus-native does).
  const exported = new Set<string>();
  const unitPath = (unit: string) => `${PATH}/unit/${unit.replace(/[^A-Za-z0-9]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, "0")}`)}`;
  const loadUnit = (unit: unknown) => {
    const name = String(unit);
    const path = unitPath(name);
    if (!exported.has(path)) {
      exported.add(path);
      const props = {
        get LoadState() {
          return "loaded";
        },
        get ActiveState() {
          return activeStates.get(name) ?? "inactive";
        },
        get SubState() {
          return activeStates.get(name) === "active" ? "running" : "dead";
        },
      };
      svc.exportInterface(props, path, {
        name: "org.freedesktop.systemd1.Unit",
        properties: { LoadState: { type: "s", access: "read" }, ActiveState: { type: "s", access: "read" }, SubState: { type: "s", access: "read" } },
      });
    }
    return path;
  };
  svc.setMethodCallHandler(PATH, MANAGER, "LoadUnit", [plain("LoadUnit", "o", loadUnit), "o"]);
  svc.setMethodCallHandler(PATH, MANAGER, "GetUnit", [plain("GetUnit", "o", loadUnit), "o"]);

  svc.setMethodCallHandler("/org/freedesktop/login1", "org.freedesktop.login1.Manager", "GetUser", [
    (uid: number) => {
      calls.push({ member: "GetUser", body: [uid] });
      if (!lingering.has(uid)) throw failure("org.freedesktop.login1.NoSuchUser", `User ID ${uid} is not logged in or lingering`);
      return `/org/freedesktop/login1/user/_${uid}`;
    },
    "o",
  ]);
  // Properties.Get is answered by dbus-native itself for exported interfaces, from these getters.
  for (const uid of [1000, 1001, 1002]) {
    const user = {
      get Linger() {
        return lingering.get(uid) ?? false;
      },
    };
    svc.exportInterface(user, `/org/freedesktop/login1/user/_${uid}`, { name: "org.freedesktop.login1.User", properties: { Linger: { type: "b", access: "read" } } });
  }

  return {
    address,
    calls,
    plans,
    memberPlans,
    activeStates,
    lingering,
    async close() {
      await attacker.close();
      await svc.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
