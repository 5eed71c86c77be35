// The checks only the running node can answer: cgroup mount, systemd over D-Bus, the broker, linger of job users.

import { ConfigError, type PamConfig, pamConfig } from "../flux/config";
import { FluxClient } from "../flux/client";
import { Deadline } from "../flux/deadline";
import { FluxRpcError } from "../flux/errors";
import { hostlistPositions } from "../flux/hostlist";
import { getConfig, getHostlist, getHostname, getOwner, getRank, listJobs } from "../flux/rpc";
import { getpwuid } from "../node/passwd";
import { lingerEnabled } from "../systemd/logind";
import type { Systemd } from "../systemd/types";
import { type Finding, error, ok, warning } from "./finding";
import { FLUX_CONF_DIR, rootOwnerFinding } from "./flux-config";
import { type JobUserLinger, auditJobUsersLinger, auditLingerFiles } from "./linger";
import { auditCgroup, auditSystemdVersion } from "./node-setup";
import type { Tree } from "./tree";

export interface LiveOptions {
  uri: string;
  /** the budget for the broker and the bus together */
  timeoutMs: number;
  /** the system bus; default DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket */
  busAddress?: string;
  /** the linger files' directory (tests); default /var/lib/systemd/linger */
  lingerDir?: string;
}

export interface LiveAudit {
  findings: Finding[];
  /** the instance owner's name, when the broker said who it is */
  owner?: string;
}

interface BrokerView {
  rank: number;
  owner: number;
  config: PamConfig | ConfigError;
  /** the uids with RUN jobs on this rank, and how many jobs each */
  users: Map<number, number>;
  /** whether sdexec-mapper answers here (asked only with exec.sdexec-constrain-resources on) */
  mapper?: { loaded: true } | { loaded: false; why: string };
  /** this broker's host name and the instance's hostlist, when the broker said them */
  hosts?: { hostname: string; hostlist: string };
}

/**
 * More than one rank of the instance on this node (a test instance's --test-size): the hooks keep one
 * slice and one marker per node but count the jobs of their own rank, so one rank's last job would
 * tear the slice down while jobs of another still ran.
 */
export function auditRanksPerNode(hosts: { hostname: string; hostlist: string }): Finding[] {
  // Walked once, never expanded: a broker's hostlist may name more hosts than fit in memory.
  const ranks = hostlistPositions(hosts.hostlist, hosts.hostname, MAX_RANKS_CHECKED);
  if (ranks === "too many") return [warning("broker", `the instance's hostlist names more than ${MAX_RANKS_CHECKED} ranks: brokers per node not checked`, "flux getattr hostlist")];
  if (ranks === undefined) return [warning("broker", `the instance's hostlist is not an RFC 29 hostlist: brokers per node not checked`, "flux getattr hostlist")];
  if (ranks.length <= 1) return [];
  return [
    error(
      "broker",
      `${ranks.length} ranks of the instance run on ${hosts.hostname} (ranks ${ranks.join(", ")}): the hooks keep one slice per node but count the jobs of their own rank, so one rank's last job tears the slice down while jobs of another run (flux-pam(1) CAVEATS)`,
      "run one broker of the instance per node, as a system instance does",
    ),
  ];
}

const ENOSYS = 38;
const MAX_RANKS_CHECKED = 1 << 20;

/** sdexec-mapper.stats-get: answered by the module when it is loaded, ENOSYS when it is not. It changes nothing. */
async function mapperLoaded(client: FluxClient, deadline: Deadline): Promise<NonNullable<BrokerView["mapper"]>> {
  try {
    await client.rpc("sdexec-mapper.stats-get", undefined, deadline.left("sdexec-mapper.stats-get"));
    return { loaded: true };
  } catch (e) {
    if (e instanceof FluxRpcError && e.errnum === ENOSYS) return { loaded: false, why: "the sdexec-mapper module is not loaded" };
    return { loaded: false, why: (e as Error).message };
  }
}

async function askBroker(uri: string, deadline: Deadline): Promise<BrokerView> {
  const client = await FluxClient.connect(uri, { timeoutMs: Math.min(deadline.left("connect"), 2000) });
  try {
    const [rank, owner, cfg, hostname, hostlist] = await Promise.all([
      getRank(client, deadline.left("attr.get")),
      getOwner(client, deadline.left("attr.get")),
      getConfig(client, deadline.left("config.get")),
      getHostname(client, deadline.left("attr.get")).catch(() => undefined),
      getHostlist(client, deadline.left("attr.get")).catch(() => undefined),
    ]);
    let config: PamConfig | ConfigError;
    try {
      config = pamConfig(cfg);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      config = e;
    }
    const [jobs, mapper] = await Promise.all([
      listJobs(client, { rank }, deadline.left("job-list.list")),
      !(config instanceof ConfigError) && config.constrainResources ? mapperLoaded(client, deadline) : undefined,
    ]);
    const users = new Map<number, number>();
    for (const j of jobs) users.set(j.userid, (users.get(j.userid) ?? 0) + 1);
    return { rank, owner, config, users, ...(mapper ? { mapper } : {}), ...(hostname !== undefined && hostlist !== undefined ? { hosts: { hostname, hostlist } } : {}) };
  } finally {
    client.close();
  }
}

