import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { FluxClient } from "../../src/flux/client";
import { BadReplyError, BrokerUnavailableError, FluxRpcError, FluxTimeoutError, HandshakeRefusedError } from "../../src/flux/errors";
import { ProtocolError } from "../../src/flux/message";
import { getConfig, getRank, listJobs, lookupR } from "../../src/flux/rpc";
import { jobId } from "../../src/flux/jobid";
import { rankShare } from "../../src/flux/r";
import { type Broker, startBroker } from "../broker/broker";
import { startRawPeer, tempDir } from "../e2e/harness";
import { mkdirSync, writeFileSync } from "node:fs";

const dir = tempDir();
let n = 0;
const brokers: Broker[] = [];
function broker(s: Parameters<typeof startBroker>[1]): Broker {
  const b = startBroker(join(dir.path, `b${n++}.sock`), s);
  brokers.push(b);
  return b;
}
afterAll(() => {
  for (const b of brokers) b.stop();
  dir.remove();
});

describe("FluxClient", () => {
  test("pipelined requests are matched by tag even when answered out of order", async () => {
    const b = broker({ rank: 3, config: { pam: { debug: true } }, delayMs: { "attr.get": 50 } });
    const c = await FluxClient.connect(`local://${b.path}`);
    const order: string[] = [];
    const [rank, cfg] = await Promise.all([
      getRank(c).then((r) => (order.push("rank"), r)),
      getConfig(c).then((r) => (order.push("config"), r)),
    ]);
    c.close();
    expect(order).toEqual(["config", "rank"]);
    expect(rank).toBe(3);
    expect(cfg).toEqual({ pam: { debug: true } });
  });

  test("a thousand requests in flight on one connection all come back", async () => {
    const jobs = Array.from({ length: 1000 }, (_, i) => ({ id: String(2n ** 60n + BigInt(i)), userid: 1000, cores: String(i % 64) }));
    const b = broker({ jobs });
    const c = await FluxClient.connect(`local://${b.path}`);
    const rs = await Promise.all(jobs.map((j) => lookupR(c, jobId(BigInt(j.id)))));
    c.close();
    expect(rs.map((r) => rankShare(r, 0).cores[0])).toEqual(jobs.map((_, i) => i % 64));
  });

  test("job ids above 2^53 survive the round trip", async () => {
    const id = "18446744073709551000";
    const b = broker({ jobs: [{ id, userid: 1000 }] });
    const c = await FluxClient.connect(`local://${b.path}`);
    const jobs = await listJobs(c, { userids: [1000], rank: 0 });
    expect(jobs.map((j) => j.id)).toEqual([jobId(BigInt(id))]);
    const r = await lookupR(c, jobs[0]!.id);
    c.close();
    expect(r.version).toBe(1);
    expect(b.requests.at(-1)?.payload).toEqual({ id: BigInt(id), keys: ["R"], flags: 0 });
  });

  test("an error reply is a FluxRpcError with errnum and text", async () => {
    const b = broker({ mapper: "absent" });
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await c.rpc("sdexec-mapper.lookup", { R: {} }).catch((e) => e);
    c.close();
    expect(e).toBeInstanceOf(FluxRpcError);
    expect(e.errnum).toBe(38);
    expect(e.message).toBe("sdexec-mapper.lookup: No service matching sdexec-mapper.lookup is registered (ENOSYS)");
  });

  test("a refused handshake names the errno", async () => {
    const b = broker({ handshake: 1 });
    const e = await FluxClient.connect(`local://${b.path}`).catch((e) => e);
    expect(e).toBeInstanceOf(HandshakeRefusedError);
    expect(e.message).toContain("EPERM");
  });

  test("a broker that never answers hits the deadline", async () => {
    const b = broker({ silent: ["attr.get"] });
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await getRank(c, 100).catch((e) => e);
    c.close();
    expect(e).toBeInstanceOf(FluxTimeoutError);
  });

  test("garbage on the stream fails every request in flight", async () => {
    const b = broker({ garbage: ["attr.get"] });
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await getRank(c, 1000).catch((e) => e);
    expect(e).toBeInstanceOf(ProtocolError);
  });

  test("a broker that hangs up fails the request at once", async () => {
    const b = broker({ hangup: ["config.get"] });
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await getConfig(c, 5000).catch((e) => e);
    expect(e).toBeInstanceOf(BrokerUnavailableError);
  });

  test("a missing socket is retried until the connect deadline", async () => {
    const t0 = Date.now();
    const e = await FluxClient.connect(`local://${dir.path}/none.sock`, { timeoutMs: 100 }).catch((e) => e);
    expect(e).toBeInstanceOf(BrokerUnavailableError);
    expect(e.message).toBe(`cannot reach the Flux broker at ${dir.path}/none.sock: broker socket ${dir.path}/none.sock was not found (ENOENT), still after 100 ms`);
    expect(e.code).toBe("ENOENT");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });

  test("a broker that appears during the retries is reached", async () => {
    const path = join(dir.path, "late.sock");
    setTimeout(() => brokers.push(startBroker(path, { rank: 9 })), 60);
    const c = await FluxClient.connect(`local://${path}`, { timeoutMs: 2000 });
    expect(await getRank(c)).toBe(9);
    c.close();
  });

  test("a refusal is only as slow as the cause needs: what cannot pass fails at once, naming it", async () => {
    // A long budget: were any of these retried, each would take 3 s.
    const file = join(dir.path, "file.sock");
    writeFileSync(file, "");
    mkdirSync(join(dir.path, "dir.sock"));
    const stale = join(dir.path, "stale.sock");
    await startRawPeer("stale", stale);
    const cases: [string, string, string][] = [
      [`/nonexistent-${process.pid}/local`, "ENOENT", `broker socket /nonexistent-${process.pid}/local was not found (ENOENT), nor its directory /nonexistent-${process.pid}: no broker runs or starts here`],
      [file, "ENOTSOCK", `${file} is a regular file, not a socket (ENOTSOCK)`],
      [join(dir.path, "dir.sock"), "ENOTSOCK", `${join(dir.path, "dir.sock")} is a directory, not a socket (ENOTSOCK)`],
      [stale, "ECONNREFUSED", `nobody listens on ${stale} (ECONNREFUSED): a socket left by a broker that is not running`],
    ];
    for (const [path, code, detail] of cases) {
      const t0 = Date.now();
      const e = await FluxClient.connect(`local://${path}`, { timeoutMs: 3000 }).catch((e) => e);
      expect(e).toBeInstanceOf(BrokerUnavailableError);
      expect([e.code, e.message]).toEqual([code, `cannot reach the Flux broker at ${path}: ${detail}`]);
      expect(Date.now() - t0).toBeLessThan(2000);
    }
  });

  test("a broker that accepts, then closes before its handshake byte, or resets after it, is named", async () => {
    const hup = join(dir.path, "hup.sock");
    const reset = join(dir.path, "reset.sock");
    const peers = [await startRawPeer("hup", hup), await startRawPeer("reset", reset)];
    try {
      const e1 = await FluxClient.connect(`local://${hup}`, { timeoutMs: 3000 }).catch((e) => e);
      expect(e1).toBeInstanceOf(BrokerUnavailableError);
      // (Bun sees the hang-up as a reset or as an end, by the timing)
      expect(e1.message).toMatch(new RegExp(`^cannot reach the Flux broker at ${hup}: the broker closed the connection before its handshake byte( \\(ECONNRESET\\))?$`));
      const c = await FluxClient.connect(`local://${reset}`, { timeoutMs: 3000 });
      const e2 = await getRank(c, 3000).catch((e) => e);
      expect(e2).toBeInstanceOf(BrokerUnavailableError);
      expect([e2.code, e2.message]).toEqual(["ECONNRESET", `cannot reach the Flux broker at ${reset}: the broker reset the connection (ECONNRESET)`]);
    } finally {
      for (const p of peers) await p.stop();
    }
  });

  test("a reply past the size bound is refused from its header, before its bytes are read", async () => {
    const b = broker({ rawText: { "config.get": `{"s":"${"x".repeat(5000)}"}` } });
    const c = await FluxClient.connect(`local://${b.path}`, { maxReplyBytes: 4096 });
    const e = await getConfig(c, 3000).catch((e) => e);
    expect(e).toBeInstanceOf(ProtocolError);
    expect(e.message).toMatch(/^broker message of \d+ bytes is larger than the 4096 accepted$/);
  });

  test("a 100,000-deep reply is a BadReplyError saying what was wrong", async () => {
    const b = broker({ rawText: { "config.get": "[".repeat(100_000) + "]".repeat(100_000) } });
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await getConfig(c, 3000).catch((e) => e);
    c.close();
    expect(e).toBeInstanceOf(BadReplyError);
    expect(e.message).toBe("config.get: unexpected reply from the Flux broker: invalid JSON: nested deeper than 64 levels at offset 64");
  });

  test("a reply holding a string of 3 MB is read", async () => {
    const big = "y".repeat(3 << 20);
    const b = broker({ config: { pam: { note: big } } });
    const c = await FluxClient.connect(`local://${b.path}`);
    const cfg = await getConfig(c, 5000);
    c.close();
    expect(cfg).toEqual({ pam: { note: big } });
  });

  test("a reply of the wrong shape is a BadReplyError", async () => {
    const b = broker({ errors: {} , config: [] as never });
    const c = await FluxClient.connect(`local://${b.path}`);
    const e = await getConfig(c).catch((e) => e);
    c.close();
    expect(e).toBeInstanceOf(BadReplyError);
  });
});
