// The systemd manager over D-Bus: transient scopes, runtime properties, start/stop/kill, state, revert.

import { type BusTime, type ConnectOptions, DEFAULT_CALL_MS, type MethodCall, type Signal, SystemBus } from "./bus";
import { removeRuntimeDropins, runtimeDropins } from "./dropins";
import { BadBusReplyError, BusClosedError, DBusCallError, DBusTimeoutError, JobFailedError, JobTimeoutError, NO_SUCH_UNIT } from "./errors";
import { lingerEnabled } from "./logind";
import { decodeProperties, encodeProperties } from "./properties";
import type {
  CallOptions,
  JobDone,
  JobOptions,
  JobQueued,
  KillWho,
  Linger,
  LingerUser,
  ScopeRequest,
  Systemd,
  UnitProgress,
  UnitProperty,
  UnitState,
  UnitStatus,
} from "./types";

const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };
const PROPERTIES = "org.freedesktop.DBus.Properties";
/** what a bus answers for an object path nobody serves: a job or unit systemd has freed */
const UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject";

// Only systemd's own JobRemoved: the bus routes only those to us (but see waitJob: anyone may address one to us).
const JOB_REMOVED_RULE =
  "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";

/** How long a job may take before we give up on it: a scope is instant, user@.service is not. */
const DEFAULT_SCOPE_MS = 10_000;
const DEFAULT_UNIT_JOB_MS = 30_000;
const DEFAULT_RELOAD_MS = 60_000;

/** How many JobRemoved signals are kept that came before their job's path was known. */
const MAX_EARLY_SIGNALS = 1024;

/** How many times unitStatus reads a unit whose job keeps ending between its reads. */
const UNIT_STATUS_READS = 3;

const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]{1,255}$/;

function checkUnitName(unit: string, suffix?: string): void {
  if (!UNIT_NAME.test(unit) || !unit.includes(".") || (suffix !== undefined && !unit.endsWith(suffix)))
    throw new TypeError(`${JSON.stringify(unit)} is not a valid ${suffix ? `${suffix.slice(1)} ` : ""}unit name`);
}

/**
 * A unit's object path, as systemd's bus_label_escape spells it: every byte but a-z, A-Z and (not
 * first) 0-9 as _XX in hex. systemd loads the unit when something asks for a path not yet loaded.
 */
