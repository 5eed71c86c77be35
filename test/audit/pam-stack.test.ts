// The PAM stack audit: pam_flux.so in account, first and requisite in session, no pam_systemd.so, known options.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Finding } from "../../src/audit/finding";
import { PAM_FLUX_OPTIONS, auditPam, optionProblem } from "../../src/audit/pam-stack";
import { ROOT } from "../e2e/harness";
import { pamExamples } from "./doc-snippets";
import { GOOD_ACCESS_CONF, GOOD_SSHD, withTree } from "./fake-tree";

const COMMON = {
  "etc/pam.d/common-auth": "auth required pam_unix.so\n",
  "etc/pam.d/common-password": "password required pam_unix.so\n",
  "etc/security/access.conf": GOOD_ACCESS_CONF,
};

function audit(sshd: string, more: Record<string, string> = {}, manageUserSlice?: boolean): Finding[] {
  return withTree({ ...COMMON, "etc/pam.d/sshd": sshd, ...more }, (t) => auditPam(t.tree, { manageUserSlice }).findings);
}

const problems = (fs: Finding[]) => fs.filter((f) => f.severity !== "ok").map((f) => `${f.severity}: ${f.what}`);

describe("pam_exec running flux-pam", () => {
  const exec = "account required pam_exec.so quiet stdout /usr/libexec/flux-pam/flux-pam account\n";

  test("after pam_env user_readenv=1 it is an error: the user fills the environment Bun reads", () => {
    const sshd = `auth required pam_env.so user_readenv=1\nauth required pam_unix.so\naccount required pam_unix.so\n${exec}`;
    expect(problems(audit(sshd))).toEqual([
      "error: /etc/pam.d/sshd:4: pam_exec.so runs flux-pam with the PAM environment, which /etc/pam.d/sshd:1 (pam_env user_readenv=1) lets the user fill: BUN_OPTIONS there runs their code as root",
    ]);
  });

  test("in the session stack it is an error", () => {
    const sshd = `account required pam_unix.so\n${exec}session required pam_exec.so /usr/libexec/flux-pam/flux-pam session-open\n`;
    expect(problems(audit(sshd))[0]).toStartWith("error: /etc/pam.d/sshd:3: session ... pam_exec.so ... flux-pam:");
  });
});

