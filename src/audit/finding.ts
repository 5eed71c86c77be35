// What every audit check returns: findings, each with a severity, a one-line what and a one-line fix.

export type Severity = "ok" | "warning" | "error";

/** Which part of the setup a finding is about; also the order of the report. */
export type Area =
  | "pam"
  | "sshd"
  | "flux-config"
  | "imp"
  | "hooks"
  | "lock-dir"
  | "tmpfiles"
  | "cgroup"
  | "systemd"
  | "broker"
  | "linger";

export interface Finding {
  area: Area;
  severity: Severity;
  /** one line: what was found */
  what: string;
  /** one line: what to do about it (absent for ok) */
  fix?: string;
}

export function ok(area: Area, what: string): Finding {
  return { area, severity: "ok", what };
}

export function warning(area: Area, what: string, fix: string): Finding {
  return { area, severity: "warning", what, fix };
}

export function error(area: Area, what: string, fix: string): Finding {
  return { area, severity: "error", what, fix };
}

/**
 * An error, or only a warning when it does not matter yet: the hooks, perilog and IMP do nothing
 * useful while pam.manage-user-slice is off, so their absence is not an error then.
 */
export function errorIf(isError: boolean, area: Area, what: string, fix: string): Finding {
  return isError ? error(area, what, fix) : warning(area, what, fix);
}

/** A check that threw instead of finishing (a file it cannot read, say), as one error finding. */
export function checkFailed(area: Area, e: unknown): Finding {
  return error(area, `the check could not finish: ${(e as Error).message}`, "fix what the message names, then run flux-pam doctor again");
}

/** Runs a check; an exception it did not expect becomes one error finding instead of ending the audit. */
export function guarded(area: Area, check: () => Finding[]): Finding[] {
  try {
    return check();
  } catch (e) {
    return [checkFailed(area, e)];
  }
}

export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const n: Record<Severity, number> = { ok: 0, warning: 0, error: 0 };
  for (const f of findings) n[f.severity]++;
  return n;
}
