// The RPC layer holds a reply to what a real broker sends: what is refused, what is read, and
// that one job with a huge but valid ranks idset decides nothing for the others.

import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { FluxClient } from "../../src/flux/client";
import { BadReplyError } from "../../src/flux/errors";
import { formatRanges } from "../../src/flux/idset";
import { getRank, type Job, listJobs, runningOn } from "../../src/flux/rpc";
import { type Broker, startBroker } from "../broker/broker";
import type { Scenario } from "../broker/scenario";
import { tempDir } from "../e2e/harness";

const dir = tempDir();
const brokers: Broker[] = [];
let n = 0;
afterAll(() => {
  for (const b of brokers) b.stop();
  dir.remove();
});

async function jobsFrom(s: Scenario): Promise<Job[]> {
  const b = startBroker(join(dir.path, `r${n++}.sock`), s);
  brokers.push(b);
  const c = await FluxClient.connect(`local://${b.path}`);
  try {
    return await listJobs(c, { userids: [1000], rank: 5 }, 1000);
  } finally {
    c.close();
  }
}

const reply = (...jobs: string[]) => ({ rawText: { "job-list.list": `{"jobs":[${jobs.join(",")}]}` } });
const job = (fields: string) => `{"id":7,"userid":1000,"state":16,"ranks":"5",${fields}}`.replace(",}", "}");

describe("job-list replies a real broker cannot send are refused", () => {
  for (const [what, text, why] of [
    ["a userid written as a real (1002.0)", '{"id":7,"userid":1000.0,"state":16,"ranks":"5"}', "job 7 has no valid userid (1000.0)"],
    ["a userid with an exponent (1000e0)", '{"id":7,"userid":1000e0,"state":16,"ranks":"5"}', "job 7 has no valid userid (1000e0)"],
    ["a negative zero userid", '{"id":7,"userid":-0,"state":16,"ranks":"5"}', "job 7 has no valid userid (-0)"],
    ["a userid past u32", '{"id":7,"userid":4294967296,"state":16,"ranks":"5"}', "job 7 has no valid userid (4294967296)"],
    ["a userid as a string", '{"id":7,"userid":"1000","state":16,"ranks":"5"}', 'job 7 has no valid userid ("1000")'],
    ["a state written as a real (16.0)", '{"id":7,"userid":1000,"state":16.0,"ranks":"5"}', "job 7 has no valid state (16.0)"],
    ["a state that is no single state bit", '{"id":7,"userid":1000,"state":48,"ranks":"5"}', "job 7 has no valid state (48)"],
    ["a state name", '{"id":7,"userid":1000,"state":"RUN","ranks":"5"}', 'job 7 has no valid state ("RUN")'],
    ["an id written as a real", '{"id":7.0,"userid":1000,"state":16,"ranks":"5"}', "a job has no valid id (7.0)"],
    ["an id past u64", '{"id":18446744073709551616,"userid":1000,"state":16,"ranks":"5"}', "a job has no valid id (18446744073709551616)"],
    ["ranks with a blank", '{"id":7,"userid":1000,"state":16,"ranks":"4, 5"}', 'job 7: "4, 5" is not an idset'],
    ["ranks with a leading zero", '{"id":7,"userid":1000,"state":16,"ranks":"05"}', 'job 7: "05" is not an idset'],
    ["ranks out of order", '{"id":7,"userid":1000,"state":16,"ranks":"5,0-1"}', 'job 7: "5,0-1" is not an idset'],
    ["ranks as a number", '{"id":7,"userid":1000,"state":16,"ranks":5}', "job 7 has ranks that are not an idset (5)"],
    ["a repeated key", '{"id":7,"userid":1002,"userid":1000,"state":16,"ranks":"5"}', "invalid JSON: a key is repeated in an object"],
  ] as const) {
    test(`${what}: refused, naming it`, async () => {
      const e = await jobsFrom(reply(text)).catch((e) => e);
      expect(e).toBeInstanceOf(BadReplyError);
      expect(e.message).toStartWith("job-list.list: unexpected reply from the Flux broker: ");
      expect(e.message).toContain(why);
    });
  }

  test("a positive control: the same job written as a broker writes it is read", async () => {
    const jobs = await jobsFrom(reply(job("")));
    expect(jobs.map((j) => [String(j.id), j.userid, j.state, formatRanges(j.ranks)])).toEqual([["7", 1000, 16, "5"]]);
  });
});

describe("idsets are tested as ranges", () => {
  test("a job on ranks 0-4294967295 holds this rank, and the other jobs of the reply still count", async () => {
    const jobs = await jobsFrom(
      reply(
        '{"id":7,"userid":1000,"state":16,"ranks":"0-4294967295"}',
        '{"id":8,"userid":1000,"state":16,"ranks":"[1-3,5,9-4294967294]"}',
        '{"id":9,"userid":1000,"state":16,"ranks":"6"}',
      ),
    );
    expect(jobs.map((j) => runningOn(j, 5))).toEqual([true, true, false]);
    expect(formatRanges(jobs[0]!.ranks)).toBe("0-4294967295");
  });
});

describe("attr.get", () => {
  test("a rank with a leading zero is refused", async () => {
    const b = startBroker(join(dir.path, `r${n++}.sock`), { rawReplies: { "attr.get": { value: "05", flags: 1 } } });
    brokers.push(b);
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await getRank(c, 1000).catch((e) => e);
    c.close();
    expect(e).toBeInstanceOf(BadReplyError);
    expect(e.message).toBe('attr.get: unexpected reply from the Flux broker: rank "05" is not an unsigned integer');
  });
});