describe("account lines whose success ends the stack before pam_flux.so's answer counts", () => {
  const stack = (line: string) => `account required pam_unix.so\n${line}\naccount sufficient pam_flux.so\naccount required pam_deny.so\n`;
  const noDenyAll =
    'error: /etc/pam.d/sshd:2: account sufficient pam_access.so: /etc/security/access.conf has no "-:ALL:ALL" rule, and pam_access admits every user no rule names: anyone /etc/pam.d/sshd authenticates logs in, job or not';

  test("pam_access.so with Debian's stock access.conf (comments only) is an error: it admits everyone", () => {
    // (real libpam: pamtester's acct_mgmt of any user succeeds through "sufficient pam_access.so" then "required pam_deny.so")
    expect(problems(audit(stack("account sufficient pam_access.so"), { "etc/security/access.conf": "# Login access control table.\n#+:root:ALL\n" }))).toEqual([noDenyAll]);
  });

  test("pam_access.so without its rules file is an error, and a -:ALL:ALL in a comment does not count", () => {
    expect(problems(withTree({ ...COMMON, "etc/security/access.conf": null, "etc/pam.d/sshd": stack("account sufficient pam_access.so") }, (t) => auditPam(t.tree).findings))).toEqual([noDenyAll]);
    expect(problems(audit(stack("account sufficient pam_access.so"), { "etc/security/access.conf": "+:root:ALL\n# -:ALL:ALL\n" }))).toEqual([noDenyAll]);
  });

  test("pam_access.so whose rules end by denying everyone else is fine: in access.conf, in access.d, or in its accessfile=", () => {
    expect(problems(audit(stack("account sufficient pam_access.so"), { "etc/security/access.conf": "+ : root : ALL\n - : ALL : ALL \n" }))).toEqual([]);
    expect(problems(audit(stack("account sufficient pam_access.so"), { "etc/security/access.conf": "+:root:ALL\n", "etc/security/access.d/99-rest.conf": "-:ALL:ALL\n" }))).toEqual([]);
    expect(problems(audit(stack("account sufficient pam_access.so accessfile=/etc/security/flux-access.conf"), { "etc/security/flux-access.conf": "+:admins:ALL\n-:ALL:ALL\n" }))).toEqual([]);
    // accessfile= replaces access.conf: its deny-all does not count then
    expect(problems(audit(stack("account sufficient pam_access.so accessfile=/etc/security/flux-access.conf"), { "etc/security/flux-access.conf": "+:admins:ALL\n" }))[0]).toStartWith(
      'error: /etc/pam.d/sshd:2: account sufficient pam_access.so: /etc/security/flux-access.conf has no "-:ALL:ALL" rule',
    );
  });

  test("another field separator is said, not judged", () => {
    expect(problems(audit(stack("account sufficient pam_access.so fieldsep=|")))).toEqual([
      "warning: /etc/pam.d/sshd:2: account sufficient pam_access.so uses another field separator: whether its rules deny everyone they do not admit was not checked",
    ]);
  });

  test("pam_unix.so, pam_localuser.so or pam_permit.so as sufficient (or [success=done]) is an error: it admits whoever it knows", () => {
    expect(problems(audit(stack("account sufficient pam_unix.so")))).toEqual([
      "error: /etc/pam.d/sshd:2: account sufficient pam_unix.so: its success ends the account stack, and it succeeds for every user whose account has not expired: they log in, job or not",
    ]);
    expect(problems(audit(stack("account [success=done default=ignore] pam_localuser.so")))).toEqual([
      "error: /etc/pam.d/sshd:2: account [success=done default=ignore] pam_localuser.so: its success ends the account stack, and it succeeds for every user in /etc/passwd: they log in, job or not",
    ]);
    // after pam_flux.so, before the denial: the same way in
    const after = "account required pam_unix.so\naccount sufficient pam_flux.so\naccount sufficient pam_permit.so\naccount required pam_deny.so\n";
    expect(problems(audit(after))).toEqual([
      "error: /etc/pam.d/sshd:3: account sufficient pam_permit.so: its success ends the account stack, and it succeeds for every user: they log in, job or not",
    ]);
  });

  test("any other module that can end the stack is a warning to check it by hand; one after the denial is no way in", () => {
    expect(problems(audit(stack("account sufficient pam_sss.so")))).toEqual([
      "warning: /etc/pam.d/sshd:2: account sufficient pam_sss.so: its success ends the account stack before pam_flux.so's answer counts: whoever it admits logs in without a job",
    ]);
    expect(problems(audit("account required pam_unix.so\naccount sufficient pam_flux.so\naccount required pam_deny.so\naccount sufficient pam_permit.so\n"))).toEqual([]);
  });
});

describe("the documents' PAM examples", () => {
  const examples = pamExamples();
  test("there are some: README's, and pam_flux(8)'s three", () => {
    expect(examples.filter((e) => e.doc === "README.md").length).toBeGreaterThanOrEqual(1);
    expect(examples.filter((e) => e.doc === "man/pam_flux.8").length).toBeGreaterThanOrEqual(3);
  });
  for (const [i, e] of examples.entries())
    test(`${e.doc}, example ${i + 1}: no error (with the documents' access.conf)`, () => {
      expect(problems(audit(e.text)).filter((p) => p.startsWith("error"))).toEqual([]);
    });
});

