// The limits flux-pam sets are enforced by a real kernel: the compiled build/flux-pam runs as
// prolog, session-open and housekeeping in a QEMU VM (../shared/vm: Debian 12, systemd 252,
// cgroup v2 with every controller, 2 vCPUs, 2 fake NUMA nodes) against the test broker, compiled
// with `bun build --compile` and run inside the VM. Checked from the kernel: the slice's cpuset
// files, /proc/PID/status (Cpus_allowed_list, Mems_allowed_list), /proc/PID/numa_maps, and what
// open(2) answers for device nodes. The container tests (test/systemd/) cannot show this: there
// the host's controllers are bound to cgroup v1.
//
// Optional and slow (the VM runs under TCG emulation): `make check-vm` runs it with
// FLUX_PAM_VM_TESTS=1; `make check` skips it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario, ScenarioJob } from "../broker/scenario";
import { stringifyJson, type Json } from "../../src/flux/json";
import { tempDir } from "../e2e/harness";
import { bootVm, ROOT, type Vm, vmProblem } from "./vm";

const wanted = process.env.FLUX_PAM_VM_TESTS === "1";
if (!wanted) console.warn("SKIPPED: kernel enforcement in a VM (test/vm/): optional and slow, run it with `make check-vm` (FLUX_PAM_VM_TESTS=1)");

const BIN = "/opt/flux-pam/flux-pam";
const URI = "local:///run/test-flux/broker.sock";
const ALICE = 1000;
const OWNER = 64999;
const SLICE = "user-1000.slice";
const SLICE_DIR = `/sys/fs/cgroup/user.slice/${SLICE}`;
const MARKER = "/run/flux-pam/uid.1000.active";
const ENXIO = "No such device or address"; // the cgroup let open(2) through; no driver behind the node
const EPERM = "Operation not permitted"; // the cgroup's device program refused

/** What open(2) answers in the slice: with no device program, and under the first job's (GPU 0). */
const OPEN = {
  "/dev/null:w": "ok",
  "/dev/zero:r": "ok",
  "/dev/nvidia0:r": ENXIO,
  "/dev/nvidiactl:r": ENXIO,
  "/dev/nvidia1:r": ENXIO,
  "/dev/vda:r": "ok",
};
const RESTRICTED = {
  "/dev/null:w": "ok",
  "/dev/zero:r": "ok", // DevicePolicy=closed always allows null, zero, full, random, urandom, tty, ptmx
  "/dev/nvidia0:r": ENXIO,
  "/dev/nvidiactl:r": ENXIO,
  "/dev/nvidia1:r": EPERM,
  "/dev/vda:r": EPERM,
};

/** kill-user-slice off until the last test: a process left in the slice shows what the kernel keeps. */
let killUserSlice = false;
const config = () => ({ pam: { "manage-user-slice": true, "kill-user-slice": killUserSlice }, exec: { "sdexec-constrain-resources": true } });

