// The IMP config as flux-imp reads it: the instance owner may run flux-run-prolog /
// flux-run-housekeeping, the [run] table survives the IMP's merge, flux is on the IMP's PATH.

import { describe, expect, test } from "bun:test";
import type { Finding } from "../../src/audit/finding";
import { type ImpOwner, auditImpConfig } from "../../src/audit/imp-config";
import { type Entry, GOOD_IMP, withTree } from "./fake-tree";

const IMP = GOOD_IMP;
const NODE: Record<string, Entry> = {
  "usr/libexec/flux/cmd/flux-run-prolog": "",
  "usr/libexec/flux/cmd/flux-run-housekeeping": "",
  "usr/bin/flux": { text: "", mode: 0o755 },
};
const FLUX: ImpOwner = { name: "flux", source: "broker" };
const CONF = "etc/flux/imp/conf.d";

function auditFiles(files: Record<string, string>, owner = FLUX, needed = true, node = NODE) {
  const entries = { ...node, ...Object.fromEntries(Object.entries(files).map(([k, v]) => [`${CONF}/${k}`, v])) };
  return withTree(entries, (t) => auditImpConfig(t.tree, { owner, needed }));
}
const audit = (imp: string, owner = FLUX, needed = true) => auditFiles({ "imp.toml": imp }, owner, needed);
const lines = (fs: Finding[]) => fs.map((f) => `${f.severity}: ${f.what}`);
const problems = (fs: Finding[]) => lines(fs.filter((f) => f.severity !== "ok"));

