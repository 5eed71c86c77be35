// pam.d-style option words ("debug", "uri=local:///x") as the flags the command line parser reads.

export class UsageError extends Error {
  override name = "UsageError";
}

/** Rewrites bare words `name` / `name=value` among `known` into `--name` / `--name=value`. */
export function pamWordsToFlags(args: string[], known: readonly string[]): string[] {
  return args.map((a) => {
    if (a.startsWith("-")) return a;
    const name = a.split("=", 1)[0]!;
    return known.includes(name) ? `--${a}` : a;
  });
}
