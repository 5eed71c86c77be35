// A connection to the system bus: a unix socket of Bun's, EXTERNAL authentication, Hello, and
// dbus-native's message marshalling. Calls with a deadline, typed errors, signals.

import type { Socket } from "bun";
import type { Message } from "dbus-native";
import { QueuedWriter } from "../flux/writer";
import { BusClosedError, BusUnavailableError, DBusCallError, DBusTimeoutError } from "./errors";

export const DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket";
export const DEFAULT_CALL_MS = 10_000;
const DEFAULT_CONNECT_MS = 5_000;

const METHOD_CALL = 1;
const METHOD_RETURN = 2;
const ERROR = 3;
const SIGNAL = 4;
/** The D-Bus specification's limit on one message. */
const MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
/** An authentication line longer than this is not one: the peer is not a bus. */
const MAX_AUTH_LINE = 16 * 1024;

const DBUS = { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus" };

/** The system bus address: DBUS_SYSTEM_BUS_ADDRESS when set, as libdbus and sd-bus read it. */
export function systemBusAddress(env: Record<string, string | undefined> = process.env): string {
  const a = env.DBUS_SYSTEM_BUS_ADDRESS;
  return a && a.trim() !== "" ? a : DEFAULT_SYSTEM_BUS;
}

/**
 * The socket path of the first `unix:path=` entry of a D-Bus address (entries separated by ';',
 * values %-escaped). Undefined when the address names no such socket.
 */
export function unixSocketPath(address: string): string | undefined {
  for (const entry of address.split(";")) {
    const colon = entry.indexOf(":");
    if (colon < 0 || entry.slice(0, colon) !== "unix") continue;
    for (const kv of entry.slice(colon + 1).split(",")) {
      const eq = kv.indexOf("=");
      if (eq < 0 || kv.slice(0, eq) !== "path") continue;
      try {
        const path = decodeURIComponent(kv.slice(eq + 1));
        if (path !== "") return path;
      } catch {
        // a malformed %-escape: not an address we can use
      }
    }
  }
  return undefined;
}

export interface MethodCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** the unit the call is about, named in errors */
  unit?: string;
}

export interface Signal {
  /** the unique name of the connection that sent it, stamped by the bus */
  sender: string;
  path: string;
  interface: string;
  member: string;
  body: unknown[];
}

export interface ConnectOptions {
  /** default: systemBusAddress() */
  address?: string;
  /** time for connect, authentication and Hello; default 5 s */
  timeoutMs?: number;
}

/** What a connection spent on the bus, for the hooks' debug line and bench/hooks.ts. */
export interface BusTime {
  /** method calls sent */
  calls: number;
  /** ms during which at least one call (or a job wait, see hold()) was outstanding */
  waitedMs: number;
  /** ms from the socket's connect to Hello's answer */
  connectMs: number;
}

interface Pending {
  method: string;
  unit: string | undefined;
  resolve(reply: Reply): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

type Marshalling = typeof import("dbus-native/lib/message");

/** A method's answer and who sent it (stamped by the bus, so it cannot be forged). */
export interface Reply {
  body: unknown[];
  sender: string | undefined;
}

export class SystemBus {
  private readonly signalHandlers = new Set<(s: Signal) => void>();
  private readonly closeHandlers = new Set<(cause: Error) => void>();
  private readonly pending = new Map<number, Pending>();
  private closed: Error | undefined;
  private serial = 0;
  private buf: Buffer = Buffer.alloc(0);
  private writer!: QueuedWriter;
  private socket!: Socket<undefined>;
  /** false until the bus said OK to our authentication */
  private authenticated = false;
  /** the bus's answer to AUTH, as far as it has come (its line end may come in a later read) */
  private authPart: Buffer = Buffer.alloc(0);
  private onAuthLine: ((line: string) => void) | undefined;
  private outstanding = 0;
  private busySince = 0;
  private readonly time: BusTime = { calls: 0, waitedMs: 0, connectMs: 0 };
  /** our unique name on the bus, from Hello */
  uniqueName = "";

  /** dbus-native's marshalling: loaded while the bus reads our AUTH */
  private codec!: Marshalling;

  private constructor(readonly address: string) {}

