// The man pages are clean under mandoc's linter, warnings included, and document what exists.

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../e2e/harness";
import { run } from "../install/layout";

const PAGES = ["man/flux-pam.1", "man/flux-config-pam.5", "man/pam_flux.8"].map((p) => join(ROOT, p));

test("mandoc -Tlint -W warning finds nothing in man/", async () => {
  const r = await run(["mandoc", "-Tlint", "-W", "warning", ...PAGES]);
  expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({ code: 0, out: "" });
});

test("flux-pam(1) has a section for every subcommand of flux-pam --help", async () => {
  const help = (await run([join(ROOT, "build/flux-pam"), "--help"])).stdout;
  const commands = [...help.matchAll(/^ {2}([a-z][a-z-]+) /gm)].map((m) => m[1]!);
  expect(commands.length).toBeGreaterThanOrEqual(6);
  const page = readFileSync(PAGES[0]!, "utf8");
  for (const c of commands) expect({ c, documented: page.includes(`\n.Ss ${c}\n`) }).toEqual({ c, documented: true });
});

test("pam_flux(8) documents every option pam_flux.c accepts", () => {
  const c = readFileSync(join(ROOT, "pam/pam_flux.c"), "utf8");
  const options = [...c.matchAll(/strn?cmp\(a, "([a-z-]+=?)"/g)].map((m) => m[1]!.replace(/=$/, ""));
  expect(options.length).toBeGreaterThanOrEqual(7);
  const page = readFileSync(PAGES[2]!, "utf8");
  for (const o of options) expect({ o, documented: page.includes(`\n.It Cm ${o}`) }).toEqual({ o, documented: true });
});

test("flux-pam(1) states the bounds on a broker's reply that the decoder enforces", async () => {
  const { MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, MAX_JSON_EXACT_NUMBERS, MAX_JSON_MEMBERS } = await import("../../src/flux/json");
  const { MAX_MESSAGE_BYTES } = await import("../../src/flux/message");
  const page = readFileSync(PAGES[0]!, "utf8").replace(/\n/g, " ");
  const n = (x: number) => x.toLocaleString("en-US");
  for (const phrase of [
    `more than ${MAX_MESSAGE_BYTES >> 20} MiB`,
    `nest ${MAX_JSON_DEPTH} levels`,
    `${n(MAX_JSON_CONTAINERS)} objects and arrays`,
    `${n(MAX_JSON_MEMBERS)} members`,
    `${n(MAX_JSON_EXACT_NUMBERS)} reals`,
  ])
    expect({ phrase, stated: page.includes(phrase) }).toEqual({ phrase, stated: true });
});
