// --dry-run: the systemd calls a hook would make, one line each, and nothing changed.

import { describe, expect, test } from "bun:test";
import { DryRunSystemd } from "../../src/systemd/dry-run";
import { PropertyError } from "../../src/systemd/errors";

describe("the dry-run client prints UNIT METHOD PROPERTIES", () => {
  test("each mutating call is one line", async () => {
    const printed: string[] = [];
    const sd = new DryRunSystemd((l) => printed.push(l));
    await sd.setSliceProperties("user-1000.slice", { AllowedCPUs: "0-1", DevicePolicy: "closed", DeviceAllow: "/dev/nvidia0 rw" });
    await sd.startUnit("user@1000.service");
    await sd.startScope({ name: "flux-pam-61.scope", slice: "user-1000.slice", pids: [61] });
    await sd.stopUnit("user@1000.service");
    await sd.killUnit("user-1000.slice", 15);
    await sd.revertUnit("user-1000.slice");
    expect(printed).toEqual([
      'user-1000.slice SetUnitProperties runtime=true DeviceAllow= AllowedCPUs=0-1 DevicePolicy=closed DeviceAllow="/dev/nvidia0 rw"',
      "user@1000.service StartUnit mode=replace",
      "flux-pam-61.scope StartTransientUnit mode=fail Slice=user-1000.slice PIDs=61",
      "user@1000.service StopUnit mode=replace",
      "user-1000.slice KillUnit who=all signal=SIGTERM",
      "user-1000.slice RevertUnitFiles reload=yes",
    ]);
    expect(sd.lines).toEqual(printed);
  });

  test("a property the real client would refuse is refused in a dry run too", async () => {
    const sd = new DryRunSystemd();
    await expect(sd.setSliceProperties("user-1000.slice", { Bogus: "x" })).rejects.toThrow(PropertyError);
    expect(sd.lines).toEqual([]);
  });

  test("without a bus, reads answer as an idle node", async () => {
    const sd = new DryRunSystemd();
    expect(await sd.unitState("user@1000.service")).toEqual({ loadState: "loaded", activeState: "inactive", subState: "dead" });
    expect(await sd.unitProperties("user-1000.slice")).toEqual({});
  });
});
