// The Systemd interface for --dry-run: prints each call that would change systemd's state, changes nothing.

import type { BusTime } from "./bus";
import { runtimeDropins } from "./dropins";
import { lingerEnabled } from "./logind";
import { encodeProperties, formatProperty } from "./properties";
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
import { constants } from "node:os";

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * Records every mutating call as one line, `UNIT METHOD [PROPERTIES...]`, and hands it to `print`.
 * Reads (state, properties) go to `reads`, a real client, when given: a dry run still looks at
 * the node; without one, units read as an idle node's (not loaded, inactive, no properties).
 * Linger is its file, either way.
 */
export class DryRunSystemd implements Systemd {
  readonly lines: string[] = [];

  constructor(
    private readonly print: (line: string) => void = () => {},
    private readonly reads?: Systemd,
  ) {}

  private record(unit: string, method: string, ...args: string[]): void {
    const line = [unit, method, ...args].join(" ");
    this.lines.push(line);
    this.print(line);
  }

  private done(unit: string): JobDone {
    return { job: "(dry-run)", unit, ms: 0 };
  }

  async startScope(req: ScopeRequest): Promise<JobDone> {
    const desc = req.description ? [`Description=${JSON.stringify(req.description)}`] : [];
    this.record(req.name, "StartTransientUnit", "mode=fail", ...desc, `Slice=${req.slice}`, `PIDs=${req.pids.join(",")}`);
    return this.done(req.name);
  }

  async setUnitProperties(unit: string, props: readonly UnitProperty[], opts: CallOptions & { runtime?: boolean } = {}): Promise<void> {
    this.record(unit, "SetUnitProperties", `runtime=${opts.runtime ?? true}`, ...props.map(formatProperty));
  }

  async setSliceProperties(unit: string, props: Readonly<Record<string, string>>, opts: CallOptions = {}): Promise<void> {
    return this.setUnitProperties(unit, encodeProperties(props), opts);
  }

  async startUnit(unit: string, opts: JobOptions = {}): Promise<JobDone> {
    this.record(unit, "StartUnit", `mode=${opts.mode ?? "replace"}`);
    return this.done(unit);
  }

  async enqueueStart(unit: string, opts: JobOptions = {}): Promise<JobQueued> {
    this.record(unit, "StartUnit", `mode=${opts.mode ?? "replace"}`);
    return { job: "(dry-run)", unit };
  }

  async stopUnit(unit: string, opts: JobOptions = {}): Promise<JobDone> {
    this.record(unit, "StopUnit", `mode=${opts.mode ?? "replace"}`);
    return this.done(unit);
  }

  async enqueueStop(unit: string, opts: JobOptions = {}): Promise<JobQueued> {
    this.record(unit, "StopUnit", `mode=${opts.mode ?? "replace"}`);
    return { job: "(dry-run)", unit };
  }

  async resetFailedUnit(unit: string): Promise<void> {
    this.record(unit, "ResetFailedUnit");
  }

  async killUnit(unit: string, signal: number, opts: CallOptions & { who?: KillWho } = {}): Promise<void> {
    this.record(unit, "KillUnit", `who=${opts.who ?? "all"}`, `signal=${SIGNAL_NAMES.get(signal) ?? signal}`);
  }

  async revertUnit(unit: string): Promise<void> {
    this.record(unit, "RevertUnitFiles", "reload=yes");
  }

  async reload(): Promise<void> {
    this.record("systemd", "Reload");
  }

  runtimeDropins(unit: string, properties?: readonly string[]): string[] {
    return runtimeDropins(unit, properties);
  }

  removeRuntimeDropins(unit: string, properties: readonly string[]): string[] {
    const files = runtimeDropins(unit, properties);
    if (files.length > 0) this.record(unit, "remove-drop-ins", ...files);
    return files;
  }

  busTime(): BusTime {
    return this.reads?.busTime() ?? { calls: 0, waitedMs: 0, connectMs: 0 };
  }

  unitActiveState(unit: string, opts?: CallOptions): Promise<string> {
    return this.reads ? this.reads.unitActiveState(unit, opts) : Promise.resolve("inactive");
  }

  unitProgress(unit: string, opts?: CallOptions): Promise<UnitProgress> {
    return this.reads ? this.reads.unitProgress(unit, opts) : Promise.resolve({ activeState: "inactive" });
  }

  sliceUnits(slice: string, opts?: CallOptions): Promise<string[]> {
    return this.reads ? this.reads.sliceUnits(slice, opts) : Promise.resolve([]);
  }

  unitStatus(unit: string, opts?: CallOptions): Promise<UnitStatus | undefined> {
    if (this.reads) return this.reads.unitStatus(unit, opts);
    return Promise.resolve(undefined);
  }

  unitState(unit: string, opts?: CallOptions): Promise<UnitState> {
    if (this.reads) return this.reads.unitState(unit, opts);
    return Promise.resolve({ loadState: "loaded", activeState: "inactive", subState: "dead" });
  }

  unitProperties(unit: string, opts?: CallOptions & { names?: readonly string[] }): Promise<Record<string, string>> {
    return this.reads ? this.reads.unitProperties(unit, opts) : Promise.resolve({});
  }

  version(opts?: CallOptions): Promise<string> {
    return this.reads ? this.reads.version(opts) : Promise.reject(new Error("dry run without systemd: its version is unknown"));
  }

  async linger(user: LingerUser): Promise<Linger> {
    return lingerEnabled(user);
  }

  async close(): Promise<void> {
    await this.reads?.close();
  }
}
