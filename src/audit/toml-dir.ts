// A conf.d directory of TOML files (Flux's system config, the IMP's), read and merged as one table.

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
}

/** Tables merge key by key, as Flux merges its config files; any other value of a later file wins. */
function merge(into: { [key: string]: Json }, from: { [key: string]: Json }): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    if (isObject(cur) && isObject(v)) merge(cur, v);
    else into[k] = v;
  }
}

/** DIR/*.toml, sorted and merged; undefined when DIR does not exist. `refuses` says who rejects a bad file. */
export function readTomlDir(tree: Tree, dir: string, area: Area, refuses: string): TomlDir | undefined {
  const names = tree.list(dir);
  if (names === undefined) return undefined;
  const out: TomlDir = { dir, files: [], table: {}, findings: [] };
  for (const n of names.filter((x) => x.endsWith(".toml"))) {
    const path = `${dir}/${n}`;
    const text = tree.read(path);
    if (text === undefined) continue;
    out.files.push(path);
    try {
      // Flux's TOML has no dates in the keys we read; a key named __proto__ must not reach a merge.
      merge(out.table, parse(text, { unsafeKeyBehaviour: "drop" }) as { [key: string]: Json });
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