const COMPARED: [keyof PamConfig, string][] = [
  ["manageUserSlice", "pam.manage-user-slice"],
  ["killUserSlice", "pam.kill-user-slice"],
  ["killSliceGraceTime", "pam.kill-slice-grace-time"],
  ["constrainResources", "exec.sdexec-constrain-resources"],
];

/** The broker runs with the config it last loaded: files edited since take effect only on reload. */
export function auditConfigInForce(broker: PamConfig | ConfigError, files: PamConfig | undefined): Finding[] {
  if (broker instanceof ConfigError) return [warning("broker", `the broker's config in force is not usable: ${broker.message}`, `correct ${FLUX_CONF_DIR}, then flux config reload`)];
  if (!files) return [];
  return COMPARED.filter(([k]) => broker[k] !== files[k]).map(([k, name]) =>
    warning("broker", `the broker runs with ${name} = ${broker[k]}, ${FLUX_CONF_DIR} says ${files[k]}`, "flux config reload (as the instance owner), or restart flux"),
  );
}

async function openBus(opts: LiveOptions): Promise<Systemd> {
  // Loaded only here: the D-Bus library is not needed to decide a login.
  const { openSystemd } = await import("../systemd/systemd");
  return openSystemd(false, { timeoutMs: Math.min(opts.timeoutMs, 2000), ...(opts.busAddress ? { address: opts.busAddress } : {}) });
}

export async function auditLive(tree: Tree, opts: LiveOptions, files?: PamConfig): Promise<LiveAudit> {
  const findings: Finding[] = [...auditCgroup(tree.read("/proc/self/mountinfo") ?? "")];
  const deadline = new Deadline(opts.timeoutMs);
  const [broker, bus] = await Promise.allSettled([askBroker(opts.uri, deadline), openBus(opts)]);
  const sd = bus.status === "fulfilled" ? bus.value : undefined;
  try {
    if (sd) {
      try {
        findings.push(...auditSystemdVersion(await sd.version({ timeoutMs: 2000 })));
      } catch (e) {
        findings.push(warning("systemd", `systemd did not say its version: ${(e as Error).message}`, `check by hand that systemd is 239 or newer (systemctl --version)`));
      }
    } else {
      const why = (bus as PromiseRejectedResult).reason as Error;
      findings.push(
        warning("systemd", `the system bus is not reachable (${why.message}): systemd's version not checked`, "start dbus, and run flux-pam doctor as root on the node"),
      );
    }
    if (broker.status === "rejected") {
      const why = (broker.reason as Error).message;
      findings.push(warning("broker", `${opts.uri} not reachable (${why}): running jobs unknown`, "start the system instance (systemctl start flux), or give --uri"));
      findings.push(...auditLingerFiles(tree, "flux", "broker not reachable, every linger file counts"));
      return { findings };
    }
    const b = broker.value;
    const owner = getpwuid(b.owner)?.name;
    const jobs = [...b.users.values()].reduce((a, n) => a + n, 0);
    findings.push(ok("broker", `${opts.uri}: rank ${b.rank}, instance owner ${owner ?? "(no name)"} (uid ${b.owner}), ${jobs} running job${jobs === 1 ? "" : "s"} here`));
    if (b.hosts) findings.push(...auditRanksPerNode(b.hosts));
    findings.push(...auditConfigInForce(b.config, files));
    if (!(b.config instanceof ConfigError)) findings.push(rootOwnerFinding("broker", b.config, `${opts.uri}, config in force`, b.owner));
    if (b.mapper?.loaded === true) findings.push(ok("broker", "sdexec-mapper answers: the prolog can map jobs' resources to the slice's properties"));
    else if (b.mapper)
      findings.push(
        error(
          "broker",
          `sdexec-mapper does not answer (${b.mapper.why}) while exec.sdexec-constrain-resources is on: every prolog fails`,
          "set enable = true in [systemd] and restart flux (flux-core loads sdexec-mapper at start, only with it); or flux module load sdexec-mapper",
        ),
      );
    const users: JobUserLinger[] = [];
    for (const uid of [...b.users.keys()].filter((u) => u !== b.owner).sort((x, y) => x - y)) {
      const pw = getpwuid(uid);
      if (!pw) {
        findings.push(warning("linger", `uid ${uid} has running jobs here but no passwd entry: its linger was not checked`, "check the node's NSS (getent passwd UID)"));
        continue;
      }
      const u = { name: pw.name, uid };
      try {
        users.push({ ...u, linger: lingerEnabled(u, { lingerDir: opts.lingerDir }) });
      } catch (e) {
        findings.push(warning("linger", `the linger of ${pw.name} (uid ${uid}), who has running jobs here, could not be read: ${(e as Error).message}`, `ls -ld /var/lib/systemd/linger; its prologs here fail until it can`));
      }
    }
    findings.push(...auditJobUsersLinger(users, b.rank));
    return { findings, owner };
  } finally {
    await sd?.close();
  }
}
