// The test broker as a process: `bun test/broker/main.ts SOCKET SCENARIO.json [REQUESTS.log]`.
// With a third argument, each request is appended to that file as a JSON line {topic, payload}.
// The scenario file is re-read when it changes, so a test can add and end jobs while it runs.
// Prints "ready" on stdout once listening. Used by the end-to-end tests, the benchmarks and the demo.

import { appendFileSync, readFileSync, rmSync, statSync } from "node:fs";
import { parseJson, stringifyJson } from "../../src/flux/json";
import { startBroker } from "./broker";
import type { Scenario } from "./scenario";

const [socket, file, requestLog] = process.argv.slice(2);
if (!socket || !file) {
  process.stderr.write("usage: main.ts SOCKET SCENARIO.json\n");
  process.exit(2);
}

let cached: { mtime: number; size: number; s: Scenario; checked: number } | undefined;
function load(): Scenario {
  // A stat per request would make this stand-in the bottleneck of a 1000-job benchmark:
  // look at most every 1 ms (a test rewrites the file well before its next process connects).
  const now = performance.now();
  if (cached && now - cached.checked < 1) return cached.s;
  const st = statSync(file!);
  if (!cached || cached.mtime !== st.mtimeMs || cached.size !== st.size)
    cached = { mtime: st.mtimeMs, size: st.size, s: parseJson(readFileSync(file!, "utf8")) as unknown as Scenario, checked: now };
  cached.checked = now;
  return cached.s;
}

rmSync(socket, { force: true });
const broker = startBroker(socket, load(), load, undefined, requestLog ? (r) => appendFileSync(requestLog, `${stringifyJson({ topic: r.topic, ...(r.payload === undefined ? {} : { payload: r.payload }) })}\n`) : undefined);
const stop = () => {
  broker.stop();
  rmSync(socket, { force: true });
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdout.write("ready\n");
