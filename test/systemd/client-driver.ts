// Test driver, compiled like flux-pam and run inside the systemd container: one call of the systemd
// client per run, the outcome as one JSON line ({ok, result} or {ok: false, error}).

import { cgroup2Mount, cgroupOfPid, pidsInCgroup } from "../../src/node/cgroup";
import { SystemBus } from "../../src/systemd/bus";
import { lingerEnabled } from "../../src/systemd/logind";
import { SystemdClient } from "../../src/systemd/manager";

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

function out(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

function errorJson(e: unknown): Json {
  if (!(e instanceof Error)) return { name: "unknown", message: String(e) };
  const fields: { [k: string]: Json } = { name: e.name, message: e.message };
  for (const [k, v] of Object.entries(e)) if (typeof v === "string" || typeof v === "number") fields[k] = v;
  return fields;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}

async function main(args: string[]): Promise<unknown> {
  const [cmd, ...a] = args;
  const arg = (i: number): string => {
    const v = a[i];
    if (v === undefined) throw new Error(`${cmd}: missing argument ${i + 1}`);
    return v;
  };
  const withClient = async <T>(f: (sd: SystemdClient) => Promise<T>): Promise<T> => {
    const sd = await SystemdClient.connect();
    try {
      return await f(sd);
    } finally {
      await sd.close();
    }
  };
  switch (cmd) {
    case "scope": {
      // Put PID into a new scope; read its cgroup the moment the call returns.
      const pid = Number(arg(2));
      return withClient(async (sd) => {
        const done = await sd.startScope({ name: arg(0), slice: arg(1), pids: [pid] });
        return { done, cgroup: cgroupOfPid(pid) };
      });
    }
    case "scope-self": {
      // What sshd does: put ourselves in the scope, then fork the session's shell. The child must
      // start inside the scope; it would not if we answered before the job was done.
      return withClient(async (sd) => {
        const done = await sd.startScope({ name: arg(0), slice: arg(1), pids: [process.pid] });
        const child = Bun.spawnSync(["cat", "/proc/self/cgroup"]).stdout.toString();
        return { done, self: cgroupOfPid("self"), child: child.split("\n").find((l) => l.startsWith("0::"))?.slice(3) };
      });
    }
    case "set":
      return withClient((sd) => sd.setSliceProperties(arg(0), JSON.parse(arg(1)) as Record<string, string>));
    case "props":
      return withClient((sd) => sd.unitProperties(arg(0), a[1] ? { names: a.slice(1) } : {}));
    case "state":
      return withClient((sd) => sd.unitState(arg(0)));
    case "start":
      return withClient((sd) => sd.startUnit(arg(0), a[1] ? { timeoutMs: Number(a[1]) } : {}));
    case "stop":
      return withClient((sd) => sd.stopUnit(arg(0), a[1] ? { timeoutMs: Number(a[1]) } : {}));
    case "kill":
      return withClient((sd) => sd.killUnit(arg(0), Number(arg(1))));
    case "revert":
      return withClient((sd) => sd.revertUnit(arg(0)));
    case "status":
      return withClient(async (sd) => (await sd.unitStatus(arg(0))) ?? null);
    case "active":
      return withClient((sd) => sd.unitActiveState(arg(0)));
    case "enqueue-stop":
      return withClient((sd) => sd.enqueueStop(arg(0)));
    case "linger":
      return withClient((sd) => sd.linger({ name: arg(0), uid: Number(arg(1)) }));
    case "linger-no-bus":
      return lingerEnabled({ name: arg(0), uid: Number(arg(1)) });
    case "pids":
      return { mount: cgroup2Mount(), pids: pidsInCgroup(arg(0), a.slice(1)) };
    case "silent-bus": {
      // A socket that accepts and never answers: the connect deadline must fire.
      const path = `/tmp/silent-${process.pid}.sock`;
      const server = Bun.listen({ unix: path, socket: { data() {} } });
      try {
        const t0 = performance.now();
        await SystemBus.connect({ address: `unix:path=${path}`, timeoutMs: Number(arg(0)) }).then(
          (b) => b.close(),
          (e: unknown) => {
            throw Object.assign(e as Error, { elapsedMs: Math.round(performance.now() - t0) });
          },
        );
        return "connected?!";
      } finally {
        server.stop(true);
      }
    }
    case "bench": {
      // One of each call kind on one connection, for the report: ms per call.
      const uid = Number(arg(0));
      const slice = `user-${uid}.slice`;
      const [sd, connect] = await timed(() => SystemdClient.connect());
      try {
        const sleeper = Bun.spawn(["sleep", "60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
        const ms: Record<string, number> = { connect };
        ms.startScope = (await timed(() => sd.startScope({ name: `flux-pam-bench-${sleeper.pid}.scope`, slice, pids: [sleeper.pid] })))[1];
        ms.startScopeSecond = (await timed(() => sd.startScope({ name: `flux-pam-bench2-${sleeper.pid}.scope`, slice, pids: [sleeper.pid] })))[1];
        ms.setSliceProperties = (await timed(() => sd.setSliceProperties(slice, { AllowedCPUs: "0", DevicePolicy: "closed", DeviceAllow: "/dev/null rw" })))[1];
        ms.unitProperties = (await timed(() => sd.unitProperties(slice)))[1];
        ms.unitState = (await timed(() => sd.unitState(slice)))[1];
        ms.linger = (await timed(() => sd.linger({ name: "nobody", uid: 65534 })))[1];
        ms.startUserService = (await timed(() => sd.startUnit(`user@${uid}.service`)))[1];
        ms.stopUserService = (await timed(() => sd.stopUnit(`user@${uid}.service`)))[1];
        ms.killUnit = (await timed(() => sd.killUnit(`flux-pam-bench2-${sleeper.pid}.scope`, 9)))[1];
        ms.revertUnit = (await timed(() => sd.revertUnit(slice)))[1];
        const [, close] = await timed(() => sd.close());
        ms.close = close;
        for (const k of Object.keys(ms)) ms[k] = Math.round(ms[k]! * 10) / 10;
        return ms;
      } finally {
        await sd.close();
      }
    }
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

main(process.argv.slice(2)).then(
  (result) => {
    process.stdout.write(`${out({ ok: true, result: result ?? null })}\n`);
    process.exit(0);
  },
  (e: unknown) => {
    process.stdout.write(`${out({ ok: false, error: errorJson(e) })}\n`);
    process.exit(1);
  },
);
