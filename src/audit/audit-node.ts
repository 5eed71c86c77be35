// The whole audit of a node (or of an image under --root): every check, in the report's order.

import { DEFAULT_LOCK_DIR } from "../node/lock-dir";
import { type Area, type Finding, checkFailed, countBySeverity, guarded, ok, warning } from "./finding";
import { type FluxConfigAudit, auditFluxConfig } from "./flux-config";
import { auditHooks } from "./hooks";
import { type ImpAudit, type ImpOwner, auditImpConfig } from "./imp-config";
import { instanceOwnerFromUnit } from "./instance-owner";
import { auditLingerFiles } from "./linger";
import { type LiveAudit, type LiveOptions, auditLive } from "./live";
import { auditLockDir, auditTmpfiles } from "./node-setup";
import { type PamAudit, auditPam } from "./pam-stack";
import { auditSshd } from "./sshd";
import { Tree } from "./tree";

export interface NodeAuditOptions extends LiveOptions {
  /** "/" for this node, else the root of an image: files only, no live checks */
  root: string;
}

export interface NodeAudit {
  root: string;
  live: boolean;
  findings: Finding[];
  errors: number;
  warnings: number;
}

const ORDER: Area[] = ["pam", "sshd", "flux-config", "imp", "hooks", "lock-dir", "tmpfiles", "cgroup", "systemd", "broker", "linger"];
const SKIPPED = "not checked: --root audits files only";

/** A check that returns more than findings; an exception it did not expect becomes an error finding. */
function attempt<T extends { findings: Finding[] }>(area: Area, check: () => T): Partial<T> & { findings: Finding[] } {
  try {
    return check();
  } catch (e) {
    return { findings: [checkFailed(area, e)] } as Partial<T> & { findings: Finding[] };
  }
}

export async function auditNode(opts: NodeAuditOptions): Promise<NodeAudit> {
  const tree = new Tree(opts.root);
  // Who runs the instance, when no broker says so: flux.service's User=. (A unit file that cannot
  // be read, a symlink loop say, leaves it unknown and is one finding, not the end of the audit.)
  let unitOwner: ReturnType<typeof instanceOwnerFromUnit>;
  const ownerFinding: Finding[] = [];
  try {
    unitOwner = instanceOwnerFromUnit(tree);
  } catch (e) {
    ownerFinding.push(warning("imp", `flux.service could not be read for the instance owner (${(e as Error).message}): the owner is taken from the broker, else assumed "flux"`, "fix what the message names"));
  }
  const flux = attempt<FluxConfigAudit>("flux-config", () => auditFluxConfig(tree, unitOwner?.name === "root" ? { owner: 0 } : {}));
  const manageUserSlice = flux.config?.manageUserSlice;
  // Without a readable config the hooks may well be needed: missing pieces are errors then.
  const needed = manageUserSlice ?? true;

  let live: Partial<LiveAudit> & { findings: Finding[] };
  if (tree.live) {
    try {
      live = await auditLive(tree, opts, flux.config);
    } catch (e) {
      live = { findings: [warning("broker", `the live checks stopped: ${(e as Error).message}`, "run flux-pam doctor again as root on the node")] };
    }
  } else
    live = {
      findings: [
        ok("cgroup", `${SKIPPED} (the cgroup mount is the running node's)`),
        ok("systemd", `${SKIPPED} (systemd's version is asked over D-Bus on the running node)`),
        ok("broker", `${SKIPPED} (the broker is asked on the running node)`),
        ...guarded("linger", () => auditLingerFiles(tree, "flux", "--root, no broker asked: every linger file counts")),
      ],
    };

  const pam = attempt<PamAudit>("pam", () => auditPam(tree, { manageUserSlice }));
  const owner: ImpOwner = live.owner
    ? { name: live.owner, source: "broker" }
    : unitOwner
      ? { name: unitOwner.name, source: "unit" }
      : { name: "flux", source: "assumed" };
  const imp = attempt<ImpAudit>("imp", () => auditImpConfig(tree, { owner, needed }));
  const lockDirs = [DEFAULT_LOCK_DIR, ...(pam.lockDirs ?? []).filter((d) => d !== DEFAULT_LOCK_DIR)];
  const findings = [
    ...pam.findings,
    ...guarded("sshd", () => auditSshd(tree)),
    ...flux.findings,
    ...ownerFinding,
    ...imp.findings,
    ...guarded("hooks", () => auditHooks(tree, { fluxLibexec: imp.fluxLibexec, needed })),
    ...lockDirs.slice(1).map((d) =>
      warning(
        "lock-dir",
        `a pam_flux.so session line has lock-dir=${d}, but the hooks use ${DEFAULT_LOCK_DIR} unless FLUX_PAM_LOCK_DIR says otherwise: sessions would look for markers the prolog never makes`,
        `drop lock-dir= from the session line, or give the hooks FLUX_PAM_LOCK_DIR=${d}`,
      ),
    ),
    ...lockDirs.flatMap((d) => guarded("lock-dir", () => auditLockDir(tree, d))),
    ...guarded("tmpfiles", () => auditTmpfiles(tree)),
    ...live.findings,
  ];
  // Stable: within an area, the order the checks found things in.
  findings.sort((a, b) => ORDER.indexOf(a.area) - ORDER.indexOf(b.area));
  const n = countBySeverity(findings);
  return { root: opts.root, live: tree.live, findings, errors: n.error, warnings: n.warning };
}
