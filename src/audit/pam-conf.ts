// Linux-PAM service files as libpam reads them: logical lines, controls, @include/include/substack expanded.

import { basename } from "node:path";

export type PamType = "auth" | "account" | "password" | "session";
const TYPES = new Set<string>(["auth", "account", "password", "session"]);

export type Keyword = "required" | "requisite" | "sufficient" | "optional";
const KEYWORDS = new Set<string>(["required", "requisite", "sufficient", "optional"]);

/** A control: a keyword, or the bracket form `[value=action ...]`. */
export type Control = { kind: "keyword"; word: Keyword } | { kind: "actions"; text: string; actions: ReadonlyMap<string, string> };

export interface Loc {
  file: string;
  line: number;
}

export type PamLine =
  | { kind: "module"; at: Loc; type: PamType; dash: boolean; control: Control; module: string; args: string[] }
  /** `include` / `substack` control: the lines of `file` of the same type */
  | { kind: "include"; at: Loc; type: PamType; dash: boolean; file: string; substack: boolean }
  /** `@include file`: every line of it */
  | { kind: "include-all"; at: Loc; file: string }
  | { kind: "bad"; at: Loc; text: string; why: string };

/**
 * Joins physical lines as libpam does: everything from `#` on is a comment and ends the logical
 * line; a line ending in `\` goes on with the next non-blank one. Each logical line keeps the
 * number of its first physical line.
 */
export function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let cur: string[] = [];
  let start = 0;
  const phys = text.split("\n");
  for (let i = 0; i < phys.length; i++) {
    let s = phys[i]!;
    const body = s.trim();
    if (body === "" || body.startsWith("#")) continue;
    if (cur.length === 0) start = i + 1;
    const hash = s.indexOf("#");
    if (hash >= 0) {
      cur.push(s.slice(0, hash));
      out.push({ line: start, text: cur.join(" ") });
      cur = [];
      continue;
    }
    s = s.trimEnd();
    if (s.endsWith("\\")) {
      cur.push(s.slice(0, -1));
      continue;
    }
    cur.push(s);
    out.push({ line: start, text: cur.join(" ") });
    cur = [];
  }
  if (cur.length > 0) out.push({ line: start, text: cur.join(" ") });
  return out;
}

/**
 * Splits a logical line into words. A word starting with `[` runs to the closing `]` (spaces
 * included): the bracket control keeps its brackets; a bracketed argument loses them, with `\]`
 * standing for `]`, as pam.conf(5) says.
 */
export function words(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    if (text[i] === "[") {
      // Only the second word is a control; a bracketed word later is an argument.
      const isArg = out.length !== 1;
      let j = i + 1;
      let w = "";
      while (j < text.length && !(text[j] === "]" && text[j - 1] !== "\\")) w += text[j++];
      out.push(isArg ? w.replace(/\\\]/g, "]") : `[${w}]`);
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < text.length && !/\s/.test(text[j]!)) j++;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

/** The result names libpam's bracket controls know (its pam_tokens.h), and "default". */
const RESULTS = new Set(
  "success open_err symbol_err service_err system_err buf_err perm_denied auth_err cred_insufficient authinfo_unavail user_unknown maxtries new_authtok_reqd acct_expired session_err cred_unavail cred_expired cred_err no_module_data conv_err authtok_err authtok_recover_err authtok_lock_busy authtok_disable_aging try_again ignore abort authtok_expired module_unknown bad_item conv_again incomplete default".split(" "),
);
const ACTIONS = new Set(["ignore", "ok", "done", "bad", "die", "reset"]);

function parseControl(word: string): Control | undefined {
  if (word.startsWith("[")) {
    // As libpam reads them: case-sensitive names, an action or a jump count; anything else is a
    // line libpam cannot parse (it makes every result of it "bad").
    const actions = new Map<string, string>();
    for (const pair of word.slice(1, -1).trim().split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq <= 0) return undefined;
      const [name, action] = [pair.slice(0, eq), pair.slice(eq + 1)];
      if (!RESULTS.has(name) || !(ACTIONS.has(action) || /^\d+$/.test(action))) return undefined;
      actions.set(name, action);
    }
    return { kind: "actions", text: word, actions };
  }
  const w = word.toLowerCase();
  return KEYWORDS.has(w) ? { kind: "keyword", word: w as Keyword } : undefined;
}

/** One service file, line by line. */
export function parsePamFile(text: string, file: string): PamLine[] {
  return logicalLines(text).map(({ line, text: t }): PamLine => {
    const at = { file, line };
    const w = words(t);
    if (w[0] === "@include") return w[1] ? { kind: "include-all", at, file: w[1] } : { kind: "bad", at, text: t.trim(), why: "@include without a file" };
    const dash = w[0]!.startsWith("-");
    const type = (dash ? w[0]!.slice(1) : w[0]!).toLowerCase();
    if (!TYPES.has(type)) return { kind: "bad", at, text: t.trim(), why: `unknown type "${w[0]}"` };
    const ctl = (w[1] ?? "").toLowerCase();
    if (ctl === "include" || ctl === "substack") {
      return w[2] ? { kind: "include", at, type: type as PamType, dash, file: w[2], substack: ctl === "substack" } : { kind: "bad", at, text: t.trim(), why: `${ctl} without a file` };
    }
    const control = w[1] === undefined ? undefined : parseControl(w[1]);
    if (!control) return { kind: "bad", at, text: t.trim(), why: `unknown control "${w[1] ?? ""}"` };
    if (!w[2]) return { kind: "bad", at, text: t.trim(), why: "no module" };
    return { kind: "module", at, type: type as PamType, dash, control, module: w[2], args: w.slice(3) };
  });
}

