// sshd must read /etc/pam.d/sshd at all: UsePAM yes, wherever it is set.

import { describe, expect, test } from "bun:test";
import { auditSshd } from "../../src/audit/sshd";
import { withTree } from "./fake-tree";

describe("UsePAM", () => {
  test("set in a file of Include (Debian's sshd_config.d) is found", () => {
    const fs = withTree(
      {
        "etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\n",
        "etc/ssh/sshd_config.d/10-pam.conf": "# site\nUsePAM yes\n",
        "etc/ssh/sshd_config.d/README": "UsePAM no\n",
      },
      (t) => auditSshd(t.tree),
    );
    expect(fs).toEqual([{ area: "sshd", severity: "ok", what: "/etc/ssh/sshd_config.d/10-pam.conf:2: UsePAM yes" }]);
  });

  test("Include files that include each other end at once (each turn would multiply the files read)", () => {
    const loop = "Include /etc/ssh/d/*.conf\n";
    const entries: Record<string, string> = { "etc/ssh/sshd_config": "Include /etc/ssh/d/*.conf\n" };
    for (const n of "abcdefghijklmnop") entries[`etc/ssh/d/${n}.conf`] = loop;
    entries["etc/ssh/d/q.conf"] = `${loop}UsePAM yes\n`;
    const fs = withTree(entries, (t) => auditSshd(t.tree));
    expect(fs).toEqual([{ area: "sshd", severity: "ok", what: "/etc/ssh/d/q.conf:2: UsePAM yes" }]);
  });

  test("the first value wins, as in sshd", () => {
    const fs = withTree({ "etc/ssh/sshd_config": "UsePAM=no\nUsePAM yes\n" }, (t) => auditSshd(t.tree));
    expect(fs[0]).toEqual({
      area: "sshd",
      severity: "error",
      what: "/etc/ssh/sshd_config:1: UsePAM no: sshd never reads /etc/pam.d/sshd, so pam_flux.so limits nothing",
      fix: 'set "UsePAM yes" in /etc/ssh/sshd_config and restart sshd',
    });
  });

  test("not set at all is an error (the default is no); a Match block ends the search", () => {
    const fs = withTree({ "etc/ssh/sshd_config": "Port 22\nMatch User x\n  UsePAM yes\n" }, (t) => auditSshd(t.tree));
    expect(fs[0]!.what).toBe("/etc/ssh/sshd_config: no UsePAM (the default is no): sshd never reads /etc/pam.d/sshd, so pam_flux.so limits nothing");
  });

  test("no sshd_config: nothing to say", () => {
    expect(withTree({}, (t) => auditSshd(t.tree))).toEqual([]);
  });
});
