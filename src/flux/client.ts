// A Flux client on a local:// unix socket: handshake, pipelined RPCs matched by matchtag, deadlines.

import type { Socket } from "bun";
import { BadReplyError, BrokerUnavailableError, FluxRpcError, FluxTimeoutError, HandshakeRefusedError } from "./errors";
import { type Json, parseJson, stringifyJson } from "./json";
import { MAX_MESSAGE_BYTES, type Message, MsgType, ProtocolError, StreamReader, encodeRequest, payloadText } from "./message";
import { socketPath } from "./uri";
import { QueuedWriter } from "./writer";
import { firstByte } from "../node/first-byte";
import { unreachable } from "./unreachable";

export interface ConnectOptions {
  /** Total time for connect (with retries) and handshake. */
  timeoutMs?: number;
  /** The largest reply taken; default MAX_MESSAGE_BYTES (16 MiB) */
  maxReplyBytes?: number;
}

interface Pending {
  topic: string;
  resolve(m: Message): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const DEFAULT_CONNECT_MS = 2000;
export const DEFAULT_RPC_MS = 5000;

export class FluxClient {
  private readonly reader: StreamReader;
  private readonly pending = new Map<number, Pending>();
  private nextTag = 1;
  private writer!: QueuedWriter;
  private failure: Error | undefined;
  private socket!: Socket<undefined>;
  /**
   * The broker's one handshake byte. It may arrive before connect() has even returned to us,
   * so it is captured by onData whenever it comes and awaited afterwards.
   */
  private readonly handshake = Promise.withResolvers<number>();
  private handshakeDone = false;

  private constructor(
    readonly uri: string,
    readonly path: string,
    maxReplyBytes: number,
  ) {
    this.reader = new StreamReader(maxReplyBytes);
    this.handshake.promise.catch(() => {}); // awaited in connect(); never an unhandled rejection
  }

  /**
   * Connects to the broker at `uri`, then the broker's one handshake byte decides. Only what can
   * still succeed is retried, with backoff (as libflux does) until the deadline: a socket not yet
   * there in a directory that is (a broker starting binds it there), and a full listen backlog
   * (EAGAIN: a busy broker). Everything else fails at once naming its cause: no such directory, a
   * path that is not a socket, a socket nobody listens on (ECONNREFUSED: left by a broker that is
   * not running; a starting broker removes it before binding its own), a reset or closed connection.
   */
  static async connect(uri: string, opts: ConnectOptions = {}): Promise<FluxClient> {
    const path = socketPath(uri);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_MS;
    const deadline = Date.now() + timeoutMs;
    const client = new FluxClient(uri, path, opts.maxReplyBytes ?? MAX_MESSAGE_BYTES);
    let delay = 16;
    for (;;) {
      try {
        await client.open();
        break;
      } catch (e) {
        // A refusing broker writes its byte and hangs up at once: Bun may then fail the connect
        // itself, after the byte was read. The refusal is the answer, not the failed connect.
        if (client.failure instanceof HandshakeRefusedError) throw client.failure;
        const code = (e as { code?: string }).code;
        if (code !== "ENOENT" && code !== "ECONNREFUSED" && code !== "EAGAIN") {
          // Bun drops the byte of a broker that refuses and hangs up at once: ask again, plainly.
          const byte = firstByte(path, Math.max(Math.min(deadline - Date.now(), 1000), 1));
          if (byte !== undefined && byte !== 0) throw new HandshakeRefusedError(path, byte);
        }
        // Bun fails the connect itself when the peer accepts and hangs up at once (it then reports
        // a reset): that broker answered, with no handshake byte.
        const why =
          code === "ECONNRESET"
            ? { code, detail: "the broker closed the connection before its handshake byte (ECONNRESET)", retry: false }
            : unreachable(path, code, (e as Error).message ?? String(e));
        const left = deadline - Date.now();
        if (!why.retry || left <= 0)
          throw new BrokerUnavailableError(path, why.retry ? `${why.detail}, still after ${timeoutMs} ms` : why.detail, why.code);
        await Bun.sleep(Math.min(delay, left));
        delay = Math.min(delay * 2, 2000);
      }
    }
    await client.awaitHandshake(Math.max(deadline - Date.now(), 1));
    return client;
  }