describe("the IMP config", () => {
  test("README's config is ok: the [run] tables in force, and flux-core's libexec dir", () => {
    const r = audit(IMP);
    expect(lines(r.findings)).toEqual([
      "ok: in force: [run.prolog], [run.housekeeping] from /etc/flux/imp/conf.d/imp.toml",
      "ok: /etc/flux/imp/conf.d/imp.toml: [run.prolog] lets flux run /usr/libexec/flux/cmd/flux-run-prolog with FLUX_JOB_ID, FLUX_JOB_USERID, FLUX_URI",
      "ok: /etc/flux/imp/conf.d/imp.toml: [run.housekeeping] lets flux run /usr/libexec/flux/cmd/flux-run-housekeeping with FLUX_JOB_ID, FLUX_JOB_USERID, FLUX_URI",
      "ok: /usr/bin/flux: flux-run-prolog and flux-run-housekeeping find flux on the IMP's PATH",
    ]);
    expect(r.fluxLibexec).toBe("/usr/libexec/flux");
  });

  test("FLUX_JOB_ID and FLUX_JOB_USERID pass whatever allowed-environment says; without FLUX_URI it is a warning", () => {
    const r = audit(IMP.replace('allowed-environment = [ "FLUX_*" ]', 'allowed-environment = [ "PATH" ]'));
    expect(problems(r.findings)).toEqual([
      "warning: /etc/flux/imp/conf.d: run.prolog.allowed-environment does not pass FLUX_URI: flux-pam prolog and flux-run-system-scripts ask the default broker, local:///run/flux/local",
    ]);
  });

  test("a later file's [run] replaces an earlier one whole: an error naming both files and what is lost", () => {
    // The site's imp.toml sorts before our pam.toml: its [run.epilog] is gone.
    const r = auditFiles({ "imp.toml": '[run.epilog]\nallowed-users = [ "flux" ]\npath = "/usr/libexec/flux/cmd/flux-run-epilog"\n', "pam.toml": IMP });
    expect(r.findings.filter((f) => f.severity === "error")).toEqual([
      {
        area: "imp",
        severity: "error",
        what: "/etc/flux/imp/conf.d/imp.toml's [run] is replaced whole by /etc/flux/imp/conf.d/pam.toml's: the IMP merges its conf.d one top-level table at a time, so [run.epilog] of /etc/flux/imp/conf.d/imp.toml has no effect",
        fix: "keep every [run.*] table in one file: move them from /etc/flux/imp/conf.d/imp.toml into /etc/flux/imp/conf.d/pam.toml (or the other way round)",
      },
    ]);
    expect(r.findings.find((f) => f.what.startsWith("in force"))!.what).toBe("in force: [run.prolog], [run.housekeeping] from /etc/flux/imp/conf.d/pam.toml");
  });

  test("the other order: the site's later [run] takes ours away, and the hooks' tables are not in force", () => {
    const r = auditFiles({ "pam.toml": IMP, "zz-site.toml": '[run.epilog]\nallowed-users = [ "flux" ]\npath = "/usr/libexec/flux/cmd/flux-run-epilog"\n' });
    expect(problems(r.findings)).toEqual([
      "error: /etc/flux/imp/conf.d/pam.toml's [run] is replaced whole by /etc/flux/imp/conf.d/zz-site.toml's: the IMP merges its conf.d one top-level table at a time, so [run.prolog], [run.housekeeping] of /etc/flux/imp/conf.d/pam.toml have no effect",
      'error: /etc/flux/imp/conf.d: no [run.prolog] in force: the IMP refuses flux-run-prolog ("run: prolog: no configuration found"), so every job\'s prolog fails',
      'error: /etc/flux/imp/conf.d: no [run.housekeeping] in force: the IMP refuses flux-run-housekeeping ("run: housekeeping: no configuration found"), so every job\'s housekeeping fails',
    ]);
  });

  test("other top-level tables of different files do not shadow each other", () => {
    const r = auditFiles({ "exec.toml": '[exec]\nallowed-users = [ "flux" ]\n', "imp.toml": IMP });
    expect(problems(r.findings)).toEqual([]);
  });

  test("an instance owner the broker names must be allowed", () => {
    expect(problems(audit(IMP, { name: "fluxsys", source: "broker" }).findings)).toEqual([
      '/etc/flux/imp/conf.d: run.prolog.allowed-users ["flux"] does not include fluxsys (the instance owner): the IMP refuses to run the prolog ("run: permission denied")',
      '/etc/flux/imp/conf.d: run.housekeeping.allowed-users ["flux"] does not include fluxsys (the instance owner): the IMP refuses to run the housekeeping ("run: permission denied")',
    ].map((w) => `error: ${w}`));
  });

  test("flux.service's User= is believed too; a mere default is only a warning", () => {
    const cut = (o: ImpOwner) => audit(IMP, o).findings.filter((f) => f.what.includes("allowed-users")).map((f) => `${f.severity}: ${f.what}`)[0];
    expect(cut({ name: "fluxsvc", source: "unit" })).toBe(
      `error: /etc/flux/imp/conf.d: run.prolog.allowed-users ["flux"] does not include fluxsvc (flux.service's User=): the IMP refuses to run the prolog ("run: permission denied")`,
    );
    expect(audit(IMP.replaceAll('"flux" ]', '"fluxsvc" ]'), { name: "flux", source: "assumed" }).findings[1]!.severity).toBe("warning");
  });

  test("no [run.housekeeping] is an error; only a warning while manage-user-slice is off", () => {
    const cut = IMP.slice(0, IMP.indexOf("[run.housekeeping]"));
    const find = (needed: boolean) => audit(cut, FLUX, needed).findings.find((f) => f.what.includes("no [run.housekeeping]"))!;
    expect(find(true)).toMatchObject({
      severity: "error",
      what: '/etc/flux/imp/conf.d: no [run.housekeeping] in force: the IMP refuses flux-run-housekeeping ("run: housekeeping: no configuration found"), so every job\'s housekeeping fails',
    });
    expect(find(false).severity).toBe("warning");
  });

  test("a path that is not there, or no path, is an error: the IMP refuses to run it", () => {
    const r = audit(IMP.replace("/usr/libexec/flux/cmd/flux-run-prolog", "/opt/flux/cmd/flux-run-prolog").replace(/path = .*housekeeping"\n/, ""));
    expect(problems(r.findings)).toEqual([
      'error: /etc/flux/imp/conf.d: run.prolog.path /opt/flux/cmd/flux-run-prolog: the IMP refuses to run it ("run: /opt/flux/cmd/flux-run-prolog: No such file or directory"): every prolog fails and the node drains',
      'error: /etc/flux/imp/conf.d: run.housekeeping.path is not an absolute path ("run: housekeeping: path is missing or invalid")',
    ]);
  });

  test("a path the IMP finds insecure is an error in its words: a link, a file others may write, a directory others may write", () => {
    const refused = (node: Record<string, Entry>, why: string) =>
      expect(problems(auditFiles({ "imp.toml": IMP }, FLUX, true, { ...NODE, ...node }).findings)).toEqual([
        `error: /etc/flux/imp/conf.d: run.prolog.path /usr/libexec/flux/cmd/flux-run-prolog: the IMP refuses to run it ("run: /usr/libexec/flux/cmd/flux-run-prolog: ${why}"): every prolog fails and the node drains`,
      ]);
    refused({ "usr/libexec/flux/cmd/flux-run-prolog": { link: "flux-run-prolog.real" }, "usr/libexec/flux/cmd/flux-run-prolog.real": "" }, "symbolic link");
    refused({ "usr/libexec/flux/cmd/flux-run-prolog": { text: "", mode: 0o775 } }, "bad file permissions (0775)");
    refused({ "usr/libexec/flux/cmd/flux-run-prolog": { dir: true } }, "File is not a regular file");
    // (the directory first: an entry replaces what was at its path)
    const wide = { "usr/libexec/flux/cmd": { dir: true as const, mode: 0o777 }, ...NODE };
    expect(problems(auditFiles({ "imp.toml": IMP }, FLUX, true, wide).findings)[0]).toEndWith(
      '("run: /usr/libexec/flux/cmd/flux-run-prolog: parent directory is world-writable without sticky bit"): every prolog fails and the node drains',
    );
    // without pam.manage-user-slice the hooks are not needed: a warning
    expect(problems(auditFiles({ "imp.toml": IMP }, FLUX, false, { ...NODE, "usr/libexec/flux/cmd/flux-run-prolog": { text: "", mode: 0o666 } }).findings)[0]).toStartWith("warning: ");
  });

  test("flux found only outside the IMP's PATH is an error: the runners hand the hooks an empty FLUX_JOB_ID", () => {
    const node = { ...NODE, "usr/bin/flux": null, "opt/flux/bin/flux": { text: "", mode: 0o755 } };
    expect(problems(auditFiles({ "imp.toml": IMP }, FLUX, true, node).findings)).toEqual([
      'error: no flux in the IMP\'s PATH (/usr/sbin:/usr/bin:/sbin:/bin): flux-run-prolog and flux-run-housekeeping cannot run "flux job id", so every hook gets an empty FLUX_JOB_ID and fails (flux-core installed outside /usr?)',
    ]);
  });

  test("flux through a link on the IMP's PATH is found", () => {
    const node = { ...NODE, "usr/bin/flux": null, "opt/flux/bin/flux": { text: "", mode: 0o755 }, "usr/sbin/flux": { link: "/opt/flux/bin/flux" } };
    expect(problems(auditFiles({ "imp.toml": IMP }, FLUX, true, node).findings)).toEqual([]);
  });

  test("no IMP conf.d is an error", () => {
    expect(withTree({}, (t) => auditImpConfig(t.tree, { owner: FLUX, needed: true }).findings[0]!.what)).toBe(
      "no /etc/flux/imp/conf.d: the IMP runs no prolog or housekeeping",
    );
  });
});