/** A module line of an expanded stack, with the chain of includes that brought it in. */
export interface PamEntry {
  type: PamType;
  dash: boolean;
  control: Control;
  module: string;
  args: string[];
  /** innermost first: the line itself, then each include line that led to it */
  at: Loc[];
  /** the substack line it is inside, if any (its done and die end only that substack) */
  substack?: Loc;
}

export interface PamStack {
  service: string;
  path: string;
  /** every module line of every type, in the order libpam runs them */
  entries: PamEntry[];
  /** the files brought in by @include, include or substack */
  included: Set<string>;
  problems: { at: Loc[]; what: string }[];
}

/** Finds a service or included file by name: `/etc/pam.d/NAME` first, as libpam does. */
export type PamLoader = (name: string) => { path: string; text: string } | undefined;

const MAX_DEPTH = 16;
/** Lines a stack may grow to with its includes: more is not a stack anyone meant (includes fanning out). */
const MAX_ENTRIES = 10_000;

/** The service's stack with every include expanded; undefined if the service file does not exist. */
export function expandService(service: string, load: PamLoader): PamStack | undefined {
  const top = load(service);
  if (!top) return undefined;
  const stack: PamStack = { service, path: top.path, entries: [], included: new Set(), problems: [] };
  let capped = false;
  const walk = (path: string, text: string, only: PamType | undefined, via: Loc[], depth: number, substack?: Loc): void => {
    for (const l of parsePamFile(text, path)) {
      if (stack.entries.length >= MAX_ENTRIES) {
        if (!capped) stack.problems.push({ at: [l.at, ...via], what: `the stack grows past ${MAX_ENTRIES} lines with its includes: not expanded further` });
        capped = true;
        return;
      }
      const at = [l.at, ...via];
      if (l.kind === "bad") {
        stack.problems.push({ at, what: `line not understood (${l.why}): ${l.text}` });
        continue;
      }
      if (l.kind !== "include-all" && only !== undefined && l.type !== only) continue;
      if (l.kind === "module") {
        stack.entries.push({ type: l.type, dash: l.dash, control: l.control, module: l.module, args: l.args, at, ...(substack ? { substack } : {}) });
        continue;
      }
      const inc = load(l.file);
      if (!inc) {
        stack.problems.push({ at, what: `includes ${l.file}, which does not exist` });
        continue;
      }
      // (a file that includes itself, or one that includes it: each turn of the loop would add it again)
      if (inc.path === path || via.some((v) => v.file === inc.path)) {
        stack.problems.push({ at, what: `includes ${inc.path}, which is already being included here: a loop` });
        continue;
      }
      if (depth >= MAX_DEPTH) {
        stack.problems.push({ at, what: `includes nest deeper than ${MAX_DEPTH}` });
        continue;
      }
      stack.included.add(inc.path);
      walk(inc.path, inc.text, l.kind === "include" ? l.type : only, at, depth + 1, substack ?? (l.kind === "include" && l.substack ? l.at : undefined));
    }
  };
  walk(top.path, top.text, undefined, [], 0);
  return stack;
}

/** `/etc/pam.d/common-session:25 (via /etc/pam.d/sshd:15)` */
export function where(at: readonly Loc[]): string {
  const [first, ...via] = at;
  const s = `${first!.file}:${first!.line}`;
  return via.length ? `${s} (via ${via.map((l) => `${l.file}:${l.line}`).join(", via ")})` : s;
}

export function moduleName(e: { module: string }): string {
  return basename(e.module);
}

/** How a control treats a module's result code (a libpam name without PAM_, e.g. "perm_denied"). */
export function actionFor(c: Control, code: string): string {
  if (c.kind === "actions") return c.actions.get(code) ?? c.actions.get("default") ?? "bad";
  // The keywords, spelled as actions (pam.conf(5)).
  switch (c.word) {
    case "required":
      return code === "success" || code === "new_authtok_reqd" ? "ok" : code === "ignore" ? "ignore" : "bad";
    case "requisite":
      return code === "success" || code === "new_authtok_reqd" ? "ok" : code === "ignore" ? "ignore" : "die";
    case "sufficient":
      return code === "success" || code === "new_authtok_reqd" ? "done" : "ignore";
    case "optional":
      return code === "success" || code === "new_authtok_reqd" ? "ok" : "ignore";
  }
}

export function controlText(c: Control): string {
  return c.kind === "keyword" ? c.word : c.text;
}