  /**
   * Connects, authenticates (EXTERNAL, our uid) and says Hello, all within the deadline. Of
   * dbus-native only its message marshalling is loaded, on first use: its connection layer
   * (node:net, streams, the introspection XML parser) would cost every hook milliseconds and MiB.
   */
  static async connect(opts: ConnectOptions = {}): Promise<SystemBus> {
    const address = opts.address ?? systemBusAddress();
    const ms = opts.timeoutMs ?? DEFAULT_CONNECT_MS;
    const t0 = performance.now();
    const path = unixSocketPath(address);
    if (path === undefined) throw new BusUnavailableError(address, "not a unix:path= address (the only kind flux-pam connects to)");
    const bus = new SystemBus(address);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        bus.open(path),
        new Promise<never>((_, reject) => {
          // A socket that accepts and never speaks would otherwise hold us in the handshake forever.
          timer = setTimeout(() => reject(new DBusTimeoutError(`connect to ${address}`, undefined, ms)), ms);
        }),
      ]);
    } catch (e) {
      bus.shut(e as Error);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    bus.time.connectMs = performance.now() - t0;
    return bus;
  }

  private async open(path: string): Promise<void> {
    const address = this.address;
    try {
      this.socket = await Bun.connect<undefined>({
        unix: path,
        socket: {
          data: (_s, data) => this.onData(data),
          drain: () => this.writer.drain(),
          close: () => this.shut(new Error("closed by the peer")),
          end: () => this.shut(new Error("closed by the peer")),
          error: (_s, err) => this.shut(err),
        },
      });
    } catch (e) {
      throw new BusUnavailableError(address, (e as Error).message);
    }
    this.writer = new QueuedWriter(this.socket);
    // The effective uid: the one the kernel reports to the bus (SO_PEERCRED) and the bus checks the
    // claim against. Under su the real one is the user's, and claiming it would be refused.
    const uid = process.geteuid?.() ?? 0;
    const ok = new Promise<void>((resolve, reject) => {
      const offClose = this.onClose((cause) => reject(new BusUnavailableError(address, `the bus closed the connection (${cause.message})`)));
      this.onAuthLine = (line) => {
        offClose();
        this.onAuthLine = undefined;
        if (line.startsWith("OK ")) resolve();
        // Only EXTERNAL: the system bus offers nothing else on a unix socket, and the cookie
        // mechanism would read ~/.dbus-keyrings of whoever we run as.
        else reject(new BusUnavailableError(address, `the bus refused EXTERNAL authentication as uid ${uid}: ${JSON.stringify(line.slice(0, 200))}`));
      };
    });
    ok.catch(() => {}); // awaited below: a refusal before then is not an unhandled rejection
    // The NUL byte, then the uid as hex-encoded decimal digits.
    this.writer.write(Buffer.from(`\0AUTH EXTERNAL ${Buffer.from(String(uid)).toString("hex")}\r\n`));
    // Needed from Hello on: the milliseconds it takes to load pass while the bus answers AUTH.
    this.codec = await import("dbus-native/lib/message");
    // BEGIN and Hello without waiting for the bus's OK, as sd-bus sends them: the bus reads
    // messages from the byte after BEGIN's line once it has said OK, and a bus that refuses says
    // so before it reads them (its answer is what fails the connect then, not the Hello).
    this.writer.write(Buffer.from("BEGIN\r\n"));
    const hello = this.call({ ...DBUS, member: "Hello" }, DEFAULT_CALL_MS);
    hello.catch(() => {}); // awaited below, after the answer to AUTH
    await ok;
    let name: unknown;
    try {
      [name] = await hello;
    } catch (e) {
      throw new BusUnavailableError(address, `Hello: ${(e as Error).message}`);
    }
    if (typeof name !== "string") throw new BusUnavailableError(address, "Hello returned no name");
    this.uniqueName = name;
  }

  private onData(data: Buffer): void {
    if (this.closed) return;
    let chunk = data;
    if (!this.authenticated) {
      // The bus's answer to our AUTH, a line (its CR and LF may come in two reads).
      const part = this.authPart.length === 0 ? chunk : Buffer.concat([this.authPart, chunk]);
      const nl = part.indexOf("\r\n");
      if (nl < 0) {
        if (part.length > MAX_AUTH_LINE) this.shut(new BusUnavailableError(this.address, "the peer does not speak the D-Bus protocol"));
        else this.authPart = part;
        return;
      }
      this.authPart = Buffer.alloc(0);
      const line = part.toString("latin1", 0, nl);
      chunk = part;
      // The one line the bus says before messages: after an OK, what follows (the answer to our
      // Hello, pipelined behind BEGIN) is messages, whenever it comes; after anything else, the
      // connect fails with that answer.
      this.authenticated = line.startsWith("OK ");
      this.onAuthLine?.(line);
      if (!this.authenticated) return;
      chunk = chunk.subarray(nl + 2);
      if (chunk.length === 0) return;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 16 && !this.closed) {
      const b = this.buf;
      const le = b[0] === 0x6c; // 'l'; 'B' is big-endian
      if (!le && b[0] !== 0x42) return this.shut(new Error("protocol error: bad byte order in a message header"));
      const bodyLength = le ? b.readUInt32LE(4) : b.readUInt32BE(4);
      const fieldsLength = le ? b.readUInt32LE(12) : b.readUInt32BE(12);
      const total = 16 + Math.ceil(fieldsLength / 8) * 8 + bodyLength;
      if (total > MAX_MESSAGE_BYTES) return this.shut(new Error(`protocol error: a message of ${total} bytes`));
      if (b.length < total) return;
      let m: Message;
      try {
        m = this.codec.unmarshall(b.subarray(0, total));
      } catch (e) {
        return this.shut(new Error(`protocol error: ${(e as Error).message}`));
      }
      this.buf = b.subarray(total);
      this.dispatch(m);
    }
  }

  private dispatch(m: Message): void {
    if (m.type === METHOD_RETURN || m.type === ERROR) {
      const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
      if (!p) return;
      this.pending.delete(m.replySerial!);
      clearTimeout(p.timer);
      this.idle();
      if (m.type === METHOD_RETURN) p.resolve({ body: m.body ?? [], sender: m.sender });
      else {
        const text = typeof m.body?.[0] === "string" ? m.body[0] : (m.errorName ?? "error");
        p.reject(new DBusCallError(p.method, p.unit, m.errorName ?? "(no error name)", text));
      }
      return;
    }
    if (m.type !== SIGNAL || !m.sender || !m.path || !m.interface || !m.member) return;
    const s: Signal = { sender: m.sender, path: m.path, interface: m.interface, member: m.member, body: m.body ?? [] };
    for (const h of this.signalHandlers) h(s);
  }

  /** Something of ours is outstanding on the bus from now until the returned release. */
  hold(): () => void {
    if (this.outstanding++ === 0) this.busySince = performance.now();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.idle();
    };
  }

  private idle(): void {
    if (--this.outstanding === 0) this.time.waitedMs += performance.now() - this.busySince;
  }

  /** What this connection spent on the bus so far. */
  busTime(): BusTime {
    const now = this.outstanding > 0 ? performance.now() - this.busySince : 0;
    return { ...this.time, waitedMs: this.time.waitedMs + now };
  }

  /** Calls a method and resolves with the reply's arguments; rejects with a typed error naming `unit`. */
  async call(c: MethodCall, timeoutMs = DEFAULT_CALL_MS): Promise<unknown[]> {
    return (await this.callFrom(c, timeoutMs)).body;
  }

  /** call(), also saying which connection answered. */
  callFrom(c: MethodCall, timeoutMs = DEFAULT_CALL_MS): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      if (this.closed) return reject(new BusClosedError(c.member, c.unit, this.closed.message));
      const serial = ++this.serial;
      const msg: Message = { type: METHOD_CALL, serial, destination: c.destination, path: c.path, interface: c.interface, member: c.member };
      if (c.signature) {
        msg.signature = c.signature;
        msg.body = c.body ?? [];
      }
      let bytes: Buffer;
      try {
        bytes = this.codec.marshall(msg);
      } catch (e) {
        // The message could not even be marshalled (a bug in the caller).
        return reject(new Error(`${c.member}${c.unit ? ` ${c.unit}` : ""}: cannot send the call: ${(e as Error).message}`));
      }
      const timer = setTimeout(() => {
        if (!this.pending.delete(serial)) return;
        this.idle();
        reject(new DBusTimeoutError(c.member, c.unit, timeoutMs));
      }, timeoutMs);
      this.pending.set(serial, { method: c.member, unit: c.unit, resolve, reject, timer });
      this.time.calls++;
      if (this.outstanding++ === 0) this.busySince = performance.now();
      this.writer.write(bytes);
    });
  }

  /** Asks the bus to route signals matching `rule` to us. */
  async addMatch(rule: string, timeoutMs = DEFAULT_CALL_MS): Promise<void> {
    await this.call({ ...DBUS, member: "AddMatch", signature: "s", body: [rule] }, timeoutMs);
  }

  /**
   * Calls `h` for every signal the bus routes to us; returns the unsubscribe. Besides the signals
   * our match rules ask for, any peer may address a signal to us directly: check `sender`.
   */
  onSignal(h: (s: Signal) => void): () => void {
    this.signalHandlers.add(h);
    return () => this.signalHandlers.delete(h);
  }

  /** Calls `h` once if the connection goes away (pending calls fail on their own); returns the unsubscribe. */
  onClose(h: (cause: Error) => void): () => void {
    this.closeHandlers.add(h);
    return () => this.closeHandlers.delete(h);
  }

  /** The connection is gone: every pending call fails with BusClosedError, close handlers run once. */
  private shut(cause: Error): void {
    if (this.closed) return;
    this.closed = cause;
    this.socket?.end();
    for (const [serial, p] of this.pending) {
      this.pending.delete(serial);
      clearTimeout(p.timer);
      this.idle();
      p.reject(new BusClosedError(p.method, p.unit, cause.message));
    }
    for (const h of this.closeHandlers) h(cause);
  }

  /**
   * Ends the connection at once. Every call we made has been answered by now, and D-Bus needs no
   * goodbye: the daemon drops a vanished peer.
   */
  async close(): Promise<void> {
    this.shut(new Error("closed by flux-pam"));
  }
}
