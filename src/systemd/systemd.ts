// The systemd client's front door for commands: open the real client or the dry-run one.

import { writeText } from "../node/libc";
import type { ConnectOptions } from "./bus";
import { SystemdClient } from "./manager";
import type { Systemd } from "./types";

export type { CallOptions, JobDone, JobOptions, KillWho, Linger, LingerUser, ScopeRequest, Systemd, UnitProperty, UnitState } from "./types";

export interface OpenOptions extends ConnectOptions {
  /** where --dry-run lines go; default stdout */
  print?: (line: string) => void;
}

/**
 * The real client on the system bus, or with `dryRun` one that prints each call that would change
 * systemd (`UNIT METHOD PROPERTIES...`) and changes nothing. A dry run still reads the node
 * (unit state, slice properties) through the bus when it can reach it, and linger from its file.
 */
export async function openSystemd(dryRun: boolean, opts: OpenOptions = {}): Promise<Systemd> {
  if (!dryRun) return SystemdClient.connect(opts);
  // Loaded only for a dry run: it brings node:os, a millisecond and a MiB every hook would pay.
  const { DryRunSystemd } = await import("./dry-run");
  const print = opts.print ?? ((line: string) => writeText(1, `${line}\n`));
  let reads: Systemd | undefined;
  try {
    reads = await SystemdClient.connect({ ...opts, timeoutMs: opts.timeoutMs ?? 2000 });
  } catch (e) {
    // A dry run must work on a machine without a bus; it says so instead of failing.
    writeText(2, `flux-pam: dry run without systemd (${(e as Error).message}): reads answer as an idle node\n`);
  }
  return new DryRunSystemd(print, reads);
}
