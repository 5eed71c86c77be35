// The doctor's report: one line a finding, its fix under it; or the same as JSON.

import type { NodeAudit } from "./audit-node";
import type { Severity } from "./finding";

const LABEL: Record<Severity, string> = { ok: "ok", warning: "WARNING", error: "ERROR" };

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function formatText(r: NodeAudit): string {
  const lines = [`flux-pam doctor: ${r.live ? "this node" : `the tree under ${r.root} (live checks skipped)`}`];
  for (const f of r.findings) {
    lines.push(`${LABEL[f.severity].padEnd(7)} ${f.area}: ${f.what}`);
    if (f.fix) lines.push(`        fix: ${f.fix}`);
  }
  lines.push(`${plural(r.errors, "error")}, ${plural(r.warnings, "warning")}`);
  // The setup is the doctor's; each user's state on the node is status's.
  if (r.live) lines.push("each user's slice against their jobs, their logins and any drift: flux-pam status (flux-pam reconcile repairs it)");
  return `${lines.join("\n")}\n`;
}

export function formatJson(r: NodeAudit): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}
