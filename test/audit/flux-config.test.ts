// The system instance's config files: perilog per rank, [pam], [exec].

import { describe, expect, test } from "bun:test";
import type { Finding } from "../../src/audit/finding";
import { auditFluxConfig } from "../../src/audit/flux-config";
import { GOOD_PAM_TOML, GOOD_PERILOG, withTree } from "./fake-tree";

const DIR = "etc/flux/system/conf.d";
const PERILOG = GOOD_PERILOG;
const PAM = GOOD_PAM_TOML;

function audit(files: Record<string, string>) {
  return withTree(Object.fromEntries(Object.entries(files).map(([k, v]) => [`${DIR}/${k}`, v])), (t) => auditFluxConfig(t.tree));
}
const problems = (fs: Finding[]) => fs.filter((f) => f.severity !== "ok").map((f) => `${f.severity}: ${f.what}`);

describe("the Flux config files", () => {
  test("README's config: all ok, and the keys flux-pam reads", () => {
    const r = audit({ "perilog.toml": PERILOG, "pam.toml": PAM });
    expect(r.findings.map((f) => `${f.severity}: ${f.what}`)).toEqual([
      "ok: /etc/flux/system/conf.d: pam.manage-user-slice = true, kill-user-slice = true, kill-slice-grace-time = 30s",
      "ok: /etc/flux/system/conf.d: perilog.so loaded; prolog and housekeeping per-rank",
      'ok: /etc/flux/system/conf.d: exec.service = "sdexec", sdexec-constrain-resources = true',
    ]);
    expect(r.config?.manageUserSlice).toBe(true);
  });

  test("tables split over files are merged", () => {
    const r = audit({ "a.toml": '[job-manager]\nplugins = [ { load = "/usr/lib/flux/job-manager/plugins/perilog.so" } ]\n', "b.toml": PERILOG.split("\n").slice(2).join("\n"), "c.toml": PAM });
    expect(problems(r.findings)).toEqual([]);
  });

  test("a missing per-rank is an error naming the table", () => {
    const r = audit({ "perilog.toml": PERILOG.replace(/per-rank = true\n$/, ""), "pam.toml": PAM });
    expect(r.findings.filter((f) => f.severity === "error")).toEqual([
      {
        area: "flux-config",
        severity: "error",
        what: "/etc/flux/system/conf.d: job-manager.housekeeping.per-rank is not true: the housekeeping runs on the job's first node only, the other nodes' slices are never torn down",
        fix: "set per-rank = true in [job-manager.housekeeping]",
      },
    ]);
  });

  test("no perilog.so is an error", () => {
    expect(problems(audit({ "perilog.toml": PERILOG.replace("perilog.so", "other.so"), "pam.toml": PAM }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: job-manager.plugins does not load perilog.so: no prolog or housekeeping runs",
    ]);
  });

  test("with manage-user-slice off, missing perilog pieces are only warnings", () => {
    const r = audit({ "pam.toml": "[pam]\nmanage-user-slice = false\n" });
    expect(r.findings.map((f) => f.severity)).toEqual(["ok", "warning", "warning", "warning", "ok"]);
  });

  test("constraints without exec.service = sdexec are an error", () => {
    expect(problems(audit({ "perilog.toml": PERILOG, "pam.toml": PAM.replace('service = "sdexec"\n', "") }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: exec.sdexec-constrain-resources = true but exec.service is not set: jobs do not run under systemd",
    ]);
  });

  test("a custom prolog command is a warning: flux-run-prolog may not run", () => {
    expect(problems(audit({ "perilog.toml": PERILOG.replace("[job-manager.prolog]\n", '[job-manager.prolog]\ncommand = ["x"]\n'), "pam.toml": PAM }).findings)).toEqual([
      "warning: /etc/flux/system/conf.d: job-manager.prolog.command is set: flux-pam prolog runs only if that command runs flux-run-prolog",
    ]);
  });

  test("a file that is not TOML is an error with its line and column", () => {
    const r = audit({ "perilog.toml": PERILOG, "pam.toml": "[pam]\nmanage-user-slice = yes\n" });
    expect(r.findings[0]!.what).toMatch(/^\/etc\/flux\/system\/conf\.d\/pam\.toml:2:21: not valid TOML: /);
    expect(r.findings[0]!.severity).toBe("error");
  });

  test("a key of the wrong type is an error in flux-pam's own words", () => {
    const r = audit({ "perilog.toml": PERILOG, "pam.toml": '[pam]\nmanage-user-slice = "yes"\n' });
    expect(problems(r.findings)).toEqual(["error: /etc/flux/system/conf.d: broker config: pam.manage-user-slice must be true or false"]);
    expect(r.config).toBeUndefined();
  });

  test("no conf.d at all is an error", () => {
    expect(withTree({}, (t) => problems(auditFluxConfig(t.tree).findings))).toEqual([
      "error: no /etc/flux/system/conf.d: the system instance has no config here (pam.manage-user-slice is off)",
    ]);
  });
});
