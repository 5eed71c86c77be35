// The IMP config: the instance owner may run flux-run-prolog / flux-run-housekeeping with FLUX_* kept.

import { describe, expect, test } from "bun:test";
import { auditImpConfig } from "../../src/audit/imp-config";
import { GOOD_IMP, withTree } from "./fake-tree";

const IMP = GOOD_IMP;
const CMDS = { "usr/libexec/flux/cmd/flux-run-prolog": "", "usr/libexec/flux/cmd/flux-run-housekeeping": "" };

function audit(imp: string, owner = "flux", needed = true) {
  return withTree({ "etc/flux/imp/conf.d/pam.toml": imp, ...CMDS }, (t) => auditImpConfig(t.tree, { owner, needed }));
}

describe("the IMP config", () => {
  test("README's config is ok, and names flux-core's libexec dir", () => {
    const r = audit(IMP);
    expect(r.findings.map((f) => `${f.severity}: ${f.what}`)).toEqual([
      "ok: /etc/flux/imp/conf.d: [run.prolog] lets flux run /usr/libexec/flux/cmd/flux-run-prolog with FLUX_JOB_ID, FLUX_JOB_USERID",
      "ok: /etc/flux/imp/conf.d: [run.housekeeping] lets flux run /usr/libexec/flux/cmd/flux-run-housekeeping with FLUX_JOB_ID, FLUX_JOB_USERID",
    ]);
    expect(r.fluxLibexec).toBe("/usr/libexec/flux");
  });

  test("allowed-environment without FLUX_* is an error naming what is blocked", () => {
    const r = audit(IMP.replace('allowed-environment = [ "FLUX_*" ]', 'allowed-environment = [ "FLUX_JOB_ID" ]'));
    expect(r.findings[0]).toEqual({
      area: "imp",
      severity: "error",
      what: "/etc/flux/imp/conf.d: run.prolog.allowed-environment does not pass FLUX_JOB_USERID: flux-pam prolog cannot tell whose job it is",
      fix: 'allowed-environment = [ "FLUX_*" ] in [run.prolog]',
    });
  });

  test("an instance owner other than flux must be allowed", () => {
    expect(audit(IMP, "fluxsys").findings.filter((f) => f.severity === "error").map((f) => f.what)).toEqual([
      "/etc/flux/imp/conf.d: run.prolog.allowed-users does not include fluxsys (the instance owner): the IMP refuses to run the prolog",
      "/etc/flux/imp/conf.d: run.housekeeping.allowed-users does not include fluxsys (the instance owner): the IMP refuses to run the housekeeping",
    ]);
  });

  test("no [run.housekeeping] is an error; only a warning while manage-user-slice is off", () => {
    const cut = IMP.slice(0, IMP.indexOf("[run.housekeeping]"));
    expect(audit(cut).findings[1]).toMatchObject({ severity: "error", what: "/etc/flux/imp/conf.d: no [run.housekeeping]: the IMP refuses flux-run-housekeeping, so every job's housekeeping fails" });
    expect(audit(cut, "flux", false).findings[1]!.severity).toBe("warning");
  });

  test("a path that is not there is a warning; no path is an error", () => {
    const r = audit(IMP.replace("/usr/libexec/flux/cmd/flux-run-prolog", "/opt/flux/cmd/flux-run-prolog").replace(/path = .*housekeeping"\n/, ""));
    expect(r.findings.map((f) => `${f.severity}: ${f.what}`)).toEqual([
      "warning: /etc/flux/imp/conf.d: run.prolog.path /opt/flux/cmd/flux-run-prolog does not exist",
      "error: /etc/flux/imp/conf.d: run.housekeeping.path is not an absolute path",
    ]);
  });

  test("no IMP conf.d is an error", () => {
    expect(withTree({}, (t) => auditImpConfig(t.tree, { owner: "flux", needed: true }).findings[0]!.what)).toBe(
      "no /etc/flux/imp/conf.d: the IMP runs no prolog or housekeeping",
    );
  });
});
