// A connection to the system bus through dbus-native: connect and call with a deadline, typed errors, signals.

import type { Message, MessageBus } from "dbus-native";
import { BadBusReplyError, BusClosedError, BusUnavailableError, DBusCallError, DBusTimeoutError } from "./errors";

export const DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket";
export const DEFAULT_CALL_MS = 10_000;
const DEFAULT_CONNECT_MS = 5_000;

const SIGNAL = 4;

/** The system bus address: DBUS_SYSTEM_BUS_ADDRESS when set, as libdbus and sd-bus read it. */
export function systemBusAddress(env: Record<string, string | undefined> = process.env): string {
  const a = env.DBUS_SYSTEM_BUS_ADDRESS;
  return a && a.trim() !== "" ? a : DEFAULT_SYSTEM_BUS;
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

interface RawError {
  name?: string;
  code?: string;
  dbusName?: string;
  message?: string;
}

export class SystemBus {
  private readonly signalHandlers = new Set<(s: Signal) => void>();
  private readonly closeHandlers = new Set<(cause: Error) => void>();
  private closed: Error | undefined;

  private constructor(
    private readonly bus: MessageBus,
    readonly address: string,
    /** our unique name on the bus, from Hello */
    readonly uniqueName: string,
  ) {
    bus.connection.on("message", (m: Message) => {
      if (m.type !== SIGNAL || !m.sender || !m.path || !m.interface || !m.member) return;
      const s: Signal = { sender: m.sender, path: m.path, interface: m.interface, member: m.member, body: m.body ?? [] };
      for (const h of this.signalHandlers) h(s);
    });
    bus.connection.on("close", (cause?: Error) => {
      this.closed ??= cause ?? new Error("closed by the peer");
      for (const h of this.closeHandlers) h(this.closed);
    });
  }

  /**
   * Connects, authenticates (EXTERNAL, our uid) and says Hello, all within the deadline.
   * dbus-native is loaded here, on first use, so commands that never reach systemd never pay for it.
   */
  static async connect(opts: ConnectOptions = {}): Promise<SystemBus> {
    const address = opts.address ?? systemBusAddress();
    const ms = opts.timeoutMs ?? DEFAULT_CONNECT_MS;
    const dbus = await import("dbus-native");
    let bus: MessageBus;
    try {
      bus = dbus.createClient({
        busAddress: address,
        // Only EXTERNAL: the system bus offers nothing else on a unix socket, and the cookie
        // mechanism would read ~/.dbus-keyrings of whoever we run as.
        authMethods: ["EXTERNAL"],
        // We pass no file descriptors; the fd-capable transport would start a reader thread.
        fdTransport: false,
        // We say Hello ourselves, under our deadline: the library's own Hello throws an
        // uncaught exception if it fails, and waits 25 s for an answer.
        direct: true,
        // Every call gets its own deadline from us.
        timeout: 0,
      });
    } catch (e) {
      throw new BusUnavailableError(address, (e as Error).message);
    }
    return new Promise<SystemBus>((resolve, reject) => {
      let settled = false;
      const settle = (e: Error | undefined, name?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e || name === undefined) {
          bus.connection.stream?.destroy();
          reject(e);
          return;
        }
        bus.name = name;
        resolve(new SystemBus(bus, address, name));
      };
      // A socket that accepts and never speaks would otherwise hold us in the handshake forever.
      const timer = setTimeout(() => settle(new DBusTimeoutError(`connect to ${address}`, undefined, ms)), ms);
      // Without an 'error' listener a refused connection would crash the process.
      bus.connection.on("error", (e: Error) => settle(new BusUnavailableError(address, e.message)));
      bus.connection.on("close", () => settle(new BusUnavailableError(address, "the bus closed the connection")));
      bus.invokeDbus({ member: "Hello" }, { timeout: 0 }, (err, name: unknown) => {
        if (err) settle(new BusUnavailableError(address, `Hello: ${err.message}`));
        else if (typeof name !== "string") settle(new BusUnavailableError(address, "Hello returned no name"));
        else settle(undefined, name);
      });
    });
  }

  /** Calls a method and resolves with the reply's arguments; rejects with a typed error naming `unit`. */
  call(c: MethodCall, timeoutMs = DEFAULT_CALL_MS): Promise<unknown[]> {
    const msg: Message = { destination: c.destination, path: c.path, interface: c.interface, member: c.member };
    if (c.signature) {
      msg.signature = c.signature;
      msg.body = c.body ?? [];
    }
    return new Promise<unknown[]>((resolve, reject) => {
      if (this.closed) return reject(new BusClosedError(c.member, c.unit, this.closed.message));
      this.bus.invoke(msg, { timeout: timeoutMs }, (err, ...values: unknown[]) => {
        if (err) reject(toCallError(err as RawError, c, timeoutMs));
        else resolve(values);
      });
    });
  }

  /** Asks the bus to route signals matching `rule` to us. */
  async addMatch(rule: string, timeoutMs = DEFAULT_CALL_MS): Promise<void> {
    await this.call(
      { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "AddMatch", signature: "s", body: [rule] },
      timeoutMs,
    );
  }

  /** The unique name that owns a well-known name now (GetNameOwner). */
  async nameOwner(name: string, timeoutMs = DEFAULT_CALL_MS): Promise<string> {
    const [owner] = await this.call(
      { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetNameOwner", signature: "s", body: [name] },
      timeoutMs,
    );
    if (typeof owner !== "string") throw new BadBusReplyError("GetNameOwner", name, "no owner name");
    return owner;
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

  /**
   * Ends the connection at once. Every call we made has been answered by now, and D-Bus needs no
   * goodbye: the daemon drops a vanished peer. (Waiting for dbus-native's graceful close kept every
   * hook alive for a second after its work was done.)
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = new Error("closed by flux-pam");
    this.bus.connection.stream?.destroy();
  }
}

function toCallError(err: RawError, c: MethodCall, timeoutMs: number): Error {
  if (err.code === "ETIMEDOUT") return new DBusTimeoutError(c.member, c.unit, timeoutMs);
  if (err.code === "ECONNCLOSED") return new BusClosedError(c.member, c.unit, err.message ?? "closed");
  if (err.dbusName) return new DBusCallError(c.member, c.unit, err.dbusName, err.message ?? err.dbusName);
  // Not an error reply: the message could not even be marshalled (a bug in the caller).
  return new Error(`${c.member}${c.unit ? ` ${c.unit}` : ""}: cannot send the call: ${err.message ?? String(err)}`);
}
