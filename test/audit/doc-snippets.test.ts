// Every configuration file README.md and the man pages tell admins to write: it parses, uses only
// keys flux-core 0.88 (and flux-imp 0.15) accept, the man pages say the same as the README, and
// the compiled doctor passes a fresh tree holding exactly those files.

import { afterAll, describe, expect, test } from "bun:test";
import { parse } from "smol-toml";
import { FLUX_CORE_TABLES, FLUX_PAM_TABLE, keyProblems } from "../../src/audit/flux-core-keys";
import { runBinary } from "../e2e/harness";
import { type Entry, fakeTree, goodNode } from "./fake-tree";
import { type Snippet, manSnippets, readmeSnippets } from "./doc-snippets";

type Table = Record<string, unknown>;

/** The tables a system instance's file may have, and the keys of [job-manager] that are tables of their own or plugins. */
const TOP_TABLES = new Set([...FLUX_CORE_TABLES.map((t) => t.table.split(".")[0]!), "pam"]);
const JOB_MANAGER_KEYS = new Set(["plugins", "prolog", "epilog", "housekeeping", "perilog"]);
/** flux-security 0.15 src/imp/run.c: what a [run.NAME] table is read for. */
const IMP_RUN_KEYS = new Set(["allowed-users", "allowed-environment", "path"]);

/** What flux-core or the IMP would not take in a snippet, as lines; empty when all is well. */
function refused(s: Snippet): string[] {
  const t = parse(s.text) as Table;
  const out: string[] = [];
  if (s.path.startsWith("/etc/flux/imp/")) {
    for (const [name, v] of Object.entries((t.run ?? {}) as Table))
      for (const k of Object.keys(v as Table)) if (!IMP_RUN_KEYS.has(k)) out.push(`run.${name}.${k}`);
    for (const k of Object.keys(t)) if (k !== "run") out.push(`[${k}] (not a table flux-pam documents for the IMP)`);
    return out;
  }
  for (const k of Object.keys(t)) if (!TOP_TABLES.has(k)) out.push(`[${k}]`);
  for (const k of Object.keys((t["job-manager"] ?? {}) as Table)) if (!JOB_MANAGER_KEYS.has(k)) out.push(`job-manager.${k}`);
  for (const spec of [...FLUX_CORE_TABLES, FLUX_PAM_TABLE]) {
    const v = spec.table.split(".").reduce<unknown>((o, k) => (o as Table | undefined)?.[k], t);
    if (v === undefined) continue;
    out.push(...keyProblems(spec, v as Table).map((p) => p.broker));
    // Tables flux-core reads key by key ignore an unknown key: documenting one would still be a mistake.
    if (!spec.strict) for (const k of Object.keys(v as Table)) if (!(k in spec.keys)) out.push(`${spec.table}.${k}`);
  }
  return out;
}

const readme = readmeSnippets();
const man = manSnippets();

describe("the configuration in the documentation", () => {
  test("README.md gives the system instance's file and the IMP's", () => {
    expect(readme.map((s) => s.path).sort()).toEqual(["/etc/flux/imp/conf.d/imp.toml", "/etc/flux/system/conf.d/pam.toml"]);
  });

  test("the snippet check refuses what flux-core refuses (positive control)", () => {
    const bad = { doc: "x", path: "/etc/flux/system/conf.d/x.toml", text: "[job-manager.housekeeping]\nper-rank = true\n[exec]\nimpp = 1\n[sched]\n" };
    expect(refused(bad)).toEqual(["[sched]", "job-manager.housekeeping: 1 object item(s) left unpacked: per-rank", "exec.impp"]);
    expect(refused({ doc: "x", path: "/etc/flux/imp/conf.d/x.toml", text: '[run.prolog]\nallowed-user = [ "flux" ]\n' })).toEqual(["run.prolog.allowed-user"]);
  });

  for (const s of [...readme, ...man])
    test(`${s.doc}: ${s.path} parses and uses only keys flux-core 0.88 / flux-imp 0.15 accept`, () => {
      expect(refused(s)).toEqual([]);
    });

  test("the man pages give the same files as README.md, key for key", () => {
    const byPath = (ss: Snippet[]) => Object.fromEntries(ss.map((s) => [s.path, parse(s.text)]));
    const fromMan = man.filter((s) => s.doc === "man/flux-config-pam.5");
    expect(fromMan.length).toBe(2);
    expect(byPath(fromMan)).toEqual(byPath(readme));
  });
});

describe("flux-pam doctor --root on the documented configuration, copied verbatim", () => {
  // The node as make install lays it out, and flux-core's and flux-security's files; the
  // configuration files are exactly the documents' (goodNode takes README.md's).
  const base = goodNode();
  const trees = [
    { name: "README.md", tree: fakeTree(base) },
    {
      name: "flux-config-pam(5)",
      tree: fakeTree({
        ...base,
        ...Object.fromEntries(man.filter((s) => s.doc === "man/flux-config-pam.5").map((s): [string, Entry] => [s.path.slice(1), s.text])),
      }),
    },
  ];
  afterAll(() => {
    for (const t of trees) t.tree.remove();
  });

  for (const { name, tree } of trees)
    test(`${name}: no error and no warning`, async () => {
      const r = await runBinary(["doctor", "--root", tree.path, "--json"], {});
      const j = JSON.parse(r.stdout) as { errors: number; warnings: number; findings: { severity: string; what: string }[] };
      expect(j.findings.filter((f) => f.severity !== "ok")).toEqual([]);
      expect({ code: r.code, errors: j.errors, warnings: j.warnings }).toEqual({ code: 0, errors: 0, warnings: 0 });
    });
});