describe("a good stack", () => {
  test("README's stack is one ok line", () => {
    expect(audit(GOOD_SSHD)).toEqual([
      {
        area: "pam",
        severity: "ok",
        what: "/etc/pam.d/sshd: account sufficient pam_flux.so (line 5); session requisite pam_flux.so first (line 8), no pam_systemd.so",
      },
    ]);
  });

  test("the bracket form of requisite is accepted", () => {
    expect(problems(audit(GOOD_SSHD.replace("session  requisite ", "session [success=ok new_authtok_reqd=ok ignore=ignore default=die]")))).toEqual([]);
  });

  test("pam_exec running flux-pam account counts as the account check", () => {
    const sshd = "account required pam_unix.so\naccount required pam_exec.so quiet stdout /usr/libexec/flux-pam/flux-pam account\n";
    expect(audit(sshd)[0]!.what).toBe("/etc/pam.d/sshd: account required flux-pam (pam_exec.so) (line 2); no pam_flux.so in session");
  });
});

describe("the session stack", () => {
  test("pam_flux.so inside a substack is an error: its requisite ends only the substack (include is fine)", () => {
    const account = "account required pam_unix.so\naccount sufficient pam_flux.so\naccount required pam_deny.so\n";
    const fs = { "etc/pam.d/flux-session": "session requisite pam_flux.so\nsession required pam_unix.so\n" };
    expect(problems(audit(`${account}session substack flux-session\nsession required pam_limits.so\n`, fs))).toEqual([
      "error: /etc/pam.d/flux-session:1 (via /etc/pam.d/sshd:4): pam_flux.so is inside the substack of /etc/pam.d/sshd:4: its requisite ends only that substack, and the session modules after it still run before the login is refused",
    ]);
    expect(problems(audit(`${account}session include flux-session\nsession required pam_limits.so\n`, fs))).toEqual([]);
  });

  test("pam_flux.so not first in session is an error naming what runs before it", () => {
    const sshd = GOOD_SSHD.replace("session  requisite   pam_flux.so                   # first in the session stack\n", "").replace(
      "session  required    pam_limits.so\n",
      "session  required    pam_limits.so\nsession  requisite   pam_flux.so\n",
    );
    expect(audit(sshd)).toEqual([
      {
        area: "pam",
        severity: "error",
        what: "/etc/pam.d/sshd:9: pam_flux.so is not the first session module: pam_limits.so (/etc/pam.d/sshd:8) runs before it",
        fix: 'move "session requisite pam_flux.so" above every other session line of /etc/pam.d/sshd',
      },
    ]);
  });

  test("required instead of requisite is an error", () => {
    expect(audit(GOOD_SSHD.replace("session  requisite ", "session  required  "))).toEqual([
      {
        area: "pam",
        severity: "error",
        what: "/etc/pam.d/sshd:8: session required pam_flux.so instead of requisite: when it fails, the other session modules still run before the login is refused",
        fix: 'make it "session requisite pam_flux.so"',
      },
    ]);
  });

  test("pam_systemd.so in the same file is an error", () => {
    expect(audit(`${GOOD_SSHD}session optional pam_systemd.so\n`)).toEqual([
      {
        area: "pam",
        severity: "error",
        what: "/etc/pam.d/sshd:12: pam_systemd.so is in the session stack of /etc/pam.d/sshd with pam_flux.so: logind would move the login out of the job's slice and stop user@UID.service on logout",
        fix: "remove this line from /etc/pam.d/sshd",
      },
    ]);
  });

  test("pam_systemd.so brought in by @include common-session (Debian) is an error naming the include", () => {
    const fs = audit(`${GOOD_SSHD}@include common-session\n`, { "etc/pam.d/common-session": "session required pam_unix.so\n-session optional pam_systemd.so\n" });
    expect(fs).toEqual([
      {
        area: "pam",
        severity: "error",
        what: "/etc/pam.d/common-session:2 (via /etc/pam.d/sshd:12): pam_systemd.so is in the session stack of /etc/pam.d/sshd with pam_flux.so: logind would move the login out of the job's slice and stop user@UID.service on logout",
        fix: "replace the include of /etc/pam.d/common-session in /etc/pam.d/sshd with the lines of it /etc/pam.d/sshd needs, without pam_systemd.so",
      },
    ]);
  });

  test("an @include before pam_flux.so makes its first module come first", () => {
    const sshd = `@include common-session\n${GOOD_SSHD}`;
    expect(problems(audit(sshd, { "etc/pam.d/common-session": "session required pam_unix.so\n" }))).toEqual([
      "error: /etc/pam.d/sshd:9: pam_flux.so is not the first session module: pam_unix.so (/etc/pam.d/common-session:1 (via /etc/pam.d/sshd:1)) runs before it",
    ]);
  });

  test("-session pam_flux.so is a warning: a missing module is skipped silently", () => {
    expect(problems(audit(GOOD_SSHD.replace("session  requisite ", "-session requisite ")))).toEqual([
      'warning: /etc/pam.d/sshd:8: "-session ... pam_flux.so": if the module cannot be loaded the line is skipped and logins are not contained',
    ]);
  });

  test("no pam_flux.so in session is a warning only while manage-user-slice is on", () => {
    const sshd = GOOD_SSHD.replace(/^session  requisite.*\n/m, "");
    expect(problems(audit(sshd, {}, false))).toEqual([]);
    expect(problems(audit(sshd, {}, true))).toEqual([
      "warning: /etc/pam.d/sshd: pam_flux.so is not in the session stack while pam.manage-user-slice is on: these logins are not put into the user's slice",
    ]);
  });
});

