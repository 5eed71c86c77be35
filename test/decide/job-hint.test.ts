// The hint line a denied user gets: what it says, how it stays short, what it refuses to show.

import { describe, expect, test } from "bun:test";
import { MAX_HINT, jobHint } from "../../src/decide/job-hint";
import { jobId } from "../../src/flux/jobid";

const job = (n: number, nodelist: string) => ({ id: jobId(BigInt(n)), nodelist });

describe("jobHint()", () => {
  test("one job: where it runs, its id, and where the user is not", () => {
    expect(jobHint("alice", "fluke7", [job(1227286904832, "fluke[12-13]")])).toBe("alice has a running job on fluke[12-13] (ƒZEr9Bmq), not on fluke7");
  });

  test("two and three jobs are all named", () => {
    expect(jobHint("alice", "fluke7", [job(1, "a1"), job(2, "b2")])).toBe("alice has running jobs on a1 (ƒ2) and b2 (ƒ3), not on fluke7");
    expect(jobHint("alice", "n", [job(1, "a1"), job(2, "b2"), job(3, "c3")])).toBe("alice has running jobs on a1 (ƒ2), b2 (ƒ3) and c3 (ƒ4), not on n");
  });

  test("many jobs: as many as fit in MAX_HINT characters, then and N more", () => {
    const jobs = Array.from({ length: 100 }, (_, i) => job(1227286904832 + i, `fluke[${100 + i}-${200 + i}]`));
    const h = jobHint("alice", "fluke7", jobs)!;
    expect(h.length).toBeLessThanOrEqual(MAX_HINT);
    const shown = h.split("(ƒ").length - 1;
    expect(shown).toBeGreaterThan(1);
    expect(h).toEndWith(` and ${100 - shown} more, not on fluke7`);
  });

  test("a first hostlist too long to fit is cut", () => {
    const h = jobHint("alice", "fluke7", [job(5, `n[${Array.from({ length: 200 }, (_, i) => i * 2).join(",")}]`)])!;
    expect(h.length).toBe(MAX_HINT);
    expect(h).toMatch(/^alice has a running job on n\[0,2,4,.*\.\.\. \(ƒ6\), not on fluke7$/);
  });

  test("nothing to say: no jobs, or nothing that is a hostlist", () => {
    expect(jobHint("alice", "fluke7", [])).toBeUndefined();
    expect(jobHint("alice", "fluke7", [job(1, "\u001b]0;owned\u0007"), job(2, "a b"), job(3, "x[1-2")])).toBeUndefined();
  });

  test("a job with a bad nodelist is left out, the others shown", () => {
    expect(jobHint("alice", "fluke7", [job(1, "bad host"), job(2, "good1")])).toBe("alice has a running job on good1 (ƒ3), not on fluke7");
  });

  test("this node's name must be a host name, or no hint at all", () => {
    expect(jobHint("alice", "evil\nname", [job(1, "a1")])).toBeUndefined();
    expect(jobHint("alice", "", [job(1, "a1")])).toBeUndefined();
  });
});
