// Reading PAM service files as libpam does: comments, continuations, controls, includes.

import { describe, expect, test } from "bun:test";
import { type PamLoader, actionFor, expandService, logicalLines, parsePamFile, where, words } from "../../src/audit/pam-conf";

function loader(files: Record<string, string>): PamLoader {
  return (name) => {
    const path = name.startsWith("/") ? name : `/etc/pam.d/${name}`;
    const text = files[path];
    return text === undefined ? undefined : { path, text };
  };
}

describe("logical lines", () => {
  test("comments and blank lines are skipped; a comment ends the line it is on", () => {
    expect(logicalLines("# top\n\naccount required pam_unix.so # why\n  session optional pam_env.so\n")).toEqual([
      { line: 3, text: "account required pam_unix.so " },
      { line: 4, text: "  session optional pam_env.so" },
    ]);
  });

  test("a backslash at the end joins the next line, skipping blank and comment lines; the first line's number is kept", () => {
    expect(logicalLines("session requisite \\\n# note\n\n   pam_flux.so debug\naccount required pam_deny.so")).toEqual([
      { line: 1, text: "session requisite     pam_flux.so debug" },
      { line: 5, text: "account required pam_deny.so" },
    ]);
  });
});

describe("words", () => {
  test("the bracket control keeps its brackets and spaces", () => {
    expect(words("account [success=1 default=ignore] pam_unix.so quiet")).toEqual(["account", "[success=1 default=ignore]", "pam_unix.so", "quiet"]);
  });

  test("a bracketed argument loses its brackets, and \\] stands for ]", () => {
    expect(words("session required pam_exec.so [a b\\]c] d")).toEqual(["session", "required", "pam_exec.so", "a b]c", "d"]);
  });
});

describe("lines", () => {
  test("types and controls, -type, include, substack and @include", () => {
    const lines = parsePamFile(
      "-Session Optional pam_systemd.so\naccount include common-account\nauth substack system-auth\n@include common-session\nsession [default=die ignore=ignore] pam_flux.so debug\n",
      "/etc/pam.d/x",
    );
    expect(lines.map((l) => (l.kind === "module" ? [l.kind, l.type, l.dash, l.control, l.module, l.args] : l.kind === "include" ? [l.kind, l.type, l.file] : l.kind === "include-all" ? [l.kind, l.file] : [l.kind]))).toEqual([
      ["module", "session", true, { kind: "keyword", word: "optional" }, "pam_systemd.so", []],
      ["include", "account", "common-account"],
      ["include", "auth", "system-auth"],
      ["include-all", "common-session"],
      ["module", "session", false, { kind: "actions", text: "[default=die ignore=ignore]", actions: new Map([["default", "die"], ["ignore", "ignore"]]) }, "pam_flux.so", ["debug"]],
    ]);
  });

  test("an unknown type or control is a bad line that says why", () => {
    const [a, b] = parsePamFile("sesion requisite pam_flux.so\nsession requird pam_flux.so\n", "/etc/pam.d/x");
    expect(a).toMatchObject({ kind: "bad", why: 'unknown type "sesion"', at: { file: "/etc/pam.d/x", line: 1 } });
    expect(b).toMatchObject({ kind: "bad", why: 'unknown control "requird"', at: { line: 2 } });
  });
});

describe("expanding a service", () => {
  const files = {
    "/etc/pam.d/sshd": "@include common-auth\naccount include common-account\nsession requisite pam_flux.so\n@include common-session\n",
    "/etc/pam.d/common-auth": "auth required pam_unix.so\n",
    "/etc/pam.d/common-account": "account required pam_unix.so\nsession required pam_never.so\n",
    "/etc/pam.d/common-session": "session optional pam_systemd.so\n",
  };

  test("includes are followed in place; `include` takes only the lines of its own type", () => {
    const s = expandService("sshd", loader(files))!;
    expect(s.entries.map((e) => `${e.type} ${e.module}`)).toEqual(["auth pam_unix.so", "account pam_unix.so", "session pam_flux.so", "session pam_systemd.so"]);
    expect([...s.included]).toEqual(["/etc/pam.d/common-auth", "/etc/pam.d/common-account", "/etc/pam.d/common-session"]);
  });

  test("a line brought in by an include says where it is and which include brought it", () => {
    const s = expandService("sshd", loader(files))!;
    expect(where(s.entries.at(-1)!.at)).toBe("/etc/pam.d/common-session:1 (via /etc/pam.d/sshd:4)");
  });

  test("a missing include and an include loop are problems, not crashes", () => {
    const s = expandService("a", loader({ "/etc/pam.d/a": "@include b\n@include gone\n", "/etc/pam.d/b": "@include a\n" }))!;
    expect(s.problems.map((p) => p.what)).toContain("includes gone, which does not exist");
    expect(s.problems.map((p) => p.what)).toContain("includes /etc/pam.d/a, which is already being included here: a loop");
  });

  test("includes that loop and fan out end at once (each turn would double the stack)", () => {
    const s = expandService("loop", loader({ "/etc/pam.d/loop": "account include loop\naccount include loop\naccount include loop\naccount required pam_unix.so\n" }))!;
    expect(s.problems.map((p) => p.what)).toEqual(Array(3).fill("includes /etc/pam.d/loop, which is already being included here: a loop"));
    expect(s.entries.map((e) => e.module)).toEqual(["pam_unix.so"]);
  });

  test("includes that fan out without a loop stop growing the stack at 10000 lines, said once", () => {
    // f0 includes f1 twice, f1 includes f2 twice, ... : 2^15 lines of pam_unix.so at the bottom
    const files: Record<string, string> = {};
    for (let i = 0; i < 15; i++) files[`/etc/pam.d/f${i}`] = `account include f${i + 1}\naccount include f${i + 1}\n`;
    files["/etc/pam.d/f15"] = "account required pam_unix.so\n";
    const s = expandService("f0", loader(files))!;
    expect(s.entries.length).toBe(10_000);
    expect(s.problems.map((p) => p.what)).toEqual(["the stack grows past 10000 lines with its includes: not expanded further"]);
  });

  test("a service that does not exist expands to nothing", () => {
    expect(expandService("nope", loader({}))).toBeUndefined();
  });
});

describe("controls as actions", () => {
  const [req, brk] = parsePamFile("session requisite pam_flux.so\nsession [success=ok default=bad] pam_x.so\n", "/x").map((l) =>
    l.kind === "module" ? l.control : undefined,
  );

  test("requisite dies on a failure and ignores PAM_IGNORE", () => {
    expect([actionFor(req!, "session_err"), actionFor(req!, "ignore"), actionFor(req!, "success")]).toEqual(["die", "ignore", "ok"]);
  });

  test("a bracket control falls back on default, then on bad", () => {
    expect([actionFor(brk!, "success"), actionFor(brk!, "session_err")]).toEqual(["ok", "bad"]);
  });

  test("bracket names are read as libpam reads them: case-sensitive, known results and actions, or a jump; the keywords in any case", () => {
    const kinds = (line: string) => parsePamFile(line, "/x").map((l) => (l.kind === "module" ? "module" : l.kind === "bad" ? l.why : l.kind));
    expect(kinds("account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so")).toEqual(["module"]);
    expect(kinds("account REQUIRED pam_unix.so")).toEqual(["module"]);
    for (const ctl of ["[SUCCESS=done default=ignore]", "[success=Done]", "[succes=ok]", "[success=skip]"])
      expect(kinds(`account ${ctl} pam_flux.so`)).toEqual([`unknown control "${ctl}"`]);
  });
});
