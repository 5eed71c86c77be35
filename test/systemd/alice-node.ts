// The node the tests on real systemd set up: alice (uid 1000) with jobs, an instance owned by
// someone else, the test broker's sockets bound into the container, the installed binary; and the
// reads they check systemd's state with.

import type { Container } from "./container";

export const BIN = "/opt/flux-pam/flux-pam";
/** where the host's test brokers' sockets appear in the container */
export const SOCKDIR = "/run/test-flux";
export const ALICE = 1000;
export const OWNER = 64999;
export const SLICE = "user-1000.slice";
export const MARKER = "/run/flux-pam/uid.1000.active";

/** The broker config of a node that contains its users' logins (kill-user-slice with a 1 s grace time); `pam` overrides. */
export function containedConfig(pam: object = {}, access: object = {}) {
  return {
    ...(Object.keys(access).length > 0 ? { access } : {}),
    pam: { "manage-user-slice": true, "kill-user-slice": true, "kill-slice-grace-time": "1s", ...pam },
    exec: { "sdexec-constrain-resources": true },
  };
}

/** Polls `cond` until it holds, up to `ms`; says whether it did (a bound, not a timed assertion). */
export async function until(cond: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; await Bun.sleep(20)) if (await cond()) return true;
  return cond();
}

/** Reads of the container's state. */
export function probes(c: Container) {
  return {
    exists: async (path: string) => (await c.exec(["test", "-e", path])).code === 0,
    active: async (unit: string) => (await c.exec(["systemctl", "is-active", unit])).stdout.trim(),
    /** Does systemd hold the unit in memory? (GetUnit answers NoSuchUnit when not: it never loads one.) */
    held: async (unit: string) =>
      (await c.exec(["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "GetUnit", "s", unit])).code === 0,
  };
}
