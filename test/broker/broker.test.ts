// The test broker is a stand-in: these tests hold it to the real broker's bytes.

import { describe, expect, test } from "bun:test";
import { parseJson } from "../../src/flux/json";
import { decodeStream, payloadText } from "../../src/flux/message";
import { parseR } from "../../src/flux/r";
import { wirePair } from "../flux/fixtures";
import { autoMapper, encodeResponse } from "./broker";

function request(prefix: string) {
  return decodeStream(wirePair(prefix).request).messages[0]!;
}

describe("test broker replies equal the real broker's bytes", () => {
  test("attr.get rank", () => {
    expect(encodeResponse(request("00"), { json: { value: "0", flags: 1 } })).toEqual(wirePair("00").response);
  });

  test("attr.get of an unknown attribute: errnum 2, no payload", () => {
    expect(encodeResponse(request("02"), { errnum: 2 })).toEqual(wirePair("02").response);
  });

  test("config.get", () => {
    expect(encodeResponse(request("03"), { json: {} })).toEqual(wirePair("03").response);
  });

  test("job-info.lookup of an unknown id: errnum 2 with text", () => {
    expect(encodeResponse(request("10"), { errnum: 2, text: "invalid job id" })).toEqual(wirePair("10").response);
  });

  test("an unknown service: errnum 38 with text", () => {
    const req = request("11");
    expect(encodeResponse(req, { errnum: 38, text: `No service matching ${req.topic} is registered` })).toEqual(wirePair("11").response);
  });

  test("the automatic mapper answers the real request as sdexec-mapper did", () => {
    const req = request("09");
    const { R } = parseJson(payloadText(req.payload!)) as { R: never };
    const real = parseJson(payloadText(decodeStream(wirePair("09").response).messages[0]!.payload!));
    expect(autoMapper(parseR(R), 0)).toEqual(real as never);
  });
});
