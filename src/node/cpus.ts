// The CPUs and memory nodes of this node, as the kernel lists them in sysfs: what a slice's
// AllowedCPUs and AllowedMemoryNodes can hold it to.

import { readFileSync } from "node:fs";
import { type IdRanges, parseLooseRanges } from "../flux/idset";

export interface NodeIds {
  /** ids the kernel can have at all (cpu/possible): a cpuset naming another is refused (EINVAL) */
  possible: IdRanges;
  /** ids usable now (online CPUs; memory nodes with memory) */
  usable: IdRanges;
}

const SYS = "/sys/devices/system";

function read(file: string): IdRanges | undefined {
  let text: string;
  try {
    text = readFileSync(`${SYS}/${file}`, "utf8");
  } catch {
    return undefined;
  }
  return parseLooseRanges(text);
}

export function nodeCpus(): NodeIds {
  const possible = read("cpu/possible");
  const online = read("cpu/online");
  if (!possible || !online) throw new Error(`${SYS}/cpu/possible or /online cannot be read: this node's CPUs are not known`);
  return { possible, usable: online };
}

/** Without NUMA (no node/ in sysfs) the one memory node is 0. */
export function nodeMemoryNodes(): NodeIds {
  const possible = read("node/possible") ?? [[0, 0]];
  return { possible, usable: read("node/has_memory") ?? read("node/online") ?? possible };
}

/** This node's, for limitsMisfit (decide/node-fit.ts). */
export const NODE_IDS = { cpus: nodeCpus, mems: nodeMemoryNodes };
