// pam_flux.so's helper as doctor checks it: as the module checks it before every call.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { auditPam } from "../../src/audit/pam-stack";
import { compiledHelper } from "../../src/audit/pam-helper";
import { Tree } from "../../src/audit/tree";
import { ROOT } from "../e2e/harness";
import { type Entry, GOOD_ACCESS_CONF, GOOD_SSHD, withTree } from "./fake-tree";

const HELPER = "/usr/libexec/flux-pam/flux-pam";
const SO = "lib/x86_64-linux-gnu/security/pam_flux.so";
const NODE: Record<string, Entry> = {
  "etc/pam.d/common-auth": "auth required pam_unix.so\n",
  "etc/pam.d/common-password": "password required pam_unix.so\n",
  "etc/security/access.conf": GOOD_ACCESS_CONF,
  "etc/pam.d/sshd": GOOD_SSHD,
  // a module with its compiled-in path among its strings, as the real one has it
  [SO]: `\x7fELF...\0${HELPER}\0/run/flux-pam\0flux-pam\0`,
  [HELPER.slice(1)]: { text: "#!/bin/sh\n", mode: 0o755 },
};
const helperLines = (node: Record<string, Entry>) =>
  withTree(node, (t) => auditPam(t.tree).findings.filter((f) => f.what.includes("helper")).map((f) => `${f.severity}: ${f.what}`));

describe("pam_flux.so's helper", () => {
  test("the path compiled into the real module is found among its strings", () => {
    const text = readFileSync(join(ROOT, "build/pam_flux.so"), "latin1");
    expect(text).toContain(`${HELPER}\0`);
    expect(compiledHelper(new Tree(ROOT), "/build/pam_flux.so")).toBe(HELPER);
  });

  test("make install's helper is ok, said once for the service's lines", () => {
    expect(helperLines(NODE)).toEqual([`ok: /etc/pam.d/sshd:5: pam_flux.so's helper ${HELPER}: root's, writable by root alone`]);
  });

  test("a helper the module refuses is an error in its words: every call through the line is denied", () => {
    const refused = (node: Record<string, Entry>, why: string) =>
      expect(helperLines({ ...NODE, ...node })[0]).toBe(`error: /etc/pam.d/sshd:5: pam_flux.so refuses its helper (${why}): every account call through this line is denied`);
    refused({ [HELPER.slice(1)]: { text: "", mode: 0o775 } }, `helper ${HELPER} is group/other writable (mode 0775)`);
    refused({ [HELPER.slice(1)]: null }, `helper ${HELPER}: No such file or directory`);
    // a link loop is that helper's refusal, not the end of the PAM audit
    expect(helperLines({ ...NODE, [HELPER.slice(1)]: { link: "flux-pam" } })[0]).toStartWith(`error: /etc/pam.d/sshd:5: pam_flux.so refuses its helper (helper ${HELPER}: `);
    // (the directory first: an entry replaces what was at its path)
    expect(helperLines({ "usr/libexec/flux-pam": { dir: true, mode: 0o777 }, ...NODE })[0]).toBe(
      "error: /etc/pam.d/sshd:5: pam_flux.so refuses its helper (helper directory /usr/libexec/flux-pam is group/other writable (mode 0777)): every account call through this line is denied",
    );
  });

  test("helper= is checked instead of the compiled-in path; a sticky directory is fine", () => {
    const sshd = GOOD_SSHD.replace("pam_flux.so allow-guest-user", "pam_flux.so allow-guest-user helper=/opt/site/flux-pam");
    expect(helperLines({ ...NODE, "etc/pam.d/sshd": sshd, "opt/site": { dir: true, mode: 0o1777 }, "opt/site/flux-pam": { text: "", mode: 0o755 } })[0]).toBe(
      "ok: /etc/pam.d/sshd:5: pam_flux.so's helper /opt/site/flux-pam (helper=): root's, writable by root alone",
    );
  });

  test("an image without the module (doctor --root) says nothing of it", () => {
    expect(helperLines({ ...NODE, [SO]: null })).toEqual([]);
  });
});
