// The systemd client's interface and value types, kept apart from bus.ts so that importing them
// (commands, the dry-run client) never loads dbus-native.

import type { BusTime } from "./bus";

/** A unit property as sent in SetUnitProperties / StartTransientUnit: a name and a typed variant. */
export type UnitProperty = { name: string; /** as systemctl set-property would spell it */ text: string } & (
  | { signature: "ay"; value: Uint8Array }
  | { signature: "s"; value: string }
  | { signature: "a(ss)"; value: [string, string][] }
  | { signature: "t"; value: bigint }
  | { signature: "u"; value: number }
  | { signature: "b"; value: boolean }
  | { signature: "au"; value: number[] }
);

export interface CallOptions {
  /** Deadline for this call, ms. */
  timeoutMs?: number;
}

export interface JobOptions extends CallOptions {
  /** StartUnit/StopUnit mode; default "replace" */
  mode?: "replace" | "fail" | "isolate" | "ignore-dependencies" | "ignore-requirements";
}

/** A job systemd reported finished with result "done". */
export interface JobDone {
  job: string;
  unit: string;
  /** milliseconds from the call to the JobRemoved signal */
  ms: number;
}

/** A job systemd accepted and queued; nobody waits for it to finish. */
export interface JobQueued {
  job: string;
  unit: string;
}

export interface ScopeRequest {
  /** e.g. flux-pam-61.scope */
  name: string;
  /** e.g. user-1000.slice */
  slice: string;
  pids: readonly number[];
  description?: string;
}

export interface UnitState {
  /** loaded, not-found, masked, ... */
  loadState: string;
  /** active, inactive, failed, activating, deactivating, ... */
  activeState: string;
  subState: string;
}

/** A unit as systemd holds it in memory now, read without loading it. */
export interface UnitStatus {
  /** active, inactive, failed, activating, deactivating, ... */
  activeState: string;
  /** systemd's files for the unit differ from what it loaded (systemctl daemon-reload would change it) */
  needDaemonReload: boolean;
  /** the type of the job queued for the unit (start, stop, ...), if any */
  job?: string;
}

/** Where a unit is on its way: its state, and the type of the job systemd has queued or running for it. */
export interface UnitProgress {
  activeState: string;
  /** start, stop, ...; undefined when no job is queued (or it ended while it was read) */
  job?: string;
}

export type KillWho = "all" | "main" | "control";

export interface LingerUser {
  name: string;
  uid: number;
}

export interface Linger {
  enabled: boolean;
  /** what answered: the file under /var/lib/systemd/linger (logind's User.Linger is that file) */
  source: "file";
}

/**
 * What prolog, housekeeping, session-open and check-user need from systemd. The real client
 * (manager.ts) talks D-Bus; the dry-run client (dry-run.ts) prints the mutating calls instead.
 */
export interface Systemd {
  /**
   * StartTransientUnit of a scope holding `pids` in `slice`, mode "fail". Resolves only once
   * systemd reports the start job done, so the pids are in the scope when it returns.
   */
  startScope(req: ScopeRequest, opts?: CallOptions): Promise<JobDone>;
  /** SetUnitProperties, runtime (under /run/systemd/system.control) unless runtime is false. */
  setUnitProperties(unit: string, props: readonly UnitProperty[], opts?: CallOptions & { runtime?: boolean }): Promise<void>;
  /**
   * The mapper's {property: string} encoded (properties.ts: typed, DeviceAllow reset first,
   * unknown names refused with PropertyError), then SetUnitProperties runtime=true.
   */
  setSliceProperties(unit: string, props: Readonly<Record<string, string>>, opts?: CallOptions): Promise<void>;
  /** StartUnit, waiting for the job to finish. */
  startUnit(unit: string, opts?: JobOptions): Promise<JobDone>;
  /** StartUnit, not waiting: resolves once systemd has queued the job. */
  enqueueStart(unit: string, opts?: JobOptions): Promise<JobQueued>;
  /** StopUnit, waiting for the job to finish. */
  stopUnit(unit: string, opts?: JobOptions): Promise<JobDone>;
  /** StopUnit, not waiting: resolves once systemd has queued the job. */
  enqueueStop(unit: string, opts?: JobOptions): Promise<JobQueued>;
  /** ResetFailedUnit: forget a failed unit's failure (so that systemd may free it). */
  resetFailedUnit(unit: string, opts?: CallOptions): Promise<void>;
  /** KillUnit: send `signal` to the unit's processes (who: default "all"). */
  killUnit(unit: string, signal: number, opts?: CallOptions & { who?: KillWho }): Promise<void>;
  /** LoadState / ActiveState / SubState of a unit (loading it if needed; never starts it). */
  unitState(unit: string, opts?: CallOptions): Promise<UnitState>;
  /** A unit's ActiveState in one call (its object path: systemd loads the unit if needed, never starts it). */
  unitActiveState(unit: string, opts?: CallOptions): Promise<string>;
  /** A unit's ActiveState and its job's type, if one is queued (by its object path, as unitActiveState). */
  unitProgress(unit: string, opts?: CallOptions): Promise<UnitProgress>;
  /** The units in a slice (its SliceOf: failed ones included), by its object path. */
  sliceUnits(slice: string, opts?: CallOptions): Promise<string[]>;
  /** The unit as systemd holds it (GetUnit: never loads it); undefined when systemd does not hold it. */
  unitStatus(unit: string, opts?: CallOptions): Promise<UnitStatus | undefined>;
  /** The resource properties now in force on a unit, spelled as the mapper spells them (only `names`, D-Bus names, when given). */
  unitProperties(unit: string, opts?: CallOptions & { names?: readonly string[] }): Promise<Record<string, string>>;
  /** What `systemctl revert UNIT` does: RevertUnitFiles, then Reload. */
  revertUnit(unit: string, opts?: CallOptions): Promise<void>;
  /** Manager.Reload (systemctl daemon-reload): node-wide, re-reads every unit. */
  reload(opts?: CallOptions): Promise<void>;
  /** The drop-ins SetUnitProperties(runtime) left for the unit under /run/systemd/system.control (paths), of these properties only when given. */
  runtimeDropins(unit: string, properties?: readonly string[]): string[];
  /** Removes the drop-ins of these properties (and their directory once empty); returns what it removed. */
  removeRuntimeDropins(unit: string, properties: readonly string[]): string[];
  /** What this client spent waiting on systemd so far (for debug lines and bench/hooks.ts). */
  busTime(): BusTime;
  /** The manager's Version property, e.g. "252.30-1~deb12u1" or "239 (239-78.el8)". */
  version(opts?: CallOptions): Promise<string>;
  /** Is linger on for this user? The linger file, as logind reads it (logind.ts). */
  linger(user: LingerUser): Promise<Linger>;
  close(): Promise<void>;
}
