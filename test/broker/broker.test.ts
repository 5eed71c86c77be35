// The test broker is a stand-in: these tests hold what it answers (replyTo, the code every
// end-to-end test relies on) to the real broker's bytes, fixture by fixture: each real request,
// in the scenario the capture was made in, must get the real response, byte for byte.

import { describe, expect, test } from "bun:test";
import { FluxClient } from "../../src/flux/client";
import { Deadline } from "../../src/flux/deadline";
import { decodeStream } from "../../src/flux/message";
import { userJobs } from "../../src/flux/user-jobs";
import { tempDir } from "../e2e/harness";
import { wirePair, wirePairs } from "../flux/fixtures";
import { replyTo } from "./broker";
import type { Scenario } from "./scenario";

/** The node each capture was made on (../shared/flux-wire/README.md): one broker, owner root, host vm. */
const VM: Scenario = { rank: 0, owner: 0, hosts: ["vm"], config: {} };
const SCENARIOS: Record<string, Scenario> = {
  "00": VM,
  "01": VM,
  "02": VM,
  "03": VM,
  "04": { ...VM, jobs: [{ id: "1227286904832", userid: 0 }, { id: "248923553792", userid: 0 }] },
  "06": VM,
  "07": { ...VM, jobs: [{ id: "1227286904832", userid: 0, cores: "1" }] },
  "08": { ...VM, jobs: [{ id: "1227286904832", userid: 0, cores: "1" }] },
  "09": VM,
  "10": VM,
  "11": VM,
  "12": { ...VM, jobs: [{ id: "1227286904832", userid: 0 }] },
  // two brokers, instance owner uid 1001, one RUN job of the owner on rank 0 holding two cores
  "13": { rank: 0, owner: 1001, jobs: [{ id: "10049552384", userid: 1001, ranks: "0", cores: "0-1" }] },
};

const text = (b: Uint8Array) => new TextDecoder().decode(b).replace(/[^\x20-\x7e]/g, ".");

describe("the test broker answers each real request with the real broker's bytes", () => {
  test("every fixture has its scenario here", () => {
    expect(wirePairs().map((p) => p.name.slice(0, 2))).toEqual(Object.keys(SCENARIOS).sort());
  });

  for (const pair of wirePairs()) {
    const id = pair.name.slice(0, 2);
    test(`${pair.name}`, () => {
      const request = decodeStream(pair.request).messages[0]!;
      const got = replyTo(SCENARIOS[id]!, request);
      // Readable first (topic and payload visible), then every byte (PROTO: flags, creds, errnum, tag).
      expect(text(got)).toBe(text(pair.response));
      expect(got).toEqual(pair.response);
    });
  }

  test("control: another scenario gives other bytes (the comparison can fail)", () => {
    const request = decodeStream(wirePair("13").request).messages[0]!;
    expect(replyTo({ ...SCENARIOS["13"]!, owner: 0 }, request)).not.toEqual(wirePair("13").response);
    expect(replyTo({ ...SCENARIOS["13"]!, jobs: [{ id: "10049552384", userid: 1001, ranks: "0", cores: "0" }] }, request)).not.toEqual(wirePair("13").response);
  });
});

describe("flux-pam's own admission query is the real one, byte for byte", () => {
  test("account allow-guest-user for the instance owner sends fixture 13's request", async () => {
    const dir = tempDir("flux-pam-fixture13-");
    const path = `${dir.path}/local-0`;
    const received: number[] = [];
    const scenario = SCENARIOS["13"]!;
    // A raw peer: records every byte the client writes, answers with the test broker's replies.
    let pending = new Uint8Array(0);
    const server = Bun.listen<undefined>({
      unix: path,
      socket: {
        open(sock) {
          sock.write(new Uint8Array([0]));
        },
        data(sock, data) {
          received.push(...data);
          const all = new Uint8Array(pending.length + data.length);
          all.set(pending);
          all.set(data, pending.length);
          const { messages, used } = decodeStream(all);
          pending = all.slice(used);
          for (const m of messages) sock.write(replyTo(scenario, m));
        },
      },
    });
    const client = await FluxClient.connect(`local://${path}`);
    try {
      const r = await userJobs(client, 1001, true, new Deadline(5000));
      expect(r.jobs.map((j) => j.id)).toEqual([10049552384n as never]);
    } finally {
      client.close();
      server.stop(true);
      dir.remove();
    }
    // The client's stream: attr.get rank, attr.get security.owner, then the job-list.list.
    const stream = new Uint8Array(received);
    const messages: Uint8Array[] = [];
    for (let o = 0; o < stream.length; ) {
      const n = 8 + new DataView(stream.buffer, o + 4, 4).getUint32(0, false);
      messages.push(stream.slice(o, o + n));
      o += n;
    }
    expect(messages.map((m) => decodeStream(m).messages[0]!.topic)).toEqual(["attr.get", "attr.get", "job-list.list"]);
    expect(text(messages[2]!)).toBe(text(wirePair("13").request));
    expect(messages[2]!).toEqual(wirePair("13").request);
  });
});
