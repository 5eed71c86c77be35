// The keys flux-core 0.88 accepts in the tables flux-pam's configuration uses, and what the broker
// says when a table holds another key. The one list the doctor and the documentation tests check.
//
// Sources (flux-core v0.88.0):
//   [job-manager.prolog] / [job-manager.epilog]  src/modules/job-manager/plugins/perilog.c,
//                                                perilog_procdesc_create(): "{s?o s?s s?F s?b s?b s?b !}"
//   [job-manager.housekeeping]                   src/modules/job-manager/housekeeping.c,
//                                                housekeeping_parse_config(): "{s?o s?s s?b s?b !}"
//   [access]                                     src/modules/connector-local/local.c: "{s?b s?b s?b s?o !}"
//   [systemd]                                    doc/man5/flux-config-systemd.rst
//   [exec]                                       doc/man5/flux-config-exec.rst (job-exec reads its keys one
//                                                by one: an unknown key there is ignored, not refused)
// The `!` in a jansson format refuses any other key: the table is rejected, and for the job manager
// that means rc1 fails and the instance does not come up.

/** What a key's value must be, as jansson's format letter says it. */
export type KeyType = "boolean" | "string" | "number" | "array" | "table" | "any";

export interface TableKeys {
  /** the table as a dotted path from the top of the config */
  table: string;
  keys: Readonly<Record<string, KeyType>>;
  /** flux-core refuses a key it does not know (jansson's `!`) */
  strict: boolean;
  /** how the broker words a refusal, before jansson's own text */
  refusal: string;
}

const PERILOG_KEYS = {
  command: "array",
  timeout: "string",
  "kill-timeout": "number",
  "per-rank": "boolean",
  "cancel-on-exception": "boolean",
  "exit-on-first-error": "boolean",
} as const;

export const FLUX_CORE_TABLES: readonly TableKeys[] = [
  { table: "job-manager.prolog", keys: PERILOG_KEYS, strict: true, refusal: "[job-manager.prolog]:" },
  { table: "job-manager.epilog", keys: PERILOG_KEYS, strict: true, refusal: "[job-manager.epilog]:" },
  {
    table: "job-manager.housekeeping",
    // use-systemd-unit is deprecated (logged and ignored) but still accepted
    keys: { command: "array", "release-after": "string", "use-systemd-unit": "boolean", "exit-on-first-error": "boolean" },
    strict: true,
    refusal: "job-manager.housekeeping:",
  },
  {
    table: "access",
    keys: { "allow-guest-user": "boolean", "allow-root-owner": "boolean", "private-mode": "boolean", roles: "table" },
    strict: true,
    refusal: "error parsing [access] configuration:",
  },
  { table: "systemd", keys: { enable: "boolean", "sdbus-debug": "boolean", "sdexec-debug": "boolean" }, strict: false, refusal: "[systemd]:" },
  {
    table: "exec",
    keys: {
      imp: "string",
      service: "string",
      method: "string",
      "job-shell": "string",
      "shell-exit-timeout": "string",
      "kill-timeout": "any",
      "max-kill-count": "number",
      "max-kill-timeout": "any",
      "term-signal": "string",
      "kill-signal": "string",
      "barrier-timeout": "any",
      "max-start-delay-percent": "number",
      testexec: "table",
      "sdexec-constrain-resources": "boolean",
      "sdexec-properties": "table",
      "sdexec-stop-timer-sec": "any",
      "sdexec-stop-timer-signal": "any",
    },
    strict: false,
    refusal: "[exec]:",
  },
];

/** The keys flux-pam itself reads: [pam] is ours, flux-core ignores the table. (Their types are pamConfig's to check.) */
export const FLUX_PAM_TABLE: TableKeys = {
  table: "pam",
  keys: { "manage-user-slice": "any", "kill-user-slice": "any", "kill-slice-grace-time": "any", debug: "any" },
  strict: true,
  refusal: "flux-pam:",
};

export function tableKeys(table: string): TableKeys | undefined {
  return table === "pam" ? FLUX_PAM_TABLE : FLUX_CORE_TABLES.find((t) => t.table === table);
}

function typeOf(v: unknown): KeyType {
  if (typeof v === "boolean") return "boolean";
  if (typeof v === "string") return "string";
  if (typeof v === "number" || typeof v === "bigint") return "number";
  if (Array.isArray(v)) return "array";
  return "table";
}

/** jansson's name for a value, as its "Expected X, got Y" error gives it. */
function janssonName(v: unknown): string {
  if (typeof v === "boolean") return String(v);
  if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))) return "integer";
  if (typeof v === "number") return "real";
  if (typeof v === "string") return "string";
  return Array.isArray(v) ? "array" : "object";
}

/** What jansson (or, for a command, flux-core itself) says when a key has the wrong type. */
function wrongType(spec: TableKeys, key: string, want: KeyType, v: unknown): string {
  if (want === "array") return `${spec.refusal} ${key} must be an array`;
  const expected = want === "boolean" ? "true or false" : want === "number" ? "real or integer" : want === "table" ? "object" : want;
  return `${spec.refusal} Expected ${expected}, got ${janssonName(v)}`;
}

export interface KeyProblem {
  key: string;
  /** what the broker will say */
  broker: string;
  /** what flux-pam says about it */
  what: string;
}

/**
 * The keys of `value` (the table at `spec.table`) that flux-core will refuse: unknown ones in a
 * strict table, and values of the wrong type.
 */
export function keyProblems(spec: TableKeys, value: Record<string, unknown>): KeyProblem[] {
  const out: KeyProblem[] = [];
  const unknown = Object.keys(value).filter((k) => !(k in spec.keys));
  if (unknown.length > 0 && spec.strict)
    out.push({
      key: unknown.join(", "),
      broker: `${spec.refusal} ${unknown.length} object item(s) left unpacked: ${unknown.join(", ")}`,
      what: `${unknown.map((k) => `${spec.table}.${k}`).join(", ")} ${unknown.length === 1 ? "is not a key" : "are not keys"} of [${spec.table}] (it takes ${Object.keys(spec.keys).join(", ")})`,
    });
  for (const [k, want] of Object.entries(spec.keys)) {
    if (!(k in value) || want === "any") continue;
    if (typeOf(value[k]) === want) continue;
    out.push({
      key: k,
      broker: wrongType(spec, k, want, value[k]),
      what: `${spec.table}.${k} must be ${want === "boolean" ? "true or false" : `a ${want}`}`,
    });
  }
  return out;
}
