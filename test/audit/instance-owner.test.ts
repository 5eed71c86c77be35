// Who runs the system instance, from flux.service and its drop-ins, when no broker is asked.

import { describe, expect, test } from "bun:test";
import { instanceOwnerFromUnit } from "../../src/audit/instance-owner";
import { withTree } from "./fake-tree";

const UNIT = "[Unit]\nDescription=Flux message broker\n[Service]\nUser=flux\nGroup=flux\n";

describe("the instance owner from flux.service", () => {
  test("flux-core's unit: User=flux", () => {
    expect(withTree({ "usr/lib/systemd/system/flux.service": UNIT }, (t) => instanceOwnerFromUnit(t.tree))).toEqual({
      name: "flux",
      source: "/usr/lib/systemd/system/flux.service",
    });
  });

  test("a drop-in overrides the unit, the last drop-in by name wins", () => {
    const r = withTree(
      {
        "usr/lib/systemd/system/flux.service": UNIT,
        "etc/systemd/system/flux.service.d/10-owner.conf": "[Service]\nUser=fluxsvc\n",
        "usr/lib/systemd/system/flux.service.d/20-owner.conf": "[Service]\nUser=fluxsys\n",
      },
      (t) => instanceOwnerFromUnit(t.tree),
    );
    expect(r).toEqual({ name: "fluxsys", source: "/usr/lib/systemd/system/flux.service.d/20-owner.conf" });
  });

  test("/etc/systemd/system/flux.service replaces the packaged one", () => {
    const r = withTree(
      { "usr/lib/systemd/system/flux.service": UNIT, "etc/systemd/system/flux.service": "[Service]\nUser=other\n" },
      (t) => instanceOwnerFromUnit(t.tree),
    );
    expect(r?.name).toBe("other");
  });

  test("User= outside [Service] does not count; no User= is root", () => {
    expect(withTree({ "usr/lib/systemd/system/flux.service": "[Unit]\nUser=flux\n[Service]\nType=notify\n" }, (t) => instanceOwnerFromUnit(t.tree))?.name).toBe("root");
  });

  test("no unit file: nobody to name", () => {
    expect(withTree({}, (t) => instanceOwnerFromUnit(t.tree))).toBeUndefined();
  });
});
