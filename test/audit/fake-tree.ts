// Builds a node's file tree in a temp dir for the audit tests: files, modes, links, directories.

import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Tree } from "../../src/audit/tree";
import { tempDir } from "../e2e/harness";
import { readmeFile } from "./doc-snippets";

/** A file's text, a file with a mode, a symbolic link, a directory, or null: not there. */
export type Entry = string | { text: string; mode: number } | { link: string } | { dir: true; mode?: number } | null;

export interface FakeTree {
  tree: Tree;
  path: string;
  /** adds, replaces or (null) removes entries */
  add(entries: Record<string, Entry>): void;
  remove(): void;
}

export function fakeTree(entries: Record<string, Entry> = {}): FakeTree {
  const d = tempDir("flux-pam-audit-");
  const add = (es: Record<string, Entry>) => {
    for (const [p, e] of Object.entries(es)) {
      const abs = join(d.path, p);
      rmSync(abs, { recursive: true, force: true });
      if (e === null) continue;
      mkdirSync(dirname(abs), { recursive: true });
      if (typeof e === "string") writeFileSync(abs, e, { mode: 0o644 });
      else if ("link" in e) symlinkSync(e.link, abs);
      else if ("dir" in e) {
        mkdirSync(abs, { recursive: true });
        chmodSync(abs, e.mode ?? 0o755); // mkdir's mode is masked by the umask
      } else {
        writeFileSync(abs, e.text);
        chmodSync(abs, e.mode);
      }
    }
  };
  add(entries);
  return { tree: new Tree(d.path), path: d.path, add, remove: d.remove };
}

/** Runs `body` with a fake tree, removed afterwards. */
export function withTree<T>(entries: Record<string, Entry>, body: (t: FakeTree) => T): T {
  const t = fakeTree(entries);
  try {
    return body(t);
  } finally {
    t.remove();
  }
}

/** The stack README.md recommends, with Debian's common files included where they belong. */
export const GOOD_SSHD = `# PAM configuration for the Secure Shell service
@include common-auth
account  required    pam_unix.so
account  sufficient  pam_access.so
account  sufficient  pam_flux.so allow-guest-user
account  required    pam_deny.so

session  requisite   pam_flux.so                   # first in the session stack
session  required    pam_limits.so
session  required    pam_unix.so
@include common-password
`;

/** pam_access's rules as README.md gives them: the administrators, then everyone else denied. */
export const GOOD_ACCESS_CONF = "+:root wheel:ALL\n-:ALL:ALL\n";

/** The system instance's config exactly as README.md gives it. */
export const GOOD_FLUX_TOML = readmeFile("/etc/flux/system/conf.d/pam.toml");

/** The IMP's config exactly as README.md gives it. */
export const GOOD_IMP = readmeFile("/etc/flux/imp/conf.d/imp.toml");

/** A node set up as README.md says, as make install lays it out (the binary a stand-in script). */
export function goodNode(): Record<string, Entry> {
  return {
    "etc/pam.d/common-auth": "auth required pam_unix.so\n",
    "etc/pam.d/common-password": "password required pam_unix.so\n",
    "etc/pam.d/sshd": GOOD_SSHD,
    "etc/security/access.conf": GOOD_ACCESS_CONF,
    "etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
    "etc/flux/system/conf.d/pam.toml": GOOD_FLUX_TOML,
    "etc/flux/imp/conf.d/imp.toml": GOOD_IMP,
    "usr/lib/systemd/system/flux.service": "[Unit]\nDescription=Flux message broker\n[Service]\nUser=flux\nGroup=flux\n",
    "usr/bin/flux": { text: "#!/bin/sh\n", mode: 0o755 },
    "usr/libexec/flux/flux-imp": { text: "#!/bin/sh\n", mode: 0o4755 },
    "usr/libexec/flux/cmd/flux-run-prolog": { text: "#!/bin/sh\n", mode: 0o755 },
    "usr/libexec/flux/cmd/flux-run-housekeeping": { text: "#!/bin/sh\n", mode: 0o755 },
    "usr/libexec/flux-pam/flux-pam": { text: "#!/bin/sh\n", mode: 0o755 },
    "usr/libexec/flux/prolog.d/flux-pam-prolog": { link: "../../flux-pam/flux-pam" },
    "usr/libexec/flux/housekeeping.d/flux-pam-housekeeping": { link: "../../flux-pam/flux-pam" },
    "usr/lib/tmpfiles.d/flux-pam.conf": "# flux-pam\nd /run/flux-pam 0700 root root -\n",
  };
}
