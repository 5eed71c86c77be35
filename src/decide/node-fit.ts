// Would the kernel hold a slice to these CPUs and memory nodes? cgroup v2 treats a cpuset none of
// whose ids it can grant as empty, that is all of the parent's, and refuses one naming an id the
// machine cannot have (systemd then logs a warning and leaves the slice as it was: on a fresh
// slice, every CPU). Either way the prolog would succeed and the logins would have the whole node.

import { formatRanges, type IdRanges, IdsetError, parseLooseRanges } from "../flux/idset";
import type { NodeIds } from "../node/cpus";

const format = (r: IdRanges) => formatRanges(r) || "(none)";

function within(mask: IdRanges, set: IdRanges): boolean {
  return mask.every(([lo, hi]) => set.some(([a, b]) => a <= lo && hi <= b));
}

function meets(mask: IdRanges, set: IdRanges): boolean {
  return mask.some(([lo, hi]) => set.some(([a, b]) => a <= hi && lo <= b));
}

/**
 * Why `value` (an AllowedCPUs or AllowedMemoryNodes idset) would not hold a slice on this node, or
 * undefined when it would. `what` names the ids ("CPUs", "memory nodes").
 */
export function maskMisfit(name: string, value: string, node: NodeIds, what: string): string | undefined {
  let mask: IdRanges;
  try {
    mask = parseLooseRanges(value);
  } catch (e) {
    if (e instanceof IdsetError) return undefined; // refused where it is encoded, with its reason
    throw e;
  }
  if (mask.length === 0) return undefined; // refused where it is encoded (an empty mask lifts the limit)
  if (!within(mask, node.possible)) return `${name}=${value} names ${what} this node cannot have (possible: ${format(node.possible)}): the kernel would refuse it and leave the slice on all of them`;
  if (!meets(mask, node.usable)) return `${name}=${value} names no ${what} usable here (online: ${format(node.usable)}): the kernel would hold the slice to all of them instead`;
  return undefined;
}

/** Where to read the node's CPUs and memory nodes (src/node/cpus.ts), read only when a mask is there. */
export interface NodeIdsSource {
  cpus(): NodeIds;
  mems(): NodeIds;
}

/** The first of the masks among `props` (a mapper's answer) that would not hold on this node, or undefined. */
export function limitsMisfit(props: Readonly<Partial<Record<string, string>>>, node: NodeIdsSource): string | undefined {
  const cpus = props.AllowedCPUs;
  const mems = props.AllowedMemoryNodes;
  return (cpus === undefined ? undefined : maskMisfit("AllowedCPUs", cpus, node.cpus(), "CPUs")) ?? (mems === undefined ? undefined : maskMisfit("AllowedMemoryNodes", mems, node.mems(), "memory nodes"));
}
