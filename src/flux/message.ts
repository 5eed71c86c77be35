// Flux messages on a local:// stream: the 8-byte header, frames, and the 20-byte PROTO frame.

export const STREAM_MAGIC = 0xffee0012; // written in host (little-endian) order
const PROTO_MAGIC = 0x8e;
const PROTO_VERSION = 0x01;
const PROTO_SIZE = 20;

export const MsgType = { request: 1, response: 2, event: 4, control: 8 } as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export const MsgFlag = {
  topic: 0x01,
  payload: 0x02,
  noresponse: 0x04,
  route: 0x08,
  upstream: 0x10,
  private: 0x20,
  streaming: 0x40,
  user1: 0x80,
} as const;

export const USERID_UNKNOWN = 0xffffffff;
export const NODEID_ANY = 0xffffffff;

export interface Message {
  type: MsgType;
  flags: number;
  userid: number;
  rolemask: number;
  /** nodeid in a request, errnum in a response, sequence in an event */
  aux1: number;
  /** matchtag in requests and responses */
  aux2: number;
  routes?: Uint8Array[];
  topic?: string;
  payload?: Uint8Array;
}

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** A request as libflux sends it: ROUTE with no routes, userid unknown, rolemask none. */
export function encodeRequest(topic: string, matchtag: number, payload?: string): Uint8Array {
  return encodeMessage({
    type: MsgType.request,
    flags: MsgFlag.route | MsgFlag.topic | (payload === undefined ? 0 : MsgFlag.payload),
    userid: USERID_UNKNOWN,
    rolemask: 0,
    aux1: NODEID_ANY,
    aux2: matchtag,
    routes: [],
    topic,
    payload: payload === undefined ? undefined : cString(payload),
  });
}