describe.skipIf(!wanted)("limits enforced by the kernel (QEMU VM, cgroup v2)", () => {
  let vm: Vm;
  let dir: ReturnType<typeof tempDir>;
  const t0 = performance.now();
  let gen = 0;
  let hog = 0;

  function nodeWith(jobs: ScenarioJob[]): void {
    const s: Scenario = { rank: 0, owner: OWNER, config: config(), jobs, mapper: "auto" };
    // The size changes with gen, so the broker's mtime+size cache sees every rewrite.
    const file = join(dir.path, "scenario.json");
    writeFileSync(`${file}.tmp`, stringifyJson({ ...(s as Json as object), _gen: ++gen } as Json) + " ".repeat(gen % 2));
    renameSync(`${file}.tmp`, file);
  }

  async function hook(name: "prolog" | "housekeeping", jobid: string): Promise<void> {
    const r = await vm.exec(`FLUX_URI=${URI} FLUX_JOB_USERID=${ALICE} FLUX_JOB_ID=${jobid} ${BIN} ${name}`);
    if (r.code !== 0) throw new Error(`${name} ${jobid} exited ${r.code}: ${r.stderr}`);
  }

  /** The probe's lines as a record, run in a new scope of the slice, as `uid`. */
  async function probe(uid?: number): Promise<Record<string, string>> {
    const as = uid === undefined ? "" : `--uid=${uid} `;
    const out = await vm.run(`systemd-run -q --scope --slice=${SLICE} ${as}bash /opt/flux-pam/probe.sh`);
    return Object.fromEntries(out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  }

  const devices = (p: Record<string, string>) => Object.fromEntries(Object.entries(p).filter(([k]) => k.startsWith("/dev/")));

  /** CPUs and memory nodes the kernel allows `pid`, and on which nodes its heap pages are. */
  async function task(pid: number): Promise<{ cpus: string; mems: string; cgroup: string; heap: Record<string, number> }> {
    const out = await vm.run(`cat /proc/${pid}/status /proc/${pid}/cgroup; grep ' heap ' /proc/${pid}/numa_maps`);
    const field = (re: RegExp) => out.match(re)?.[1] ?? "";
    const heapLine = out.split("\n").find((l) => l.includes(" heap ")) ?? "";
    const heap = Object.fromEntries([...heapLine.matchAll(/ (N\d+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    return { cpus: field(/^Cpus_allowed_list:\t(.*)$/m), mems: field(/^Mems_allowed_list:\t(.*)$/m), cgroup: field(/^0::(.*)$/m), heap };
  }

  const sliceFile = async (f: string) => (await vm.run(`cat ${SLICE_DIR}/${f}`)).trim();
  const sliceProp = async (p: string) => (await vm.run(`systemctl show -P ${p} ${SLICE}`)).trim();
  const exists = async (path: string) => (await vm.exec(`test -e ${path}`)).code === 0;

  beforeAll(
    async () => {
      const problem = vmProblem();
      if (problem) throw new Error(`make check-vm cannot run here: ${problem}`);
      dir = tempDir("flux-pam-vm-");
      chmodSync(dir.path, 0o755); // alice reads the share too
      copyFileSync(join(ROOT, "build/flux-pam"), join(dir.path, "flux-pam"));
      const built = Bun.spawnSync([join(ROOT, "node_modules/.bin/bun"), "build", "--compile", join(ROOT, "test/broker/main.ts"), "--outfile", join(dir.path, "test-broker")], {
        stdout: "pipe",
        stderr: "pipe",
      });
      if (built.exitCode !== 0) throw new Error(`bun build --compile test/broker/main.ts failed: ${built.stderr.toString()}`);
      for (const f of ["probe.sh", "hog.sh"]) copyFileSync(join(import.meta.dir, f), join(dir.path, f));
      nodeWith([]);
      vm = await bootVm({ share: dir.path, cpus: 2, numaNodes: 2 });
      console.log(`VM up in ${(vm.bootMs / 1000).toFixed(1)} s`);
      // Fake GPU nodes with NVIDIA's major: open(2) reaches the device cgroup check, then fails
      // with ENXIO (no driver) when the cgroup lets it through.
      await vm.run(`set -e
        install -d /opt/flux-pam /run/test-flux
        install -m 755 /mnt/host/flux-pam /mnt/host/test-broker /mnt/host/probe.sh /mnt/host/hog.sh /opt/flux-pam/
        useradd -m -u ${ALICE} alice
        mknod -m 666 /dev/nvidia0 c 195 0; mknod -m 666 /dev/nvidia1 c 195 1; mknod -m 666 /dev/nvidiactl c 195 255
        systemd-run -q --unit=test-flux-broker /opt/flux-pam/test-broker /run/test-flux/broker.sock /mnt/host/scenario.json
        for i in $(seq 300); do [ -S /run/test-flux/broker.sock ] && exit 0; sleep 0.1; done
        journalctl -u test-flux-broker --no-pager >&2; exit 1`);
    },
    { timeout: 30 * 60_000 },
  );
  afterAll(async () => {
    await vm?.stop();
    dir?.remove();
    console.log(`VM enforcement tests: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  test("the VM has 2 CPUs and 2 memory nodes, the cgroup v2 controllers, and no limit on the slice yet", async () => {
    expect((await vm.run("cat /sys/fs/cgroup/cpuset.cpus.effective /sys/fs/cgroup/cpuset.mems.effective")).split("\n").slice(0, 2)).toEqual(["0-1", "0-1"]);
    expect((await vm.run("cat /sys/fs/cgroup/cgroup.controllers")).trim().split(" ")).toEqual(expect.arrayContaining(["cpuset", "memory"]));
    const p = await probe(ALICE);
    expect(p.cgroup).toStartWith(`/user.slice/${SLICE}/run-`);
    expect([p.cpus, p.mems, p["pin-cpu1"]]).toEqual(["0-1", "0-1", "ok"]);
    expect(devices(await probe())).toEqual(OPEN);
  });

  test("prolog of a job holding core 0 and GPU 0: the kernel's cpuset of the slice is CPU 0, memory node 0", async () => {
    nodeWith([{ id: "101", userid: ALICE, cores: "0", gpus: "0" }]);
    await hook("prolog", "101");
    expect(await exists(MARKER)).toBe(true);
    expect((await vm.run("cat /sys/fs/cgroup/user.slice/cgroup.subtree_control")).trim().split(" ")).toContain("cpuset");
    expect(await sliceFile("cpuset.cpus")).toBe("0");
    expect(await sliceFile("cpuset.cpus.effective")).toBe("0");
    expect(await sliceFile("cpuset.mems")).toBe("0");
    expect(await sliceFile("cpuset.mems.effective")).toBe("0");
  });

  test("a process started in the slice may run on CPU 0 only and allocate on node 0 only; pinning to CPU 1 is refused", async () => {
    const p = await probe(ALICE);
    expect(p.cgroup).toStartWith(`/user.slice/${SLICE}/run-`);
    expect([p.cpus, p.mems, p["pin-cpu1"]]).toEqual(["0", "0", "Invalid argument"]);
  });

  test("session-open moves a running process into the slice: its CPUs shrink to 0 and its memory migrates to node 0", async () => {
    // The process starts confined elsewhere, to CPU 1 and memory node 1, so each change is visible.
    const pid = Number(
      (
        await vm.run(
          `setsid systemd-run -q --scope --unit=hog -p AllowedCPUs=1 -p AllowedMemoryNodes=1 setpriv --reuid=${ALICE} --regid=${ALICE} --clear-groups bash /opt/flux-pam/hog.sh </dev/null >/dev/null 2>&1 & echo $!`,
        )
      ).trim(),
    );
    await vm.run(`for i in $(seq 600); do [ -e /tmp/hog.${pid} ] && exit 0; sleep 0.1; done; exit 1`);
    hog = pid;
    const before = await task(pid);
    expect(before.cgroup).toBe("/system.slice/hog.scope");
    expect([before.cpus, before.mems, Object.keys(before.heap)]).toEqual(["1", "1", ["N1"]]);
    expect(before.heap.N1).toBeGreaterThan(4000); // pages: the 20 MB string and more

    const r = await vm.exec(`PAM_USER=alice PAM_SERVICE=sshd FLUX_PAM_PID=${pid} ${BIN} session-open uri=${URI}`);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, "", ""]);
    const after = await task(pid);
    expect(after.cgroup).toBe(`/user.slice/${SLICE}/flux-pam-${pid}.scope`);
    expect([after.cpus, after.mems, Object.keys(after.heap)]).toEqual(["0", "0", ["N0"]]);
    expect(after.heap.N0).toBe(before.heap.N1!);
  });

  test("devices: DevicePolicy=closed with the job's GPU: /dev/nvidia0 and /dev/nvidiactl pass, /dev/nvidia1 and /dev/vda are refused", async () => {
    const p = await probe(); // as root: only the cgroup's device program can refuse
    expect(p.cgroup).toStartWith(`/user.slice/${SLICE}/run-`);
    expect(devices(p)).toEqual(RESTRICTED);
  });

  test("a second job on core 1 with GPU 1 widens what the kernel allows; its housekeeping narrows it again", async () => {
    nodeWith([
      { id: "101", userid: ALICE, cores: "0", gpus: "0" },
      { id: "102", userid: ALICE, cores: "1", gpus: "1" },
    ]);
    await hook("prolog", "102");
    expect(await sliceFile("cpuset.cpus.effective")).toBe("0-1");
    expect((await task(hog)).cpus).toBe("0-1");
    expect((await probe(ALICE))["pin-cpu1"]).toBe("ok");
    expect((await probe())["/dev/nvidia1:r"]).toBe(ENXIO);

    nodeWith([
      { id: "101", userid: ALICE, cores: "0", gpus: "0" },
      { id: "102", userid: ALICE, cores: "1", gpus: "1", state: 64 },
    ]);
    await hook("housekeeping", "102");
    expect(await sliceFile("cpuset.cpus.effective")).toBe("0");
    expect((await task(hog)).cpus).toBe("0");
    expect((await probe(ALICE))["pin-cpu1"]).toBe("Invalid argument");
    expect((await probe())["/dev/nvidia1:r"]).toBe(EPERM);
  });

  test("housekeeping of the last job reverts the slice: the kernel gives its processes every CPU and memory node again", async () => {
    nodeWith([{ id: "101", userid: ALICE, cores: "0", gpus: "0", state: 64 }]);
    await hook("housekeeping", "101");
    expect(await exists(MARKER)).toBe(false);
    // systemd takes cpuset out of user.slice's subtree_control: no cpuset files on the slice at all.
    expect((await vm.run("cat /sys/fs/cgroup/user.slice/cgroup.subtree_control")).trim().split(" ")).not.toContain("cpuset");
    expect(await exists(`${SLICE_DIR}/cpuset.cpus`)).toBe(false);
    const t = await task(hog); // kill-user-slice is off: the process is still there
    expect([t.cgroup, t.cpus, t.mems]).toEqual([`/user.slice/${SLICE}/flux-pam-${hog}.scope`, "0-1", "0-1"]);
    const p = await probe(ALICE);
    expect([p.cpus, p.mems, p["pin-cpu1"]]).toEqual(["0-1", "0-1", "ok"]);
  });

  // systemd 252 manages a unit's device program only while the unit has a device policy: after a
  // bare revert (DevicePolicy=auto, no DeviceAllow) it neither replaces nor detaches the one it
  // put on the slice's cgroup, so while a process kept the slice alive the last job's device list
  // stayed in force. Housekeeping therefore sets DevicePolicy=auto with char-* and block-* rwm
  // just before the revert: systemd installs a program that refuses nothing, and the revert keeps it.
  test("with a process left in the slice, the last job's revert lifts the device restrictions in the kernel too", async () => {
    expect(await sliceProp("DevicePolicy")).toBe("auto"); // what systemd says...
    expect(await sliceProp("DeviceAllow")).toBe("");
    expect(await exists(`/run/systemd/system.control/${SLICE}.d`)).toBe(false);
    expect((await task(hog)).cgroup).toBe(`/user.slice/${SLICE}/flux-pam-${hog}.scope`); // the slice is still alive
    const p = await probe(); // as root, in a new scope of the slice: only the cgroup could refuse
    expect(p.cgroup).toStartWith(`/user.slice/${SLICE}/run-`);
    expect(devices(p)).toEqual(OPEN); // ...and what the kernel does: /dev/vda opens, /dev/nvidia1 reaches ENXIO, not EPERM
  });

  test("the next job's prolog puts its own device list on the slice", async () => {
    nodeWith([{ id: "103", userid: ALICE, cores: "1", gpus: "1" }]);
    await hook("prolog", "103");
    expect((await task(hog)).cpus).toBe("1");
    expect(devices(await probe())).toEqual({ ...RESTRICTED, "/dev/nvidia0:r": EPERM, "/dev/nvidia1:r": ENXIO });
  });

  test("once the slice's last process ends, systemd stops the slice and the device program goes with its cgroup", async () => {
    nodeWith([{ id: "103", userid: ALICE, cores: "1", gpus: "1", state: 64 }]);
    await hook("housekeeping", "103");
    await vm.run(`kill ${hog}; for i in $(seq 300); do [ "$(systemctl show -P ActiveState ${SLICE})" = inactive ] && exit 0; sleep 0.1; done; exit 1`);
    expect(await exists(SLICE_DIR)).toBe(false);
    const p = await probe();
    expect([p.cpus, p.mems]).toEqual(["0-1", "0-1"]);
    expect(devices(p)).toEqual(OPEN);
  });

  // cgroup v2 treats a cpuset none of whose CPUs it can grant as empty: the slice would get the
  // parent's, every CPU online. A job's R naming only an offline CPU must not open the node.
  test("a job on a CPU taken offline: the kernel would hold a slice to every CPU instead; the prolog refuses it, no marker", async () => {
    await vm.run("echo 0 > /sys/devices/system/cpu/cpu1/online");
    try {
      expect((await vm.run("cat /sys/devices/system/cpu/online")).trim()).toBe("0");
      // the kernel's fallback, without flux-pam: AllowedCPUs=1 on a scope of its own
      const fallback = await vm.run("systemd-run -q --scope -p AllowedCPUs=1 --slice=fallback.slice grep Cpus_allowed_list /proc/self/status");
      expect(fallback.trim()).toBe("Cpus_allowed_list:\t0");
      nodeWith([{ id: "104", userid: ALICE, cores: "1" }]);
      const r = await vm.exec(`FLUX_URI=${URI} FLUX_JOB_USERID=${ALICE} FLUX_JOB_ID=104 ${BIN} prolog`);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        "flux-pam-prolog[f2o]: the jobs' resources do not fit this node, so user-1000.slice cannot be constrained: AllowedCPUs=1 names no CPUs usable here (online: 0): the kernel would hold the slice to all of them instead\n",
      );
      expect(await exists(MARKER)).toBe(false);
    } finally {
      await vm.run("echo 1 > /sys/devices/system/cpu/cpu1/online");
    }
  });

  // The teardown a site runs by default: the slice stopped (its processes with it), no revert and no reload.
  test("with kill-user-slice on, the last job's teardown stops the slice without a reload: its process ends, its cgroup and device program go, a new one gets every CPU, node and device", async () => {
    killUserSlice = true;
    const reloads = async () => Number((await vm.run("journalctl --sync; journalctl -b -o cat _PID=1 --no-pager | grep -c '^Reloading' || true")).trim());
    nodeWith([{ id: "105", userid: ALICE, cores: "1", gpus: "1" }]);
    await hook("prolog", "105");
    await vm.run(`systemd-run -q --unit=stray --slice=${SLICE} --uid=${ALICE} sleep 600`);
    const pid = Number((await vm.run("systemctl show -P MainPID stray")).trim());
    expect(pid).toBeGreaterThan(0);
    expect((await task(pid)).cpus).toBe("1");
    expect(devices(await probe())).toEqual({ ...RESTRICTED, "/dev/nvidia0:r": EPERM, "/dev/nvidia1:r": ENXIO });
    const before = await reloads();

    nodeWith([{ id: "105", userid: ALICE, cores: "1", gpus: "1", state: 64 }]);
    await hook("housekeeping", "105");
    expect(await exists(MARKER)).toBe(false);
    await vm.run(`for i in $(seq 300); do [ "$(systemctl show -P ActiveState ${SLICE})" = inactive ] && exit 0; sleep 0.1; done; exit 1`);
    expect(await exists(`/proc/${pid}`)).toBe(false);
    expect(await exists(SLICE_DIR)).toBe(false);
    expect(await exists(`/run/systemd/system.control/${SLICE}.d`)).toBe(false);
    expect(await sliceProp("NeedDaemonReload")).toBe("no");
    expect(await reloads()).toBe(before);
    const p = await probe(ALICE);
    expect([p.cpus, p.mems, p["pin-cpu1"]]).toEqual(["0-1", "0-1", "ok"]);
    expect(devices(await probe())).toEqual(OPEN);
  });
});
