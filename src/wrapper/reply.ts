// The reply protocol between flux-pam and pam_flux.so (documented in pam/PROTOCOL.md).
//
// pam_flux.so opens a pipe and names its write end in FLUX_PAM_REPLY_FD. The helper writes
// lines "KEYWORD ARGS\n"; the wrapper reads them after the helper exits:
//   result owner|guest|deny|user-unknown|success|ignore|session-error
//   say error|info TEXT          a message for the user (PAM conversation)
//   log err|warning|notice|info|debug TEXT   a line for pam_syslog
//   env NAME=VALUE               a PAM environment variable (session only)
// Without FLUX_PAM_REPLY_FD, messages go to stdout; logs go to syslog (authpriv) under pam_exec
// (PAM_TYPE set: pam_exec's `stdout` option shows stderr to the user too), else to stderr.

import { writeAll, writeText } from "../node/libc";
import { syslog } from "../node/syslog";

export type AccountResult = "owner" | "guest" | "deny" | "user-unknown";
export type SessionResult = "success" | "ignore" | "session-error";
export type LogPriority = "err" | "warning" | "notice" | "info" | "debug";

export const REPLY_FD_ENV = "FLUX_PAM_REPLY_FD";
/** UTF-8 bytes of TEXT: the wrapper takes lines of at most 1024 bytes, keyword and LF included. */
export const MAX_TEXT_BYTES = 1000;

/** Text safe for one protocol line: no control characters, at most MAX_TEXT_BYTES of UTF-8. */
export function oneLine(text: string): string {
  // biome-ignore lint: control characters are exactly what we strip
  const s = text.replace(/[\x00-\x1f\x7f]/g, "?");
  if (Buffer.byteLength(s) <= MAX_TEXT_BYTES) return s;
  // cut on a code point, so the line stays valid UTF-8
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > MAX_TEXT_BYTES - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}

export class Reply {
  private constructor(
    private readonly fd: number | undefined,
    readonly debug: boolean,
    private readonly tag: string,
    private readonly underPam: boolean,
  ) {}

  /** The reply channel named by the environment, if any. A malformed fd name is an error. */
  static fromEnv(env: Record<string, string | undefined>, tag: string, debug: boolean): Reply {
    const raw = env[REPLY_FD_ENV];
    const underPam = env.PAM_TYPE !== undefined;
    if (raw === undefined) return new Reply(undefined, debug, tag, underPam);
    if (!/^\d{1,4}$/.test(raw) || Number(raw) < 3) throw new Error(`${REPLY_FD_ENV}="${oneLine(raw)}" is not a file descriptor number >= 3`);
    return new Reply(Number(raw), debug, tag, underPam);
  }

  get toWrapper(): boolean {
    return this.fd !== undefined;
  }

  private write(line: string): void {
    if (this.fd === undefined) return;
    writeAll(this.fd, Buffer.from(`${line}\n`));
  }

  /**
   * A line on stdout or stderr (pam_exec's channels), by write(2): Bun builds process.stdout on
   * first use, which costs a fresh process about 14 ms (bench/floor.ts), on every denied login.
   */
  private static print(fd: 1 | 2, line: string): void {
    try {
      writeText(fd, `${line}\n`);
    } catch {
      // the stream is gone: nobody is left to read it, and the exit status still says it
    }
  }

  result(r: AccountResult | SessionResult): void {
    this.write(`result ${r}`);
  }

  /** A message for the person logging in. */
  say(style: "error" | "info", text: string): void {
    if (this.fd !== undefined) this.write(`say ${style} ${oneLine(text)}`);
    else Reply.print(1, oneLine(text));
  }

  log(priority: LogPriority, text: string): void {
    if (priority === "debug" && !this.debug) return;
    if (this.fd !== undefined) this.write(`log ${priority} ${oneLine(text)}`);
    else if (this.underPam) syslog(priority, `${this.tag}: ${oneLine(text)}`);
    else Reply.print(2, `${this.tag}: ${oneLine(text)}`);
  }

  env(name: string, value: string): void {
    this.write(`env ${name}=${oneLine(value)}`);
  }
}
