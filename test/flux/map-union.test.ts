// sharesOf: the R of each job not already known, looked up LOOKUPS_IN_FLIGHT at a time, in order,
// and no lookup sent after the first failure. A client that answers job-info.lookup when told to
// stands in for the broker: what is measured is how many requests are outstanding at once.

import { describe, expect, test } from "bun:test";
import type { FluxClient } from "../../src/flux/client";
import { Deadline } from "../../src/flux/deadline";
import { FluxRpcError } from "../../src/flux/errors";
import type { JobId } from "../../src/flux/jobid";
import type { Json } from "../../src/flux/json";
import { COLLECT_EVERY, LOOKUPS_IN_FLIGHT, sharesOf } from "../../src/flux/map-union";
import type { RankShare } from "../../src/flux/r";

/** R of a job on rank 0 holding core (id % 4): each job's share tells which job it came from. */
const rOf = (id: bigint) => JSON.stringify({ version: 1, execution: { R_lite: [{ rank: "0", children: { core: String(id % 4n) } }], starttime: 0, expiration: 0 } });

/** A broker of job-info.lookup that answers a turn later, or refuses the ids in `refuse`. */
function lookupBroker(refuse = new Set<bigint>()) {
  const asked: bigint[] = [];
  let outstanding = 0;
  let most = 0;
  const client = {
    async rpc(topic: string, payload?: Json): Promise<Json | undefined> {
      expect(topic).toBe("job-info.lookup");
      const id = (payload as { id: bigint }).id;
      asked.push(id);
      most = Math.max(most, ++outstanding);
      await Bun.sleep(0);
      outstanding--;
      if (refuse.has(id)) throw new FluxRpcError(topic, 2, `job ${id} not found`);
      return { id, R: rOf(id) } as unknown as Json;
    },
  } as unknown as FluxClient;
  return { client, asked, most: () => most };
}

const ids = (n: number, from = 1n): JobId[] => Array.from({ length: n }, (_, i) => (from + BigInt(i)) as JobId);
const share = (id: bigint): RankShare => ({ cores: [Number(id % 4n)], gpus: [] });

describe("sharesOf", () => {
  test(`a thousand Rs: every one asked once, never more than ${LOOKUPS_IN_FLIGHT} outstanding, shares in the order of the ids`, async () => {
    const b = lookupBroker();
    const all = ids(1000);
    const gc = Bun.gc;
    let collections = 0;
    Bun.gc = ((full: boolean) => {
      expect(full).toBe(true);
      collections++;
    }) as typeof Bun.gc;
    let shares: RankShare[];
    try {
      shares = await sharesOf(b.client, 0, all, new Map(), new Map(), new Deadline(10_000));
    } finally {
      Bun.gc = gc;
    }
    expect(b.asked.length).toBe(1000);
    expect(new Set(b.asked).size).toBe(1000);
    expect(b.most()).toBe(LOOKUPS_IN_FLIGHT);
    expect(shares.map((s) => s.cores)).toEqual(all.map((id) => [Number(id % 4n)]));
    expect(collections).toBe(Math.floor(1000 / COLLECT_EVERY));
  });

  test("recorded and already asked shares are not asked again, and keep their places", async () => {
    const b = lookupBroker();
    const all = ids(6, 10n);
    const known = new Map([[10n, share(10n)], [13n, share(13n)]]);
    const asked = new Map([[11n, Promise.resolve(share(11n))]]);
    const shares = await sharesOf(b.client, 0, all, known, asked, new Deadline(10_000));
    expect(b.asked).toEqual([12n, 14n, 15n]);
    expect(shares.map((s) => s.cores)).toEqual([[2], [3], [0], [1], [2], [3]]);
  });

  test("a few lookups all go out at once", async () => {
    const b = lookupBroker();
    await sharesOf(b.client, 0, ids(5), new Map(), new Map(), new Deadline(10_000));
    expect(b.most()).toBe(5);
  });

  test("the first refused lookup fails the whole, and no lookup is sent after it", async () => {
    const b = lookupBroker(new Set([3n]));
    const run = sharesOf(b.client, 0, ids(1000), new Map(), new Map(), new Deadline(10_000));
    await expect(run).rejects.toThrow("job 3 not found");
    // Those already in flight when it failed were sent; nothing after.
    expect(b.asked.length).toBeLessThanOrEqual(3 + LOOKUPS_IN_FLIGHT);
  });

  test("a lookup already under way (the prolog's own job) that fails stops the others too", async () => {
    const b = lookupBroker();
    const own = Promise.reject(new FluxRpcError("job-info.lookup", 2, "job 1 not found"));
    const run = sharesOf(b.client, 0, ids(1000), new Map(), new Map([[1n, own]]), new Deadline(10_000));
    await expect(run).rejects.toThrow("job 1 not found");
    expect(b.asked.length).toBeLessThanOrEqual(LOOKUPS_IN_FLIGHT);
  });

  test("a deadline already spent sends nothing", async () => {
    const b = lookupBroker();
    const deadline = new Deadline(1);
    await Bun.sleep(5);
    await expect(sharesOf(b.client, 0, ids(100), new Map(), new Map(), deadline)).rejects.toThrow();
    expect(b.asked.length).toBe(0);
  });
});
