// Every binary a benchmark compares starts from the same page-cache state: read from disk.
//
// Measured: the same bytes, freshly written (a compiler's output, a cp) against read back from disk,
// time 0.88 of a prolog and of an account decision (bench/hooks.ts, 30 pairs, interval 0.84-0.92;
// 60 pairs of account), with 5.6 MiB more peak RSS: pages written land in the page cache in large
// folios, and fault-around then maps more of the binary into each process at each fault. A binary
// just built or copied is in the one state, an older one in the other, so without this a benchmark
// credits a change with how its file was made. Read from disk is what a node sees most of the time
// (after a boot, or once the cache let the file go).

import { $ } from "bun";

/** Drops each file's pages from the page cache (written back first), so the next exec reads it from disk. */
export async function evictFromPageCache(...paths: string[]): Promise<void> {
  await $`sync`;
  // dd's nocache: posix_fadvise(POSIX_FADV_DONTNEED) of the whole file, reading nothing
  for (const p of paths) await $`dd if=${p} iflag=nocache count=0 status=none`;
}
