// What /proc says about a process for an admin's report: command, terminal, start time, and the
// remote host of an SSH login where its environment says so.

import { readFileSync } from "node:fs";

export interface ProcInfo {
  pid: number;
  command: string;
  /** pts/3, tty1, ... when the process has a controlling terminal */
  tty?: string;
  /** ISO 8601 */
  start?: string;
  /** the client address of the SSH connection (SSH_CONNECTION), when the process has one */
  remote?: string;
}

/** USER_HZ: the unit of /proc/PID/stat's times, 100 on every Linux architecture flux runs on. */
const CLOCK_TICKS = 100;
const MAX_COMMAND = 200;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return undefined; // the process is gone, or hides its details: report what there is
  }
}

let bootTime: number | undefined;
function btime(): number | undefined {
  if (bootTime === undefined) {
    const m = /^btime (\d+)$/m.exec(read("/proc/stat") ?? "");
    if (m) bootTime = Number(m[1]);
  }
  return bootTime;
}

/** The tty name of a tty_nr (major/minor packed as the kernel's new_encode_dev). */
export function ttyName(ttyNr: number): string | undefined {
  if (ttyNr === 0) return undefined;
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4 && minor < 64) return `tty${minor}`;
  if (major === 4) return `ttyS${minor - 64}`;
  return `tty(${major},${minor})`;
}

/** Printable, one line, bounded: a command line is whatever its process wrote there. */
function printable(s: string): string {
  // biome-ignore lint: control characters are exactly what is replaced
  const t = s.replace(/[\x00-\x1f\x7f-\xff]/g, "?");
  return t.length > MAX_COMMAND ? `${t.slice(0, MAX_COMMAND - 3)}...` : t;
}

export function procInfo(pid: number): ProcInfo {
  const info: ProcInfo = { pid, command: "?" };
  const cmdline = read(`/proc/${pid}/cmdline`);
  const stat = read(`/proc/${pid}/stat`);
  if (cmdline) info.command = printable(cmdline.replace(/\0+$/, "").replaceAll("\0", " "));
  if (stat) {
    // pid (comm) state ppid pgrp session tty_nr ... starttime is field 22
    const close = stat.lastIndexOf(")");
    if (!cmdline) info.command = printable(`[${stat.slice(stat.indexOf("(") + 1, close)}]`);
    const f = stat.slice(close + 2).split(" ");
    const tty = ttyName(Number(f[4]));
    if (tty) info.tty = tty;
    const boot = btime();
    const start = Number(f[19]);
    if (boot !== undefined && Number.isFinite(start)) info.start = new Date((boot + start / CLOCK_TICKS) * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  }
  const m = /(?:^|\0)SSH_CONNECTION=([0-9A-Fa-f.:]{1,64}) /.exec(read(`/proc/${pid}/environ`) ?? "");
  if (m) info.remote = m[1]!;
  return info;
}
