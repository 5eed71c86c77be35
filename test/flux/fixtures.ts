// The real Flux wire bytes captured from flux-core 0.88.0 (copied from ../shared/flux-wire).

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const DIR = join(import.meta.dir, "../fixtures/flux-wire");

export interface WirePair {
  name: string;
  request: Uint8Array;
  response: Uint8Array;
}

export function wirePairs(): WirePair[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith(".request.bin"))
    .sort()
    .map((f) => {
      const name = f.replace(".request.bin", "");
      return {
        name,
        request: new Uint8Array(readFileSync(join(DIR, f))),
        response: new Uint8Array(readFileSync(join(DIR, `${name}.response.bin`))),
      };
    });
}

export function wirePair(prefix: string): WirePair {
  const p = wirePairs().find((w) => w.name.startsWith(prefix));
  if (!p) throw new Error(`no fixture ${prefix}`);
  return p;
}