export function unitPath(unit: string): string {
  let label = "";
  const bytes = new TextEncoder().encode(unit);
  bytes.forEach((b, i) => {
    const alpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
    const digit = b >= 0x30 && b <= 0x39 && i > 0;
    label += alpha || digit ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, "0")}`;
  });
  return `/org/freedesktop/systemd1/unit/${label || "_"}`;
}

/** The interface that holds a unit type's resource properties. */
function typeInterface(unit: string): string {
  const type = unit.slice(unit.lastIndexOf(".") + 1);
  return `org.freedesktop.systemd1.${type.charAt(0).toUpperCase()}${type.slice(1)}`;
}

/** A budget split across the steps of one operation. */
class Budget {
  private readonly end: number;
  constructor(
    readonly ms: number,
    private readonly method: string,
    private readonly unit: string | undefined,
  ) {
    this.end = Date.now() + ms;
  }
  left(): number {
    const left = this.end - Date.now();
    if (left <= 0) throw new DBusTimeoutError(this.method, this.unit, this.ms);
    return left;
  }

  /**
   * The operation `f`, each of its calls given what is left: one that runs out of time is reported
   * with the operation's whole budget (what its caller asked for), not the remainder it was given.
   */
  async run<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof DBusTimeoutError && e.ms !== this.ms) throw new DBusTimeoutError(e.method, e.unit, this.ms);
      throw e;
    }
  }
}

export class SystemdClient implements Systemd {
  private jobMatch: Promise<void> | undefined;
  /**
   * JobRemoved signals that arrived before we learnt the job's path, with who sent them (kept only
   * while jobs are in flight): job path -> (sender, result).
   */
  private readonly early = new Map<string, { sender: string; result: string }[]>();
  private earlyKept = 0;
  private readonly waiters = new Map<string, (sender: string, result: string) => void>();
  private jobsInFlight = 0;

  constructor(readonly bus: SystemBus) {
    bus.onSignal((s) => this.onJobRemoved(s));
  }

  /** Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket). */
  static async connect(opts: ConnectOptions = {}): Promise<SystemdClient> {
    return new SystemdClient(await SystemBus.connect(opts));
  }

  private manager(member: string, unit: string | undefined, signature?: string, body?: unknown[]): MethodCall {
    return { ...SYSTEMD, member, unit, ...(signature ? { signature, body } : {}) };
  }

  /**
   * AddMatch for JobRemoved, once per connection, sent in the same write as the first job's call:
   * the bus handles one connection's messages in order, so the rule is in place before systemd
   * even reads the call. No Subscribe: systemd sends a job's JobRemoved to the client that asked for
   * the job whether or not it subscribed (job->bus_track), and a subscriber makes systemd put a
   * signal on the bus for every unit change on the node while it is connected.
   */
  private matchJobs(ms: number): Promise<void> {
    this.jobMatch ??= this.bus.addMatch(JOB_REMOVED_RULE, ms).catch((e: unknown) => {
      this.jobMatch = undefined;
      throw e;
    });
    return this.jobMatch;
  }

  private onJobRemoved(s: Signal): void {
    if (s.path !== SYSTEMD.path || s.interface !== SYSTEMD.interface || s.member !== "JobRemoved") return;
    const [, job, , result] = s.body;
    if (typeof job !== "string" || typeof result !== "string") return;
    const waiter = this.waiters.get(job);
    if (waiter) waiter(s.sender, result);
    else if (this.jobsInFlight > 0 && this.earlyKept < MAX_EARLY_SIGNALS) {
      // (any peer may send us signals: a flood fills no more than this; a JobRemoved of systemd's
      // lost to it leaves the wait to time out, which fails closed)
      this.earlyKept++;
      this.early.set(job, [...(this.early.get(job) ?? []), { sender: s.sender, result }]);
    }
  }

  /**
   * Waits up to `waitMs` for the job's JobRemoved from `systemd` (the unique name that answered the
   * job's call); a timeout reports the operation's whole `budgetMs`.
   */
  private waitJob(method: string, unit: string, job: string, systemd: string, waitMs: number, budgetMs: number): Promise<string> {
    const known = this.early.get(job)?.find((e) => e.sender === systemd);
    if (known !== undefined) return Promise.resolve(known.result);
    const release = this.bus.hold(); // time spent waiting on systemd, for busTime()
    return new Promise<string>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(job);
        offClose();
        release();
      };
      const timer = setTimeout(() => {
        done();
        reject(new JobTimeoutError(method, unit, job, budgetMs));
      }, waitMs);
      // A bus that goes away will never deliver the JobRemoved: say so now, not at the deadline.
      const offClose = this.bus.onClose((cause) => {
        done();
        reject(new BusClosedError(method, unit, `waiting for job ${job}: ${cause.message}`));
      });
      this.waiters.set(job, (sender, result) => {
        // Any local user may send a signal straight to our unique name; a forged "done" would let a
        // session's shell start before its scope exists. Only systemd's own word counts.
        if (sender !== systemd) return;
        done();
        resolve(result);
      });
    });
  }

  /** Calls a manager method that returns a job, and waits for that job's JobRemoved. */
  private async runJob(method: string, unit: string, signature: string, body: unknown[], ms: number): Promise<JobDone> {
    const t0 = performance.now();
    const budget = new Budget(ms, method, unit);
    this.jobsInFlight++;
    try {
      let reply: { body: unknown[]; sender: string | undefined };
      try {
        [, reply] = await Promise.all([this.matchJobs(budget.left()), this.bus.callFrom(this.manager(method, unit, signature, body), budget.left())]);
      } catch (e) {
        // The match spends the operation's budget too: running out there is the operation timing out.
        if (e instanceof DBusTimeoutError) throw new DBusTimeoutError(method, unit, ms);
        throw e;
      }
      const [job] = reply.body;
      if (typeof job !== "string") throw new BadBusReplyError(method, unit, "no job path");
      if (reply.sender === undefined) throw new BadBusReplyError(method, unit, "the reply names no sender");
      let left: number;
      try {
        left = budget.left();
      } catch {
        throw new JobTimeoutError(method, unit, job, ms);
      }
      const result = await this.waitJob(method, unit, job, reply.sender, left, ms);
      if (result !== "done") throw new JobFailedError(method, unit, job, result);
      return { job, unit, ms: performance.now() - t0 };
    } finally {
      if (--this.jobsInFlight === 0) {
        this.early.clear();
        this.earlyKept = 0;
      }
    }
  }

  async startScope(req: ScopeRequest, opts: CallOptions = {}): Promise<JobDone> {
    checkUnitName(req.name, ".scope");
    checkUnitName(req.slice, ".slice");
    if (req.pids.length === 0 || !req.pids.every((p) => Number.isInteger(p) && p > 0 && p <= 0xffffffff))
      throw new TypeError(`a scope needs pids, not ${JSON.stringify(req.pids)}`);
    const props: [string, [string, unknown]][] = [
      ["Slice", ["s", req.slice]],
      ["PIDs", ["au", [...req.pids]]],
    ];
    if (req.description) props.unshift(["Description", ["s", req.description]]);
    // mode "fail": never replace a job someone else queued for a unit of the same name.
    return this.runJob("StartTransientUnit", req.name, "ssa(sv)a(sa(sv))", [req.name, "fail", props, []], opts.timeoutMs ?? DEFAULT_SCOPE_MS);
  }

  async setUnitProperties(unit: string, props: readonly UnitProperty[], opts: CallOptions & { runtime?: boolean } = {}): Promise<void> {
    checkUnitName(unit);
    const body = props.map((p) => [p.name, [p.signature, p.value]]);
    await this.bus.call(this.manager("SetUnitProperties", unit, "sba(sv)", [unit, opts.runtime ?? true, body]), opts.timeoutMs ?? DEFAULT_CALL_MS);
  }

  async setSliceProperties(unit: string, props: Readonly<Record<string, string>>, opts: CallOptions = {}): Promise<void> {
    return this.setUnitProperties(unit, encodeProperties(props), opts);
  }

  startUnit(unit: string, opts: JobOptions = {}): Promise<JobDone> {
    checkUnitName(unit);
    return this.runJob("StartUnit", unit, "ss", [unit, opts.mode ?? "replace"], opts.timeoutMs ?? DEFAULT_UNIT_JOB_MS);
  }

  enqueueStart(unit: string, opts: JobOptions = {}): Promise<JobQueued> {
    return this.enqueue("StartUnit", unit, opts);
  }

  enqueueStop(unit: string, opts: JobOptions = {}): Promise<JobQueued> {
    return this.enqueue("StopUnit", unit, opts);
  }

  /** A job asked for and left to systemd: the reply says it is queued, nobody waits for its end. */
  private async enqueue(method: "StartUnit" | "StopUnit", unit: string, opts: JobOptions): Promise<JobQueued> {
    checkUnitName(unit);
    const [job] = await this.bus.call(this.manager(method, unit, "ss", [unit, opts.mode ?? "replace"]), opts.timeoutMs ?? DEFAULT_CALL_MS);
    if (typeof job !== "string") throw new BadBusReplyError(method, unit, "no job path");
    return { job, unit };
  }

  stopUnit(unit: string, opts: JobOptions = {}): Promise<JobDone> {
    checkUnitName(unit);
    return this.runJob("StopUnit", unit, "ss", [unit, opts.mode ?? "replace"], opts.timeoutMs ?? DEFAULT_UNIT_JOB_MS);
  }

  async resetFailedUnit(unit: string, opts: CallOptions = {}): Promise<void> {
    checkUnitName(unit);
    await this.bus.call(this.manager("ResetFailedUnit", unit, "s", [unit]), opts.timeoutMs ?? DEFAULT_CALL_MS);
  }

  async killUnit(unit: string, signal: number, opts: CallOptions & { who?: KillWho } = {}): Promise<void> {
    checkUnitName(unit);
    if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new TypeError(`${signal} is not a signal number`);
    await this.bus.call(this.manager("KillUnit", unit, "ssi", [unit, opts.who ?? "all", signal]), opts.timeoutMs ?? DEFAULT_CALL_MS);
  }

  /** LoadUnit (never starts anything) then GetAll on one interface of the unit's object. */
  private async getAll(unit: string, iface: string, budget: Budget): Promise<Record<string, unknown>> {
    const [path] = await this.bus.call(this.manager("LoadUnit", unit, "s", [unit]), budget.left());
    if (typeof path !== "string") throw new BadBusReplyError("LoadUnit", unit, "no object path");
    const [all] = await this.bus.call(
      { destination: SYSTEMD.destination, path, interface: PROPERTIES, member: "GetAll", signature: "s", body: [iface], unit },
      budget.left(),
    );
    if (typeof all !== "object" || all === null || Array.isArray(all)) throw new BadBusReplyError("GetAll", unit, "not a property dictionary");
    return all as Record<string, unknown>;
  }

  async unitState(unit: string, opts: CallOptions = {}): Promise<UnitState> {
    checkUnitName(unit);
    const budget = new Budget(opts.timeoutMs ?? DEFAULT_CALL_MS, "Get", unit);
    return budget.run(async () => {
      const [path] = await this.bus.call(this.manager("LoadUnit", unit, "s", [unit]), budget.left());
      if (typeof path !== "string") throw new BadBusReplyError("LoadUnit", unit, "no object path");
      // Three Gets at once, not GetAll: a unit's GetAll is a hundred properties to unmarshal,
      // which cost the prolog milliseconds for the three it needs.
      const str = async (k: string): Promise<string> => {
        const [v] = await this.bus.call(
          { destination: SYSTEMD.destination, path, interface: PROPERTIES, member: "Get", signature: "ss", body: ["org.freedesktop.systemd1.Unit", k], unit },
          budget.left(),
        );
        if (typeof v !== "string") throw new BadBusReplyError("Get", unit, `${k} is not a string`);
        return v;
      };
      const [loadState, activeState, subState] = await Promise.all([str("LoadState"), str("ActiveState"), str("SubState")]);
      return { loadState, activeState, subState };
    });
  }

  /** One Unit property on the unit's object path (systemd loads the unit if it must). */
  private async unitProperty(unit: string, name: string, opts: CallOptions): Promise<unknown> {
    checkUnitName(unit);
    const [v] = await this.bus.call(
      { destination: SYSTEMD.destination, path: unitPath(unit), interface: PROPERTIES, member: "Get", signature: "ss", body: ["org.freedesktop.systemd1.Unit", name], unit },
      opts.timeoutMs ?? DEFAULT_CALL_MS,
    );
    return v;
  }

  async unitActiveState(unit: string, opts: CallOptions = {}): Promise<string> {
    const v = await this.unitProperty(unit, "ActiveState", opts);
    if (typeof v !== "string") throw new BadBusReplyError("Get", unit, "ActiveState is not a string");
    return v;
  }

  async unitProgress(unit: string, opts: CallOptions = {}): Promise<UnitProgress> {
    const budget = new Budget(opts.timeoutMs ?? DEFAULT_CALL_MS, "Get", unit);
    return budget.run(async () => {
      // As unitStatus reads them: Job first (systemd answers in the order asked), its type last; a job
      // gone by then ended in between, and the state read before its end is read again.
      for (let attempt = 1; ; attempt++) {
        const [job, activeState] = await Promise.all([this.unitProperty(unit, "Job", { timeoutMs: budget.left() }), this.unitProperty(unit, "ActiveState", { timeoutMs: budget.left() })]);
        if (typeof activeState !== "string") throw new BadBusReplyError("Get", unit, "ActiveState is not a string");
        // Job is (id, path), id 0 when none is queued.
        if (!Array.isArray(job) || typeof job[0] !== "number" || typeof job[1] !== "string") throw new BadBusReplyError("Get", unit, "Job is not (id, path)");
        if (job[0] === 0) return { activeState };
        const type = await this.jobTypeAt(unit, job[1], budget);
        if (type !== undefined) return { activeState, job: type };
        if (attempt >= UNIT_STATUS_READS) throw new BadBusReplyError("Get", unit, `its job ended before its type could be read, ${attempt} times`);
      }
    });
  }

  /**
   * The JobType of the job at `path`, or undefined when the job is gone: it ended since its unit's
   * Job was read, and systemd has freed its object. unitProgress and unitStatus read the unit's
   * state in between, so a job still there now was there when the state was read.
   */
  private async jobTypeAt(unit: string, path: string, budget: Budget): Promise<string | undefined> {
    let type: unknown;
    try {
      [type] = await this.bus.call(
        { destination: SYSTEMD.destination, path, interface: PROPERTIES, member: "Get", signature: "ss", body: ["org.freedesktop.systemd1.Job", "JobType"], unit },
        budget.left(),
      );
    } catch (e) {
      if (e instanceof DBusCallError && e.dbusName === UNKNOWN_OBJECT) return undefined;
      throw e;
    }
    if (typeof type !== "string") throw new BadBusReplyError("Get", unit, "JobType is not a string");
    return type;
  }

  async sliceUnits(slice: string, opts: CallOptions = {}): Promise<string[]> {
    checkUnitName(slice, ".slice");
    const v = await this.unitProperty(slice, "SliceOf", opts);
    if (!Array.isArray(v) || !v.every((u) => typeof u === "string")) throw new BadBusReplyError("Get", slice, "SliceOf is not a list of names");
    return v as string[];
  }

  async unitStatus(unit: string, opts: CallOptions = {}): Promise<UnitStatus | undefined> {
    checkUnitName(unit);
    const budget = new Budget(opts.timeoutMs ?? DEFAULT_CALL_MS, "GetUnit", unit);
    return budget.run(async () => {
      let path: unknown;
      try {
        [path] = await this.bus.call(this.manager("GetUnit", unit, "s", [unit]), budget.left());
      } catch (e) {
        // GetUnit answers NoSuchUnit for a unit systemd does not hold ("not loaded"), and never loads it.
        if (e instanceof DBusCallError && e.dbusName === NO_SUCH_UNIT) return undefined;
        throw e;
      }
      if (typeof path !== "string") throw new BadBusReplyError("GetUnit", unit, "no object path");
      const get = async (k: string): Promise<unknown> => {
        try {
          const [v] = await this.bus.call(
            { destination: SYSTEMD.destination, path, interface: PROPERTIES, member: "Get", signature: "ss", body: ["org.freedesktop.systemd1.Unit", k], unit },
            budget.left(),
          );
          return v;
        } catch (e) {
          // Freed between GetUnit and Get: it is not held any more.
          if (e instanceof DBusCallError && e.dbusName === UNKNOWN_OBJECT) return undefined;
          throw e;
        }
      };
      // The Gets are separate calls, and systemd may finish a job between two of them: a slice read
      // "active" just before its stop job ends and "no job" just after would look like a slice still
      // up that nobody stops. So Job is read first and its type last: no job at first means the states
      // were read after any job's end; a job still there when its type is read was there when the
      // states were read. A job gone by then ended in between: the status is read again.
      for (let attempt = 1; ; attempt++) {
        const [job, activeState, needDaemonReload] = await Promise.all([get("Job"), get("ActiveState"), get("NeedDaemonReload")]);
        if (activeState === undefined && needDaemonReload === undefined) return undefined;
        if (typeof activeState !== "string") throw new BadBusReplyError("Get", unit, "ActiveState is not a string");
        if (typeof needDaemonReload !== "boolean") throw new BadBusReplyError("Get", unit, "NeedDaemonReload is not a boolean");
        const status: UnitStatus = { activeState, needDaemonReload };
        // Job is (id, path), id 0 when none is queued.
        if (Array.isArray(job) && typeof job[0] === "number" && job[0] !== 0 && typeof job[1] === "string") {
          const type = await this.jobTypeAt(unit, job[1], budget);
          if (type !== undefined) status.job = type;
          else if (attempt < UNIT_STATUS_READS) continue;
        }
        return status;
      }
    });
  }

  async unitProperties(unit: string, opts: CallOptions & { names?: readonly string[] } = {}): Promise<Record<string, string>> {
    checkUnitName(unit);
    const budget = new Budget(opts.timeoutMs ?? DEFAULT_CALL_MS, "GetAll", unit);
    return budget.run(async () => {
      if (!opts.names) return decodeProperties(await this.getAll(unit, typeInterface(unit), budget));
      // A few names: one Get each, all at once; a GetAll is a hundred properties to unmarshal.
      const iface = typeInterface(unit);
      const values = await Promise.all(
        opts.names.map(async (name) => {
          const [v] = await this.bus.call(
            { destination: SYSTEMD.destination, path: unitPath(unit), interface: PROPERTIES, member: "Get", signature: "ss", body: [iface, name], unit },
            budget.left(),
          );
          return [name, v] as const;
        }),
      );
      return decodeProperties(Object.fromEntries(values));
    });
  }

  async revertUnit(unit: string, opts: CallOptions = {}): Promise<void> {
    checkUnitName(unit);
    const budget = new Budget(opts.timeoutMs ?? DEFAULT_RELOAD_MS, "RevertUnitFiles", unit);
    return budget.run(async () => {
      await this.bus.call(this.manager("RevertUnitFiles", unit, "as", [[unit]]), budget.left());
      // The drop-ins are gone from disk; systemd forgets the properties only when it reloads.
      await this.bus.call(this.manager("Reload", unit), budget.left());
    });
  }

  async reload(opts: CallOptions = {}): Promise<void> {
    await this.bus.call(this.manager("Reload", undefined), opts.timeoutMs ?? DEFAULT_RELOAD_MS);
  }

  runtimeDropins(unit: string, properties?: readonly string[]): string[] {
    checkUnitName(unit);
    return runtimeDropins(unit, properties);
  }

  removeRuntimeDropins(unit: string, properties: readonly string[]): string[] {
    checkUnitName(unit);
    return removeRuntimeDropins(unit, properties);
  }

  busTime(): BusTime {
    return this.bus.busTime();
  }

  async version(opts: CallOptions = {}): Promise<string> {
    const [v] = await this.bus.call(
      { ...SYSTEMD, interface: PROPERTIES, member: "Get", signature: "ss", body: [SYSTEMD.interface, "Version"] },
      opts.timeoutMs ?? DEFAULT_CALL_MS,
    );
    if (typeof v !== "string") throw new BadBusReplyError("Get Version", undefined, "not a string");
    return v;
  }

  async linger(user: LingerUser): Promise<Linger> {
    return lingerEnabled(user);
  }

  close(): Promise<void> {
    return this.bus.close();
  }
}
