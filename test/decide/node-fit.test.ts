// Whether a slice's CPU and memory-node masks would hold on this node: the kernel treats a cpuset
// it can grant none of as empty (all CPUs), and refuses one naming ids the machine cannot have.

import { describe, expect, test } from "bun:test";
import { limitsMisfit, maskMisfit } from "../../src/decide/node-fit";

const NODE = { possible: [[0, 63]] as const, usable: [[0, 31], [48, 63]] as const };

describe("maskMisfit()", () => {
  test("a mask within the possible ids, some of them usable, fits (a partly offline mask is only narrower)", () => {
    expect(maskMisfit("AllowedCPUs", "0-3", NODE, "CPUs")).toBeUndefined();
    expect(maskMisfit("AllowedCPUs", "30-33", NODE, "CPUs")).toBeUndefined();
    expect(maskMisfit("AllowedCPUs", "7,0-3,2", NODE, "CPUs")).toBeUndefined();
  });

  test("ids the machine cannot have: refused by the kernel, so refused here", () => {
    expect(maskMisfit("AllowedCPUs", "60-71", NODE, "CPUs")).toBe(
      "AllowedCPUs=60-71 names CPUs this node cannot have (possible: 0-63): the kernel would refuse it and leave the slice on all of them",
    );
  });

  test("no id usable now (all offline): the kernel would fall back to every CPU", () => {
    expect(maskMisfit("AllowedCPUs", "32-47", NODE, "CPUs")).toBe(
      "AllowedCPUs=32-47 names no CPUs usable here (online: 0-31,48-63): the kernel would hold the slice to all of them instead",
    );
    expect(maskMisfit("AllowedMemoryNodes", "1", { possible: [[0, 1]], usable: [[0, 0]] }, "memory nodes")).toBe(
      "AllowedMemoryNodes=1 names no memory nodes usable here (online: 0): the kernel would hold the slice to all of them instead",
    );
  });

  test("what the encoder refuses with its own reason (empty, not an idset) is left to it", () => {
    expect(maskMisfit("AllowedCPUs", "", NODE, "CPUs")).toBeUndefined();
    expect(maskMisfit("AllowedCPUs", "zero", NODE, "CPUs")).toBeUndefined();
  });
});

describe("limitsMisfit()", () => {
  const source = { cpus: () => NODE, mems: () => ({ possible: [[0, 1]] as const, usable: [[0, 1]] as const }) };
  test("the mapper's masks are checked, the CPUs first; other properties are not the node's business", () => {
    expect(limitsMisfit({ AllowedCPUs: "0-3", AllowedMemoryNodes: "0", DevicePolicy: "closed" }, source)).toBeUndefined();
    expect(limitsMisfit({ AllowedCPUs: "99", AllowedMemoryNodes: "7" }, source)).toStartWith("AllowedCPUs=99 names CPUs this node cannot have");
    expect(limitsMisfit({ AllowedCPUs: "0", AllowedMemoryNodes: "7" }, source)).toStartWith("AllowedMemoryNodes=7 names memory nodes this node cannot have");
  });

  test("the node is read only for a mask there is", () => {
    const never = { cpus: () => { throw new Error("read"); }, mems: () => { throw new Error("read"); } };
    expect(limitsMisfit({ DevicePolicy: "closed" }, never)).toBeUndefined();
    expect(limitsMisfit({ AllowedCPUs: "", AllowedMemoryNodes: undefined }, { ...never, cpus: () => NODE })).toBeUndefined();
  });
});