  private async open(): Promise<void> {
    this.socket = await Bun.connect<undefined>({
      unix: this.path,
      socket: {
        data: (_s, data) => this.onData(data),
        drain: () => this.writer.drain(),
        close: (_s, err) => this.fail(this.closedError(err)),
        error: (_s, err) => this.fail(this.closedError(err)),
        end: () => this.fail(this.closedError(undefined)),
      },
    });
    this.writer = new QueuedWriter(this.socket);
  }

  /** Why the connection ended, as one clause: reset, closed before the handshake, or closed. */
  private closedError(err: Error | undefined): BrokerUnavailableError {
    const code = (err as { code?: string } | undefined)?.code;
    if (!this.handshakeDone)
      return new BrokerUnavailableError(this.path, `the broker closed the connection before its handshake byte${code ? ` (${code})` : ""}`, code);
    if (code === "ECONNRESET") return new BrokerUnavailableError(this.path, "the broker reset the connection (ECONNRESET)", code);
    if (code) return new BrokerUnavailableError(this.path, `the connection failed (${code})`, code);
    return new BrokerUnavailableError(this.path, "the broker closed the connection");
  }

  private async awaitHandshake(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new FluxTimeoutError(`handshake with ${this.path}`, ms)), ms);
    });
    try {
      const byte = await Promise.race([this.handshake.promise, timeout]);
      if (byte !== 0) throw new HandshakeRefusedError(this.path, byte);
    } catch (e) {
      this.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private onData(data: Uint8Array): void {
    if (this.failure) return;
    let chunk = data;
    if (!this.handshakeDone) {
      if (chunk.length === 0) return;
      const byte = chunk[0]!;
      this.handshakeDone = true;
      this.handshake.resolve(byte);
      if (byte !== 0) {
        // Refused: the broker closes now; nothing after the byte is ours to read.
        this.failure = new HandshakeRefusedError(this.path, byte);
        return;
      }
      chunk = chunk.subarray(1);
    }
    let messages: Message[];
    try {
      messages = this.reader.push(chunk);
    } catch (e) {
      this.fail(e as Error);
      this.close();
      return;
    }
    for (const m of messages) {
      if (m.type !== MsgType.response) continue; // events and controls are not ours
      const p = this.pending.get(m.aux2);
      if (!p) continue; // a late answer to a request that already timed out
      this.pending.delete(m.aux2);
      clearTimeout(p.timer);
      p.resolve(m);
    }
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    if (!this.handshakeDone) {
      this.handshakeDone = true;
      this.handshake.reject(e);
    }
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  /**
   * Sends a request and resolves with its JSON payload (undefined if none).
   * Many calls may be in flight at once; answers are matched by tag, in any order.
   */
  async rpc(topic: string, payload?: Json, timeoutMs = DEFAULT_RPC_MS): Promise<Json | undefined> {
    const m = await this.request(topic, payload, timeoutMs);
    if (m.aux1 !== 0) {
      const text = m.payload && m.payload.length > 0 ? payloadText(m.payload) : undefined;
      throw new FluxRpcError(topic, m.aux1, text || undefined);
    }
    if (!m.payload) return undefined;
    try {
      return parseJson(payloadText(m.payload));
    } catch (e) {
      // (the stack's own words, such as "Maximum call stack size exceeded.", never reach a user)
      throw new BadReplyError(topic, e instanceof Error && e.name !== "RangeError" ? e.message : "the reply could not be decoded");
    }
  }

  private request(topic: string, payload: Json | undefined, timeoutMs: number): Promise<Message> {
    if (this.failure) return Promise.reject(this.failure);
    const tag = this.allocTag();
    const bytes = encodeRequest(topic, tag, payload === undefined ? undefined : stringifyJson(payload));
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        reject(new FluxTimeoutError(topic, timeoutMs));
      }, timeoutMs);
      this.pending.set(tag, { topic, resolve, reject, timer });
      this.writer.write(bytes);
    });
  }

  private allocTag(): number {
    // Tags are u32, 0 means "no response"; skip any still in flight.
    for (;;) {
      const tag = this.nextTag;
      this.nextTag = this.nextTag >= 0xfffffffe ? 1 : this.nextTag + 1;
      if (!this.pending.has(tag)) return tag;
    }
  }

  close(): void {
    this.fail(new ProtocolError("connection closed"));
    this.socket?.end();
  }
}
