import { describe, expect, test } from "bun:test";
import { BadReplyError } from "../../src/flux/errors";
import { formatIdset } from "../../src/flux/idset";
import { isObject, parseJson, stringifyJson } from "../../src/flux/json";
import { decodeStream, payloadText } from "../../src/flux/message";
import { parseR, rankShare, unionR } from "../../src/flux/r";
import { wirePair } from "./fixtures";

function fixtureR(): string {
  const m = decodeStream(wirePair("07").response).messages[0]!;
  const v = parseJson(payloadText(m.payload!));
  if (!isObject(v) || typeof v.R !== "string") throw new Error("fixture");
  return v.R;
}

describe("R version 1 (RFC 20)", () => {
  test("the real job-info.lookup R gives rank 0 core 1 on host vm", () => {
    const share = rankShare(parseR(fixtureR()), 0);
    expect(formatIdset(share.cores)).toBe("1");
    expect(share.gpus).toEqual([]);
    expect(share.host).toBe("vm");
  });

  test("the real R re-encodes as the real sdexec-mapper.lookup request carries it", () => {
    const req = decodeStream(wirePair("09").request).messages[0]!;
    expect(payloadText(req.payload!)).toBe(stringifyJson({ R: parseR(fixtureR()) as never }));
  });

  test("another rank's share is empty", () => {
    expect(rankShare(parseR(fixtureR()), 3)).toEqual({ cores: [], gpus: [] });
  });

  test("multi-rank R: each rank gets its own cores, gpus and host", () => {
    const r = parseR({
      version: 1,
      execution: {
        R_lite: [
          { rank: "0-1", children: { core: "0-3", gpu: "0" } },
          { rank: "2", children: { core: "4-5" } },
        ],
        nodelist: ["node[10-12]"],
      },
    });
    expect(rankShare(r, 1)).toEqual({ cores: [0, 1, 2, 3], gpus: [0], host: "node11" });
    expect(rankShare(r, 2)).toEqual({ cores: [4, 5], gpus: [], host: "node12" });
  });

  test("unionR() holds the union of shares on one rank", () => {
    const u = unionR(2, [
      { cores: [0, 1], gpus: [], host: "n2" },
      { cores: [3], gpus: [1] },
    ]);
    expect(u.execution.R_lite).toEqual([{ rank: "2", children: { core: "0-1,3", gpu: "1" } }]);
    expect(u.execution.nodelist).toEqual(["n2"]);
  });

  for (const bad of ['{"version":2}', '{"version":1}', '{"version":1,"execution":{"R_lite":[{"rank":0}]}}', "nope"]) {
    test(`rejects ${bad}`, () => {
      expect(() => parseR(bad)).toThrow(BadReplyError);
    });
  }
});
