// Linger of the users with jobs here, or of everyone when nobody can say who has jobs.

import { describe, expect, test } from "bun:test";
import { auditJobUsersLinger, auditLingerFiles } from "../../src/audit/linger";
import { withTree } from "./fake-tree";

describe("linger", () => {
  test("a job user who lingers is an error with loginctl as the fix", () => {
    const fs = auditJobUsersLinger(
      [
        { name: "alice", uid: 1000, linger: { enabled: true, source: "file" } },
        { name: "bob", uid: 1001, linger: { enabled: false, source: "file" } },
      ],
      3,
    );
    expect(fs).toEqual([
      {
        area: "linger",
        severity: "error",
        what: "linger is enabled for alice (uid 1000), who has running jobs here: user@1000.service outlives the jobs, sessions can escape the slice, and alice's next prolog here fails",
        fix: "loginctl disable-linger alice",
      },
    ]);
  });

  test("nobody lingering, or no job users, is ok", () => {
    expect(auditJobUsersLinger([{ name: "bob", uid: 1001, linger: { enabled: false, source: "file" } }], 0)[0]!.what).toBe(
      "no linger for the 1 user with running jobs on rank 0 (file)",
    );
    expect(auditJobUsersLinger([], 2)[0]!.what).toBe("no user has a running job on rank 2: no linger to check now");
  });

  test("from the files, every lingering user but the instance owner is a warning", () => {
    const fs = withTree({ "var/lib/systemd/linger/alice": "", "var/lib/systemd/linger/flux": "" }, (t) => auditLingerFiles(t.tree, "flux", "--root"));
    expect(fs).toEqual([
      {
        area: "linger",
        severity: "warning",
        what: "--root: linger is enabled for alice (/var/lib/systemd/linger/alice): every prolog of alice's jobs on this node fails",
        fix: "remove /var/lib/systemd/linger/alice",
      },
    ]);
  });
});
