// A conf.d directory of TOML files (Flux's system config, the IMP's), read and merged as one table,
// the way the program that reads it merges it.

import { TomlError, parse } from "smol-toml";
import { type Json, isObject } from "../flux/json";
import { type Area, type Finding, error } from "./finding";
import type { Tree } from "./tree";

export interface TomlDir {
  dir: string;
  /** the .toml files read, in order */
  files: string[];
  table: { [key: string]: Json };
  /** files that do not parse */
  findings: Finding[];
  /** top-level tables a later file replaced whole (only with merge "top-level") */
  shadowed: Shadowed[];
  /** top-level key -> the file its value in `table` comes from (the last file that has it) */
  origins: Record<string, string>;
}

/** A top-level table of `file` that a later file's table of the same name replaced. */
export interface Shadowed {
  table: string;
  file: string;
  by: string;
  /** the sub-tables or keys of `file`'s table that the winner does not have */
  lost: string[];
}

/**
 * How a program merges its files: flux-core key by key through every table ("deep"); the IMP
 * (flux-security's cf_update_glob, a json_object_update per file) one top-level table at a time,
 * so a later file's [run] replaces an earlier file's whole [run] ("top-level").
 */
export type MergeMode = "deep" | "top-level";

/** Tables merge key by key, as Flux merges its config files; any other value of a later file wins. */
function merge(into: { [key: string]: Json }, from: { [key: string]: Json }): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    if (isObject(cur) && isObject(v)) merge(cur, v);
    else into[k] = v;
  }
}

/** DIR/*.toml, sorted and merged; undefined when DIR does not exist. `refuses` says who rejects a bad file. */
export function readTomlDir(tree: Tree, dir: string, area: Area, refuses: string, mode: MergeMode = "deep"): TomlDir | undefined {
  const names = tree.list(dir);
  if (names === undefined) return undefined;
  const out: TomlDir = { dir, files: [], table: {}, findings: [], shadowed: [], origins: {} };
  // glob("*.toml"), as flux-core and the IMP read the directory: a name starting with "." is not matched.
  for (const n of names.filter((x) => x.endsWith(".toml") && !x.startsWith("."))) {
    const path = `${dir}/${n}`;
    const text = tree.read(path);
    if (text === undefined) continue;
    out.files.push(path);
    try {
      // Flux's TOML has no dates in the keys we read; a key named __proto__ must not reach a merge.
      const t = parse(text, { unsafeKeyBehaviour: "drop" }) as { [key: string]: Json };
      for (const [k, v] of Object.entries(t)) {
        const prev = out.table[k];
        const prevFile = out.origins[k];
        if (mode === "top-level" && prev !== undefined && prevFile !== undefined) {
          const lost = isObject(prev) ? Object.keys(prev).filter((x) => !isObject(v) || !(x in v)) : [];
          out.shadowed.push({ table: k, file: prevFile, by: path, lost });
        }
        out.origins[k] = path;
      }
      if (mode === "deep") merge(out.table, t);
      else Object.assign(out.table, t);
    } catch (e) {
      if (!(e instanceof TomlError)) throw e;
      const first = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      out.findings.push(error(area, `${path}:${e.line}:${e.column}: not valid TOML: ${first}`, `correct the file: ${refuses}`));
    }
  }
  return out;
}

/** `a.b.c` of a merged table, or undefined. */
export function lookup(table: { [key: string]: Json }, path: string): Json | undefined {
  let cur: Json | undefined = table;
  for (const k of path.split(".")) cur = isObject(cur) ? cur[k] : undefined;
  return cur;
}
