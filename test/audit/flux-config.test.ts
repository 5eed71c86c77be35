// The system instance's config files, held to what flux-core 0.88 accepts: perilog, housekeeping,
// the IMP, the systemd modules, root's owner role, and the [pam] / [exec] keys flux-pam reads.

import { describe, expect, test } from "bun:test";
import type { Finding } from "../../src/audit/finding";
import { auditFluxConfig } from "../../src/audit/flux-config";
import { type Entry, GOOD_FLUX_TOML, withTree } from "./fake-tree";

const DIR = "etc/flux/system/conf.d";
const GOOD = GOOD_FLUX_TOML;
const IMP: Record<string, Entry> = { "usr/libexec/flux/flux-imp": { text: "", mode: 0o4755 } };

function audit(files: Record<string, string>, extra: Record<string, Entry> = IMP, owner?: number) {
  const entries = { ...extra, ...Object.fromEntries(Object.entries(files).map(([k, v]) => [`${DIR}/${k}`, v])) };
  return withTree(entries, (t) => auditFluxConfig(t.tree, owner === undefined ? {} : { owner }));
}
const problems = (fs: Finding[]) => fs.filter((f) => f.severity !== "ok").map((f) => `${f.severity}: ${f.what}`);
/** The README's file without the line that starts with `prefix` (it must be there). */
function without(prefix: string, text = GOOD): string {
  const lines = text.split("\n");
  const i = lines.findIndex((l) => l.startsWith(prefix));
  if (i < 0) throw new Error(`not in the config: ${prefix}`);
  return lines.filter((_, j) => j !== i).join("\n");
}
/** The README's file with one text replaced (it must be there). */
function edit(from: string, to: string, text = GOOD): string {
  if (!text.includes(from)) throw new Error(`not in the config: ${from}`);
  return text.replace(from, to);
}

