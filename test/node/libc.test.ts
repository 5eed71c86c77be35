// writeAll: all of the bytes, through a pipe left non-blocking and full (EAGAIN), or a clear error
// when nobody reads it. A FIFO stands in for the pipe pam_exec or a shell hands us.

import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, constants, openSync } from "node:fs";
import { join } from "node:path";
import { writeAll } from "../../src/node/libc";
import { tempDir } from "../e2e/harness";

const dir = tempDir();
afterAll(() => dir.remove());

/** A FIFO opened read-write and non-blocking: a full pipe answers EAGAIN, as one set O_NONBLOCK does. */
function fifo(name: string): { path: string; fd: number } {
  const path = join(dir.path, name);
  Bun.spawnSync(["mkfifo", path]);
  return { path, fd: openSync(path, constants.O_RDWR | constants.O_NONBLOCK) };
}

const MIB = new Uint8Array(1 << 20).fill(0x61); // far more than a pipe holds (64 KiB)

describe("writeAll", () => {
  test("a full non-blocking pipe is waited on (asleep, in poll) until its reader takes everything", async () => {
    const { path, fd } = fifo("slow");
    // The reader starts late: every write past the pipe's 64 KiB answers EAGAIN until then.
    const reader = Bun.spawn(["sh", "-c", `exec 3<"${path}"; sleep 0.3; wc -c <&3`], { stdout: "pipe" });
    await Bun.sleep(50);
    const cpu = process.cpuUsage();
    writeAll(fd, MIB, 5000);
    const used = process.cpuUsage(cpu);
    closeSync(fd);
    expect((await new Response(reader.stdout).text()).trim()).toBe(String(MIB.length));
    // ~250 ms of waiting: a loop that spun on EAGAIN would have spent it on the CPU.
    expect((used.user + used.system) / 1000).toBeLessThan(100);
  });

  test("a reader slower than the wait, but steady, gets everything: the wait is for no progress at all", async () => {
    const { path, fd } = fifo("steady");
    // 64 KiB every 100 ms: 1 MiB takes ~1.6 s, far past a 400 ms wait, yet the pipe never stalls that long.
    const reader = Bun.spawn(
      ["sh", "-c", `exec 3<"${path}"; n=0; while :; do sleep 0.1; c=$(dd bs=65536 count=1 iflag=fullblock <&3 2>/dev/null | wc -c); [ "$c" = 0 ] && break; n=$((n + c)); done; echo $n`],
      { stdout: "pipe" },
    );
    await Bun.sleep(50);
    writeAll(fd, MIB, 400);
    closeSync(fd);
    expect((await new Response(reader.stdout).text()).trim()).toBe(String(MIB.length));
  });

  test("a pipe nobody reads fails after the wait, naming EAGAIN", () => {
    const { fd } = fifo("stuck");
    const t0 = performance.now();
    expect(() => writeAll(fd, MIB, 200)).toThrow(`write to fd ${fd} failed: nobody read it for 200 ms (EAGAIN)`);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    closeSync(fd);
  });

  test("a closed descriptor is an error with its errno", () => {
    expect(() => writeAll(987, new Uint8Array([1]))).toThrow("write to fd 987 failed (errno 9)");
  });
});
