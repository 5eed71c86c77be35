// The prolog.d / housekeeping.d entries that run flux-pam.

import { describe, expect, test } from "bun:test";
import { auditHooks } from "../../src/audit/hooks";
import { type Entry, withTree } from "./fake-tree";

const BINARY = { "usr/libexec/flux-pam/flux-pam": { text: "#!/bin/sh\n", mode: 0o755 } };
const LINKS = {
  "usr/libexec/flux/prolog.d/flux-pam-prolog": { link: "../../flux-pam/flux-pam" },
  "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": { link: "../../flux-pam/flux-pam" },
};

function audit(entries: Record<string, Entry>, needed = true, fluxLibexec?: string) {
  return withTree(entries, (t) => auditHooks(t.tree, { needed, fluxLibexec }).map((f) => `${f.severity}: ${f.what}`));
}

describe("hook entries", () => {
  test("make install's links are ok", () => {
    expect(audit({ ...BINARY, ...LINKS })).toEqual([
      "ok: /usr/libexec/flux/prolog.d/flux-pam-prolog -> /usr/libexec/flux-pam/flux-pam",
      "ok: /usr/libexec/flux/housekeeping.d/flux-pam-housekeeping -> /usr/libexec/flux-pam/flux-pam",
    ]);
  });

  test("an entry in /etc/flux/system/KIND.d runs too (flux-run-system-scripts reads it after flux-core's own)", () => {
    expect(
      audit({
        ...BINARY,
        "etc/flux/system/prolog.d/flux-pam-prolog": { link: "/usr/libexec/flux-pam/flux-pam" },
        "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": LINKS["usr/libexec/flux/housekeeping.d/flux-pam-housekeeping"],
        "usr/libexec/flux/prolog.d": { dir: true },
      }),
    ).toEqual(["ok: /etc/flux/system/prolog.d/flux-pam-prolog -> /usr/libexec/flux-pam/flux-pam", "ok: /usr/libexec/flux/housekeeping.d/flux-pam-housekeeping -> /usr/libexec/flux-pam/flux-pam"]);
  });

  test("one in each directory runs twice: a warning naming both", () => {
    expect(audit({ ...BINARY, ...LINKS, "etc/flux/system/prolog.d/flux-pam-prolog": { link: "/usr/libexec/flux-pam/flux-pam" } })).toContain(
      "warning: /usr/libexec/flux/prolog.d and /etc/flux/system/prolog.d hold 2 entries that run flux-pam: the prolog runs 2 times",
    );
  });

  test("an executable legacy /etc/flux/system/prolog is run instead of /etc/flux/system/prolog.d: an entry there does not run", () => {
    const fs = audit({
      ...BINARY,
      "etc/flux/system/prolog": { text: "#!/bin/sh\n", mode: 0o755 },
      "etc/flux/system/prolog.d/flux-pam-prolog": { link: "/usr/libexec/flux-pam/flux-pam" },
      "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": LINKS["usr/libexec/flux/housekeeping.d/flux-pam-housekeeping"],
    });
    expect(fs.slice(0, 2)).toEqual([
      "error: /etc/flux/system/prolog.d runs flux-pam prolog, but flux-run-prolog skips that directory: /etc/flux/system/prolog exists and is run instead",
      "error: no entry in /usr/libexec/flux/prolog.d (nor /etc/flux/system/prolog.d) runs flux-pam prolog: slices are not constrained and no marker is made, so sessions are refused",
    ]);
    // a legacy file that is not executable is not run: the directory is
    expect(
      audit({
        ...BINARY,
        "etc/flux/system/prolog": { text: "#!/bin/sh\n", mode: 0o644 },
        "etc/flux/system/prolog.d/flux-pam-prolog": { link: "/usr/libexec/flux-pam/flux-pam" },
        "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": LINKS["usr/libexec/flux/housekeeping.d/flux-pam-housekeeping"],
      })[0],
    ).toBe("ok: /etc/flux/system/prolog.d/flux-pam-prolog -> /usr/libexec/flux-pam/flux-pam");
  });

  test("a script that runs flux-pam prolog is ok", () => {
    const fs = audit({
      ...BINARY,
      "usr/libexec/flux/prolog.d/50-pam": { text: "#!/bin/sh\nexec /usr/libexec/flux-pam/flux-pam prolog\n", mode: 0o755 },
      "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": LINKS["usr/libexec/flux/housekeeping.d/flux-pam-housekeeping"],
    });
    expect(fs[0]).toBe("ok: /usr/libexec/flux/prolog.d/50-pam");
  });

  test("the binary linked under another name is an error: it knows its hook only by name", () => {
    const fs = audit({ ...BINARY, ...LINKS, "usr/libexec/flux/prolog.d/flux-pam-prolog": { link: "/usr/libexec/flux/housekeeping.d/flux-pam-housekeeping" }, "usr/libexec/flux/housekeeping.d/50-flux-pam": { link: "../../flux-pam/flux-pam" } });
    expect(fs).toEqual([
      "ok: /usr/libexec/flux/prolog.d/flux-pam-prolog -> /usr/libexec/flux-pam/flux-pam",
      "error: /usr/libexec/flux/housekeeping.d/50-flux-pam runs the flux-pam binary under the name 50-flux-pam: it prints its usage and fails",
      "ok: /usr/libexec/flux/housekeeping.d/flux-pam-housekeeping -> /usr/libexec/flux-pam/flux-pam",
      "warning: /usr/libexec/flux/housekeeping.d has 2 entries that run flux-pam: the housekeeping runs 2 times",
    ]);
  });

  test("a binary that is not executable, or writable by others, is an error", () => {
    expect(audit({ "usr/libexec/flux-pam/flux-pam": { text: "", mode: 0o646 }, ...LINKS }).slice(0, 2)).toEqual([
      "error: /usr/libexec/flux-pam/flux-pam is not executable: flux-run-prolog does not run it",
      "error: /usr/libexec/flux-pam/flux-pam is group/other writable: whoever can write it runs code as root in every prolog",
    ]);
  });

  test("no entry is an error that points at an install under another prefix", () => {
    const fs = audit({ ...BINARY, "usr/local/libexec/flux/prolog.d/flux-pam-prolog": { link: "/usr/libexec/flux-pam/flux-pam" } });
    expect(fs).toEqual([
      "error: no entry in /usr/libexec/flux/prolog.d (nor /etc/flux/system/prolog.d) runs flux-pam prolog: slices are not constrained and no marker is made, so sessions are refused (/usr/local/libexec/flux/prolog.d has one, but flux-run-prolog reads /usr/libexec/flux/prolog.d)",
      "error: no entry in /usr/libexec/flux/housekeeping.d (nor /etc/flux/system/housekeeping.d) runs flux-pam housekeeping: slices are never shrunk or torn down after jobs",
    ]);
  });

  test("flux-core's libexec dir comes from the IMP's path when known", () => {
    expect(audit({ ...BINARY, ...LINKS }, false, "/usr/lib/flux")[0]).toBe("warning: no entry in /usr/lib/flux/prolog.d (nor /etc/flux/system/prolog.d) runs flux-pam prolog: slices are not constrained and no marker is made, so sessions are refused (/usr/libexec/flux/prolog.d has one, but flux-run-prolog reads /usr/lib/flux/prolog.d)");
  });

  test("a dangling link is an error", () => {
    expect(audit({ "usr/libexec/flux/prolog.d/flux-pam-prolog": { link: "../../flux-pam/flux-pam" } })[0]).toBe(
      "error: /usr/libexec/flux/prolog.d/flux-pam-prolog is a link to nothing: flux-pam prolog does not run",
    );
  });
});