describe("the Flux config files", () => {
  test("README's config: every finding ok, and the keys flux-pam reads", () => {
    const r = audit({ "pam.toml": GOOD });
    expect(r.findings.map((f) => `${f.severity}: ${f.what}`)).toEqual([
      "ok: /etc/flux/system/conf.d: pam.manage-user-slice = true, kill-user-slice = true, kill-slice-grace-time = 30s",
      "ok: /etc/flux/system/conf.d: perilog.so loaded, prolog per-rank; prolog and housekeeping run through /usr/libexec/flux/flux-imp run",
      "ok: exec.imp /usr/libexec/flux/flux-imp: setuid root",
      'ok: /etc/flux/system/conf.d: exec.service = "sdexec", sdexec-constrain-resources = true, systemd.enable = true',
      "ok: /etc/flux/system/conf.d: access.allow-root-owner = true: the hooks (run as root) are an owner of the instance",
    ]);
    expect(r.config).toMatchObject({ manageUserSlice: true, constrainResources: true, allowRootOwner: true, allowGuestUser: true });
    expect(r.imp).toBe("/usr/libexec/flux/flux-imp");
  });

  test("a file whose name starts with a dot is not read (flux-core globs *.toml)", () => {
    const r = audit({ "pam.toml": GOOD, ".pam.toml.swp.toml": "[job-manager.housekeeping]\nper-rank = true\n" });
    expect(problems(r.findings)).toEqual([]);
  });

  test("tables split over files are merged key by key, as flux-core merges them", () => {
    const at = GOOD.indexOf("[job-manager]");
    const r = audit({ "a.toml": GOOD.slice(0, at), "b.toml": GOOD.slice(at).replace("per-rank = true", ""), "c.toml": "[job-manager.prolog]\nper-rank = true\n" });
    expect(problems(r.findings)).toEqual([]);
  });

  test("per-rank in [job-manager.housekeeping] is an error in the broker's words: the instance would not start", () => {
    const r = audit({ "pam.toml": `${GOOD}per-rank = true\n` });
    expect(r.findings.filter((f) => f.severity === "error")).toEqual([
      {
        area: "flux-config",
        severity: "error",
        what:
          '/etc/flux/system/conf.d: job-manager.housekeeping.per-rank is not a key of [job-manager.housekeeping] (it takes command, release-after, use-systemd-unit, exit-on-first-error): the broker refuses the table ("job-manager.housekeeping: 1 object item(s) left unpacked: per-rank") and the instance does not start',
        fix: "correct or remove it in [job-manager.housekeeping] (flux-config-pam(5))",
      },
    ]);
  });

  test("an unknown key of [job-manager.prolog] is an error naming each key", () => {
    expect(problems(audit({ "pam.toml": edit("per-rank = true", "per-rank = true\nperrank = true\ntimeoutt = \"1m\"") }).findings)).toEqual([
      'error: /etc/flux/system/conf.d: job-manager.prolog.perrank, job-manager.prolog.timeoutt are not keys of [job-manager.prolog] (it takes command, timeout, kill-timeout, per-rank, cancel-on-exception, exit-on-first-error): the broker refuses the table ("[job-manager.prolog]: 2 object item(s) left unpacked: perrank, timeoutt") and the instance does not start',
    ]);
  });

  test("a key of the wrong type is an error quoting jansson", () => {
    expect(problems(audit({ "pam.toml": edit("per-rank = true", 'per-rank = "yes"') }).findings)).toEqual([
      'error: /etc/flux/system/conf.d: job-manager.prolog.per-rank must be true or false: the broker refuses the table ("[job-manager.prolog]: Expected true or false, got string") and the instance does not start',
      "error: /etc/flux/system/conf.d: job-manager.prolog.per-rank is not true: the prolog runs on the job's first node only, the other nodes' slices are never set up and their logins are refused",
    ]);
  });

  test("an unknown key of [access] is an error: the connector refuses the whole table", () => {
    expect(problems(audit({ "pam.toml": edit("allow-root-owner = true", "allow-root-owner = true\nallow-guests = true") }).findings)).toEqual([
      'error: /etc/flux/system/conf.d: access.allow-guests is not a key of [access] (it takes allow-guest-user, allow-root-owner, private-mode, roles): the broker refuses the table ("error parsing [access] configuration: 1 object item(s) left unpacked: allow-guests") and the instance does not start',
    ]);
  });

  test("an unknown key of [pam] is only a warning: flux-pam ignores it", () => {
    expect(problems(audit({ "pam.toml": edit("kill-user-slice = true", "kill-user-slice = true\nkill-slice = true") }).findings)).toEqual([
      "warning: /etc/flux/system/conf.d: pam.kill-slice is not a key of [pam] (it takes manage-user-slice, kill-user-slice, kill-slice-grace-time, debug): flux-pam ignores it",
    ]);
  });

  test("without per-rank the prolog is an error", () => {
    expect(problems(audit({ "pam.toml": edit("per-rank = true", "") }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: job-manager.prolog.per-rank is not true: the prolog runs on the job's first node only, the other nodes' slices are never set up and their logins are refused",
    ]);
  });

  test("no perilog.so is an error", () => {
    expect(problems(audit({ "pam.toml": edit("perilog.so", "other.so") }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: job-manager.plugins does not load perilog.so: no prolog runs",
    ]);
  });

  test("no [job-manager.housekeeping] is an error: housekeeping is not configured at all", () => {
    expect(problems(audit({ "pam.toml": GOOD.slice(0, GOOD.indexOf("[job-manager.housekeeping]")) }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: no [job-manager.housekeeping]: flux-pam housekeeping never runs",
    ]);
  });

  test("no exec.imp with no command is an error for each table, in the broker's words", () => {
    expect(problems(audit({ "pam.toml": without("imp = ") }).findings)).toEqual([
      'error: /etc/flux/system/conf.d: [job-manager.prolog] has no command and exec.imp is not set: the broker refuses it ("[job-manager.prolog]: no command specified and exec.imp not defined") and the instance does not start',
      'error: /etc/flux/system/conf.d: [job-manager.housekeeping] has no command and exec.imp is not set: the broker refuses it ("job-manager.housekeeping implies IMP but exec.imp is undefined") and the instance does not start',
    ]);
  });

  test("a custom prolog command is a warning, and needs no IMP for that table", () => {
    const text = without("imp = ", edit("per-rank = true", 'per-rank = true\ncommand = ["/usr/local/sbin/prolog"]'));
    expect(problems(audit({ "pam.toml": text }).findings)).toEqual([
      "warning: /etc/flux/system/conf.d: job-manager.prolog.command is set: flux-pam prolog runs only if that command runs flux-run-prolog as root",
      'error: /etc/flux/system/conf.d: [job-manager.housekeeping] has no command and exec.imp is not set: the broker refuses it ("job-manager.housekeeping implies IMP but exec.imp is undefined") and the instance does not start',
    ]);
  });

  test("an IMP that is not there, or not setuid root, is an error", () => {
    expect(problems(audit({ "pam.toml": GOOD }, {}).findings)).toEqual([
      "error: exec.imp /usr/libexec/flux/flux-imp does not exist: every job of another user, every prolog and every housekeeping fails",
    ]);
    expect(problems(audit({ "pam.toml": GOOD }, { "usr/libexec/flux/flux-imp": { text: "", mode: 0o755 } }).findings)).toEqual([
      "error: exec.imp /usr/libexec/flux/flux-imp is not setuid root: it cannot run flux-run-prolog and flux-run-housekeeping as root",
    ]);
  });

  test("constraints without systemd.enable are an error: flux-core's systemd support is off", () => {
    expect(problems(audit({ "pam.toml": edit("enable = true", "enable = false") }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: exec.sdexec-constrain-resources = true but systemd.enable is not true: flux-core's systemd support (sdexec, sdexec-mapper) is off, so jobs are not run under systemd and the prolog cannot map their resources",
    ]);
  });

  test("constraints without exec.service = sdexec are an error", () => {
    expect(problems(audit({ "pam.toml": without("service = ") }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: exec.sdexec-constrain-resources = true but exec.service is not set: jobs do not run under systemd",
    ]);
  });

  test("no allow-root-owner with constraints is an error: every prolog is refused the job's R", () => {
    expect(problems(audit({ "pam.toml": edit("allow-root-owner = true", "") }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: access.allow-root-owner is not true: the hooks run as root, which the broker treats as a guest, so it refuses them the job's R (job-info.lookup: EPERM): every prolog fails and drains the node",
    ]);
  });

  test("no allow-root-owner with private-mode is an error even without constraints", () => {
    const text = edit("sdexec-constrain-resources = true", "sdexec-constrain-resources = false", edit("allow-root-owner = true", "private-mode = true"));
    expect(problems(audit({ "pam.toml": text }).findings)).toEqual([
      "error: /etc/flux/system/conf.d: access.allow-root-owner is not true: the hooks run as root, which the broker treats as a guest, so it refuses them every job but root's (access.private-mode): housekeeping would tear down slices of running jobs, so the hooks refuse to run",
    ]);
  });

  test("no allow-root-owner without constraints or private-mode is a warning", () => {
    const text = edit("sdexec-constrain-resources = true", "sdexec-constrain-resources = false", edit("allow-root-owner = true", ""));
    expect(problems(audit({ "pam.toml": text }).findings)).toEqual([
      "warning: /etc/flux/system/conf.d: access.allow-root-owner is not true: the hooks run as root, a guest of the instance; they work only while exec.sdexec-constrain-resources and access.private-mode are off",
    ]);
  });

  test("an instance run by root needs no allow-root-owner", () => {
    const r = audit({ "pam.toml": edit("allow-root-owner = true", "") }, IMP, 0);
    expect(problems(r.findings)).toEqual([]);
    expect(r.findings.at(-1)!.what).toBe("/etc/flux/system/conf.d: the instance runs as root: the hooks are its owner");
  });

  test("with manage-user-slice off, missing hook pieces are only warnings", () => {
    const r = audit({ "pam.toml": "[pam]\nmanage-user-slice = false\n" }, {});
    expect(r.findings.map((f) => f.severity)).toEqual(["ok", "warning", "warning", "warning", "ok", "warning"]);
  });

  test("a file that is not TOML is an error with its line and column", () => {
    const r = audit({ "pam.toml": GOOD, "zz.toml": "[pam]\nmanage-user-slice = yes\n" });
    expect(r.findings[0]!.what).toMatch(/^\/etc\/flux\/system\/conf\.d\/zz\.toml:2:21: not valid TOML: /);
    expect(r.findings[0]!.severity).toBe("error");
  });

  test("a key of the wrong type is an error in flux-pam's own words", () => {
    const r = audit({ "pam.toml": edit("manage-user-slice = true", 'manage-user-slice = "yes"') });
    expect(problems(r.findings)).toEqual(["error: /etc/flux/system/conf.d: broker config: pam.manage-user-slice must be true or false"]);
    expect(r.config).toBeUndefined();
  });

  test("no conf.d at all is an error", () => {
    expect(withTree({}, (t) => problems(auditFluxConfig(t.tree).findings))).toEqual([
      "error: no /etc/flux/system/conf.d: the system instance has no config here (pam.manage-user-slice is off)",
    ]);
  });
});