describe("the account stack", () => {
  test("sshd without pam_flux.so is an error", () => {
    expect(problems(audit("account required pam_unix.so\n"))).toEqual(["error: /etc/pam.d/sshd: pam_flux.so is not used: anyone sshd authenticates may log in, job or not"]);
  });

  test("pam_flux.so only in session is an error: the session part acts only on what account admitted", () => {
    expect(problems(audit("account required pam_unix.so\nsession requisite pam_flux.so\n"))[0]).toStartWith("error: /etc/pam.d/sshd: pam_flux.so is not in the account stack");
  });

  test("sufficient without pam_deny.so after it, with a module that can succeed, is an error", () => {
    expect(problems(audit(GOOD_SSHD.replace("account  required    pam_deny.so\n", "")))).toEqual([
      'error: /etc/pam.d/sshd:5: account sufficient pam_flux.so is not followed by "account required pam_deny.so": a user it turns away is still admitted by the other account modules',
    ]);
  });

  test("a bracket pam_deny.so denies by what its account function returns (PAM_AUTH_ERR), not by another code", () => {
    const with_ = (ctl: string) => `account required pam_unix.so\naccount sufficient pam_flux.so\naccount ${ctl} pam_deny.so\n`;
    expect(problems(audit(with_("[auth_err=die default=ignore]")))).toEqual([]);
    expect(problems(audit(with_("[acct_expired=bad default=ignore]")))).toEqual([
      'error: /etc/pam.d/sshd:2: account sufficient pam_flux.so is not followed by "account required pam_deny.so": a user it turns away is still admitted by the other account modules',
    ]);
  });

  test("sufficient before Debian's common-account is an error: its pam_deny.so is jumped over", () => {
    const sshd = "account sufficient pam_flux.so\n@include common-account\n";
    const commonAccount = "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\naccount requisite pam_deny.so\naccount required pam_permit.so\n";
    expect(problems(audit(sshd, { "etc/pam.d/common-account": commonAccount }))).toEqual([
      'error: /etc/pam.d/sshd:1: account sufficient pam_flux.so is not followed by "account required pam_deny.so": a user it turns away is still admitted by the other account modules',
    ]);
  });

  test("sufficient as the only account module is a warning: refused only because nothing else said yes", () => {
    expect(problems(audit("account sufficient pam_flux.so\n"))).toEqual([
      'warning: /etc/pam.d/sshd:1: account sufficient pam_flux.so is not followed by "account required pam_deny.so": a user it turns away is refused only because no other module said yes',
    ]);
  });

  test("optional is an error: its answer decides nothing", () => {
    expect(problems(audit(GOOD_SSHD.replace("account  sufficient  pam_flux.so", "account optional pam_flux.so")))).toEqual([
      "error: /etc/pam.d/sshd:5: account optional pam_flux.so: its answer does not decide who logs in",
    ]);
  });
});

