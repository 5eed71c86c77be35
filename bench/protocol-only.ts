// A yardstick for bench/account.ts: the least a Bun program can do to answer account, and no more.
// It speaks the protocol as flux-pam does (src/flux/message.ts): connect to the uri= word's
// socket, take the broker's handshake byte, ask attr.get rank, then one job-list.list of uid 1's
// running jobs on that rank (daemon: the benchmark's job owner), and writes the result line on
// the reply descriptor. No user lookup, no checks of the answers, no deadline, no error path:
// what flux-pam account takes above it is its own code, not the broker's or the runtime's.

import { encodeRequest, payloadText, StreamReader } from "../src/flux/message";

const RUN = 16;
const REPLY_FD = 3;

async function main(): Promise<void> {
  const uri = process.argv.find((a) => a.startsWith("uri="))!.slice("uri=".length);
  const reader = new StreamReader();
  const waiting = new Map<number, (payload: { [key: string]: unknown }) => void>();
  let handshake = false;
  const socket = await Bun.connect({
    unix: uri.replace(/^local:\/\//, ""),
    socket: {
      data(_s, bytes) {
        const rest = handshake ? bytes : bytes.subarray(1);
        handshake = true;
        for (const m of reader.push(rest)) waiting.get(m.aux2)?.(JSON.parse(payloadText(m.payload!)));
      },
    },
  });
  let tag = 1;
  const rpc = (topic: string, payload: object) =>
    new Promise<{ [key: string]: unknown }>((resolve) => {
      waiting.set(tag, resolve);
      socket.write(encodeRequest(topic, tag++, JSON.stringify(payload)));
    });
  const { value: rank } = await rpc("attr.get", { name: "rank" });
  const { jobs } = await rpc("job-list.list", {
    max_entries: 0,
    attrs: ["userid", "ranks", "state"],
    constraint: { and: [{ userid: [1] }, { ranks: [rank] }, { states: [RUN] }] },
  });
  socket.terminate();
  require("node:fs").writeSync(REPLY_FD, (jobs as unknown[]).length > 0 ? "result owner\n" : "result deny\n");
}

main();