/** JSON payloads and error strings travel NUL-terminated. */
export function cString(text: string): Uint8Array {
  const b = enc.encode(text);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

export function encodeMessage(m: Message): Uint8Array {
  const frames: Uint8Array[] = [];
  if (m.flags & MsgFlag.route) {
    for (const r of m.routes ?? []) frames.push(r);
    frames.push(new Uint8Array(0));
  }
  if (m.flags & MsgFlag.topic) frames.push(enc.encode(m.topic ?? ""));
  if (m.flags & MsgFlag.payload) frames.push(m.payload ?? new Uint8Array(0));
  const proto = new Uint8Array(PROTO_SIZE);
  const pv = new DataView(proto.buffer);
  proto[0] = PROTO_MAGIC;
  proto[1] = PROTO_VERSION;
  proto[2] = m.type;
  proto[3] = m.flags;
  pv.setUint32(4, m.userid >>> 0);
  pv.setUint32(8, m.rolemask >>> 0);
  pv.setUint32(12, m.aux1 >>> 0);
  pv.setUint32(16, m.aux2 >>> 0);
  frames.push(proto);

  let size = 0;
  for (const f of frames) size += (f.length < 255 ? 1 : 5) + f.length;
  const out = new Uint8Array(8 + size);
  const v = new DataView(out.buffer);
  v.setUint32(0, STREAM_MAGIC, true);
  v.setUint32(4, size);
  let o = 8;
  for (const f of frames) {
    if (f.length < 255) out[o++] = f.length;
    else {
      out[o++] = 0xff;
      v.setUint32(o, f.length);
      o += 4;
    }
    out.set(f, o);
    o += f.length;
  }
  return out;
}

/**
 * The largest message taken from a broker: 8 MiB, some 50,000 jobs with their annotations in one
 * job-list reply (a user's RUN jobs on one rank are a few hundred bytes each). With the JSON
 * decoder's own bounds (json.ts) this caps what one reply costs the process (measured peak:
 * test/reliability/README.md). A message past it is refused from its header.
 */
export const MAX_MESSAGE_BYTES = 8 << 20;

function header(v: DataView, o: number, maxSize: number): number {
  if (v.getUint32(o, true) !== STREAM_MAGIC) throw new ProtocolError("bad stream magic from broker");
  const size = v.getUint32(o + 4);
  if (size > maxSize) throw new ProtocolError(`broker message of ${size} bytes is larger than the ${maxSize} accepted`);
  return size;
}

/**
 * Splits complete messages off the front of a stream buffer.
 * Returns the messages and how many bytes they used; a partial message is left for later.
 */
export function decodeStream(buf: Uint8Array, maxSize = MAX_MESSAGE_BYTES): { messages: Message[]; used: number } {
  const messages: Message[] = [];
  let o = 0;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  while (buf.length - o >= 8) {
    const size = header(v, o, maxSize);
    if (buf.length - o - 8 < size) break;
    messages.push(decodeFrames(buf.subarray(o + 8, o + 8 + size)));
    o += 8 + size;
  }
  return { messages, used: o };
}

/**
 * Reads messages off a stream as its bytes arrive, in any pieces. Each byte is copied once, into
 * a buffer of the message's own size, and no piece is kept: the runtime hands a read's bytes as a
 * view of a larger buffer, and holding the views of a large reply would hold all of those. A
 * message past `maxSize` is refused from its header, before its bytes are read.
 */
export class StreamReader {
  private readonly head = new Uint8Array(8);
  private headLen = 0;
  private body: Uint8Array | undefined;
  private bodyLen = 0;
  constructor(private readonly maxSize = MAX_MESSAGE_BYTES) {}

  /** Takes the next bytes; returns the messages now complete. Throws ProtocolError on a bad stream. */
  push(data: Uint8Array): Message[] {
    const out: Message[] = [];
    let o = 0;
    while (o < data.length) {
      if (this.body === undefined) {
        const k = Math.min(8 - this.headLen, data.length - o);
        this.head.set(data.subarray(o, o + k), this.headLen);
        this.headLen += k;
        o += k;
        if (this.headLen < 8) break;
        this.body = new Uint8Array(header(new DataView(this.head.buffer), 0, this.maxSize));
        this.bodyLen = 0;
      }
      const k = Math.min(this.body.length - this.bodyLen, data.length - o);
      this.body.set(data.subarray(o, o + k), this.bodyLen);
      this.bodyLen += k;
      o += k;
      if (this.bodyLen === this.body.length) {
        const body = this.body;
        this.body = undefined;
        this.headLen = 0;
        this.bodyLen = 0;
        out.push(decodeFrames(body));
      }
    }
    return out;
  }

  /** Bytes held for a message not yet complete. */
  get pending(): number {
    return this.headLen + this.bodyLen;
  }
}

/** Decodes the frames of one message (without the 8-byte stream header). */
export function decodeFrames(b: Uint8Array): Message {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const frames: Uint8Array[] = [];
  let o = 0;
  while (o < b.length) {
    let len = b[o++]!;
    if (len === 0xff) {
      if (o + 4 > b.length) throw new ProtocolError("truncated frame length");
      len = v.getUint32(o);
      o += 4;
    }
    if (o + len > b.length) throw new ProtocolError("truncated frame");
    frames.push(b.subarray(o, o + len));
    o += len;
  }
  const proto = frames.pop();
  if (!proto || proto.length !== PROTO_SIZE) throw new ProtocolError("missing or bad PROTO frame");
  if (proto[0] !== PROTO_MAGIC || proto[1] !== PROTO_VERSION) throw new ProtocolError("bad PROTO magic or version");
  const pv = new DataView(proto.buffer, proto.byteOffset, PROTO_SIZE);
  const m: Message = {
    type: proto[2] as MsgType,
    flags: proto[3]!,
    userid: pv.getUint32(4),
    rolemask: pv.getUint32(8),
    aux1: pv.getUint32(12),
    aux2: pv.getUint32(16),
  };
  if (![1, 2, 4, 8].includes(m.type)) throw new ProtocolError(`unknown message type ${m.type}`);
  let f = 0;
  if (m.flags & MsgFlag.route) {
    const routes: Uint8Array[] = [];
    for (;;) {
      const r = frames[f++];
      if (r === undefined) throw new ProtocolError("route frames without a delimiter");
      if (r.length === 0) break;
      routes.push(r);
    }
    m.routes = routes;
  }
  if (m.flags & MsgFlag.topic) {
    const t = frames[f++];
    if (t === undefined) throw new ProtocolError("TOPIC flag without a topic frame");
    m.topic = decodeText(t);
  }
  if (m.flags & MsgFlag.payload) {
    const p = frames[f++];
    if (p === undefined) throw new ProtocolError("PAYLOAD flag without a payload frame");
    m.payload = p;
  }
  if (f !== frames.length) throw new ProtocolError("extra frames in message");
  return m;
}

export function decodeText(b: Uint8Array): string {
  try {
    return dec.decode(b);
  } catch {
    throw new ProtocolError("message text is not UTF-8");
  }
}

/** The text of a NUL-terminated payload (JSON or an error string). */
export function payloadText(p: Uint8Array): string {
  const end = p.length > 0 && p[p.length - 1] === 0 ? p.length - 1 : p.length;
  return decodeText(p.subarray(0, end));
}