describe("options and types", () => {
  test("an unknown option is an error: every call through the line fails", () => {
    expect(problems(audit(GOOD_SSHD.replace("allow-guest-user", "allow-guests")))).toEqual([
      'error: /etc/pam.d/sshd:5: pam_flux.so unknown option "allow-guests": every account call through this line fails (PAM_SYSTEM_ERR)',
    ]);
  });

  test("malformed values are refused as pam_flux.c refuses them", () => {
    expect(["uri=", "lock-dir=run/x", "helper=x", "timeout=0", "timeout=2h", "timeout=5S", "timeout=5s", "timeout=.5", "lock-dir=/x", "debug"].map((a) => [a, optionProblem(a) ?? "ok"])).toEqual([
      ["uri=", "uri= needs a value"],
      ["lock-dir=run/x", "lock-dir= needs an absolute path"],
      ["helper=x", "helper= needs an absolute path"],
      ["timeout=0", 'timeout= needs a duration from 1ms to 1h, not "0"'],
      ["timeout=2h", 'timeout= needs a duration from 1ms to 1h, not "2h"'],
      ["timeout=5S", 'timeout= needs a duration from 1ms to 1h, not "5S"'],
      ["timeout=5s", "ok"],
      ["timeout=.5", "ok"],
      ["lock-dir=/x", "ok"],
      ["debug", "ok"],
    ]);
  });

  test("the option list is the one pam_flux.c's parse_args accepts", () => {
    const c = readFileSync(join(ROOT, "pam/pam_flux.c"), "utf8");
    const inC = [...c.matchAll(/strn?cmp\(a, "([a-z-]+=?)"/g)].map((m) => m[1]!);
    expect([...PAM_FLUX_OPTIONS].sort()).toEqual(inC.sort());
  });

  test("pam_flux.so under auth is an error: it has no auth function", () => {
    expect(problems(audit(`auth required pam_flux.so\n${GOOD_SSHD}`))).toEqual([
      "error: /etc/pam.d/sshd:1: pam_flux.so under auth: it has no auth function, so the line fails (PAM_MODULE_UNKNOWN)",
    ]);
  });
});

describe("which services are audited", () => {
  test("every service using pam_flux.so, not the files only included by others", () => {
    const fs = audit(GOOD_SSHD, {
      "etc/pam.d/login": "@include common-account\n",
      "etc/pam.d/common-account": "account sufficient pam_flux.so\naccount required pam_deny.so\n",
      "etc/pam.d/sshd.dpkg-old": "account optional pam_flux.so\n",
    });
    expect(fs.map((f) => f.what)).toEqual([
      "/etc/pam.d/login: account sufficient pam_flux.so (line 1); no pam_flux.so in session",
      "/etc/pam.d/sshd: account sufficient pam_flux.so (line 5); session requisite pam_flux.so first (line 8), no pam_systemd.so",
    ]);
  });

  test("no /etc/pam.d/sshd is a warning", () => {
    expect(withTree({ "etc/pam.d/other": "auth required pam_deny.so\n" }, (t) => problems(auditPam(t.tree).findings))).toEqual([
      "warning: no /etc/pam.d/sshd: ssh logins were not checked (is sshd installed?)",
    ]);
  });

  test("lock-dir= of the session lines is reported for the lock dir check", () => {
    const sshd = GOOD_SSHD.replace("session  requisite   pam_flux.so", "session  requisite   pam_flux.so lock-dir=/run/other");
    expect(withTree({ ...COMMON, "etc/pam.d/sshd": sshd }, (t) => auditPam(t.tree).lockDirs)).toEqual(["/run/other"]);
  });
});
