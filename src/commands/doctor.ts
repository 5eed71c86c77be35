// flux-pam doctor: audit this node's flux-pam setup (or an image's, with --root) and say how to fix each finding.

import { statSync } from "node:fs";
import { resolve } from "node:path";
import { auditNode } from "../audit/audit-node";
import { formatJson, formatText } from "../audit/report";
import { brokerUri } from "../flux/uri";
import { getuid } from "../node/libc";
import { UsageError } from "./pam-args";

export interface DoctorOptions {
  root?: string;
  json: boolean;
  uri?: string;
  /** seconds, for the broker and the bus */
  timeout: number;
}

/** 0 when nothing is an error (warnings allowed), 1 otherwise. */
export async function doctor(opts: DoctorOptions, env: Record<string, string | undefined>): Promise<number> {
  let root = "/";
  if (opts.root !== undefined) {
    root = resolve(opts.root);
    if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--root ${opts.root}: not a directory`);
  }
  const report = await auditNode({ root, uri: brokerUri(opts.uri, env.FLUX_URI, getuid()), timeoutMs: opts.timeout * 1000 });
  process.stdout.write(opts.json ? formatJson(report) : formatText(report));
  return report.errors > 0 ? 1 : 0;
}
