// The configuration files README.md and the man pages tell admins to write, taken from their text:
// every TOML block whose first line is a comment naming a file (`# /etc/flux/.../x.toml`).

import { readFileSync } from "node:fs";
import { join } from "node:path";

const TOP = join(import.meta.dir, "../..");

export interface Snippet {
  /** the document it comes from, relative to the repository */
  doc: string;
  /** the node path its first comment names */
  path: string;
  text: string;
}

/** ```toml fenced blocks of a Markdown file. */
function markdownBlocks(text: string): string[] {
  return [...text.matchAll(/^```toml\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** .Bd -literal ... .Ed blocks of an mdoc page, with the roff escapes our pages use undone. */
function mdocBlocks(text: string): string[] {
  return [...text.matchAll(/^\.Bd -literal[^\n]*\n([\s\S]*?)^\.Ed$/gm)].map((m) => m[1]!.replace(/\\\(dq/g, '"').replace(/\\e/g, "\\"));
}

function named(doc: string, blocks: string[]): Snippet[] {
  const out: Snippet[] = [];
  for (const b of blocks) {
    const m = /^# (\/etc\/flux\/\S+\.toml)\n/.exec(b);
    if (m) out.push({ doc, path: m[1]!, text: b });
  }
  return out;
}

export function readmeSnippets(): Snippet[] {
  return named("README.md", markdownBlocks(readFileSync(join(TOP, "README.md"), "utf8")));
}

export function manSnippets(): Snippet[] {
  return ["man/flux-config-pam.5", "man/pam_flux.8", "man/flux-pam.1"].flatMap((doc) => named(doc, mdocBlocks(readFileSync(join(TOP, doc), "utf8"))));
}

/** The PAM stacks the documents show (every plain fenced or literal block with a pam_flux.so line), as written. */
export function pamExamples(): Snippet[] {
  const md = [...readFileSync(join(TOP, "README.md"), "utf8").matchAll(/^```\n([\s\S]*?)^```$/gm)].map((m) => ({ doc: "README.md", text: m[1]! }));
  const man = ["man/pam_flux.8", "man/flux-pam.1"].flatMap((doc) => mdocBlocks(readFileSync(join(TOP, doc), "utf8")).map((text) => ({ doc, text })));
  return [...md, ...man].filter((b) => /^(account|session)\s+\S+\s+pam_flux\.so/m.test(b.text)).map((b) => ({ ...b, path: "/etc/pam.d/sshd" }));
}

/** The README's file for `path`: fails loudly if the README no longer has it. */
export function readmeFile(path: string): string {
  const s = readmeSnippets().find((x) => x.path === path);
  if (!s) throw new Error(`README.md has no TOML block for ${path}`);
  return s.text;
}
