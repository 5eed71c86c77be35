import { describe, expect, test } from "bun:test";
import { parseJson, stringifyJson } from "../../src/flux/json";
import { MsgFlag, MsgType, ProtocolError, StreamReader, decodeStream, encodeMessage, encodeRequest, payloadText } from "../../src/flux/message";
import { wirePair, wirePairs } from "./fixtures";
import { concat } from "../broker/fuzz";

const pairs = wirePairs();

describe("requests", () => {
  test("the fixture set is complete", () => {
    expect(pairs.length).toBe(13);
  });

  for (const p of pairs) {
    test(`encodeMessage() reproduces the real ${p.name} request byte for byte`, () => {
      const { messages, used } = decodeStream(p.request);
      expect(used).toBe(p.request.length);
      expect(messages).toHaveLength(1);
      expect(encodeMessage(messages[0]!)).toEqual(p.request);
    });
  }

  for (const p of pairs.filter((p) => !p.name.startsWith("12"))) {
    test(`encodeRequest() of the JSON payload reproduces ${p.name} as libflux sends it`, () => {
      const m = decodeStream(p.request).messages[0]!;
      // The payload goes through our own JSON decode and encode: bigint ids and floats must survive.
      const payload = m.payload ? stringifyJson(parseJson(payloadText(m.payload))) : undefined;
      expect(encodeRequest(m.topic!, m.aux2, payload)).toEqual(p.request);
    });
  }
});

describe("responses", () => {
  test("decodeStream() reads every real response", () => {
    for (const p of pairs) {
      const { messages, used } = decodeStream(p.response);
      expect(used).toBe(p.response.length);
      const m = messages[0]!;
      expect(m.type).toBe(MsgType.response);
      expect(m.flags & MsgFlag.route).toBe(MsgFlag.route);
      expect(m.routes).toEqual([]);
      expect(m.aux2).toBe(decodeStream(p.request).messages[0]!.aux2);
    }
  });

  test("an unknown attribute is errnum 2 with no payload", () => {
    const m = decodeStream(wirePair("02").response).messages[0]!;
    expect(m.aux1).toBe(2);
    expect(m.payload).toBeUndefined();
  });

  test("an unknown service is errnum 38 with the broker's text", () => {
    const m = decodeStream(wirePair("11").response).messages[0]!;
    expect(m.aux1).toBe(38);
    expect(payloadText(m.payload!)).toBe("No service matching no-such-service.foo is registered");
  });

  test("an invalid constraint is errnum 71 with text", () => {
    const m = decodeStream(wirePair("06").response).messages[0]!;
    expect(m.aux1).toBe(71);
    expect(payloadText(m.payload!)).toStartWith("invalid payload: constraint object invalid");
  });

  test("a job id comes back exact", () => {
    const m = decodeStream(wirePair("04").response).messages[0]!;
    const v = parseJson(payloadText(m.payload!)) as { jobs: { id: number | bigint }[] };
    expect(v.jobs.map((j) => BigInt(j.id))).toEqual([1227286904832n, 248923553792n]);
  });
});

describe("StreamReader", () => {
  const all = () => concat(pairs.map((p) => p.response));

  test("every real response, fed one byte at a time, comes out whole and in order", () => {
    const r = new StreamReader();
    const got = [];
    for (const b of all()) got.push(...r.push(new Uint8Array([b])));
    expect(got).toEqual(pairs.map((p) => decodeStream(p.response).messages[0]!));
    expect(r.pending).toBe(0);
  });

  test("the same in one piece, and in pieces of every size up to 40", () => {
    for (let size = 1; size <= 40; size++) {
      const r = new StreamReader();
      const bytes = all();
      const got = [];
      for (let o = 0; o < bytes.length; o += size) got.push(...r.push(bytes.subarray(o, o + size)));
      expect(got.map((m) => m.aux2)).toEqual(pairs.map((p) => decodeStream(p.response).messages[0]!.aux2));
    }
  });

  test("a message past the bound is refused from its header alone", () => {
    const r = new StreamReader(100);
    const head = new Uint8Array([0x12, 0x00, 0xee, 0xff, 0x00, 0x00, 0x00, 0x65]);
    expect(() => r.push(head)).toThrow("broker message of 101 bytes is larger than the 100 accepted");
  });

  test("a bad magic is refused as soon as the header is complete", () => {
    const r = new StreamReader();
    expect(r.push(new Uint8Array([0x12, 0x00, 0xee]))).toEqual([]);
    expect(() => r.push(new Uint8Array([0xfe, 0, 0, 0, 0]))).toThrow("bad stream magic from broker");
  });
});

describe("stream framing", () => {
  test("a partial message waits for the rest", () => {
    const b = wirePair("00").response;
    expect(decodeStream(b.subarray(0, b.length - 1))).toEqual({ messages: [], used: 0 });
  });

  test("two messages in one read are both decoded", () => {
    const a = wirePair("00").response;
    const b = wirePair("03").response;
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(decodeStream(both).messages.map((m) => m.topic)).toEqual(["attr.get", "config.get"]);
  });

  test("a bad stream magic is a protocol error", () => {
    const b = wirePair("00").response.slice();
    b[0] = 0x13;
    expect(() => decodeStream(b)).toThrow(ProtocolError);
  });

  test("a bad PROTO magic is a protocol error", () => {
    const b = wirePair("00").response.slice();
    b[b.length - 20] = 0x8f;
    expect(() => decodeStream(b)).toThrow(ProtocolError);
  });

  test("frames of 255 bytes and more use the long length form", () => {
    const topic = "t".repeat(300);
    const bytes = encodeRequest(topic, 7, "{}");
    const m = decodeStream(bytes).messages[0]!;
    expect(m.topic).toBe(topic);
    expect(bytes[9]).toBe(0xff);
  });
});
