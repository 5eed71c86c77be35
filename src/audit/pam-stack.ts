// The PAM stacks that use pam_flux.so: in account, first and requisite in session, no pam_systemd.so.

import { parseFsd } from "../flux/fsd";
import { type Finding, error, ok, warning } from "./finding";
import { type PamEntry, type PamLoader, type PamStack, actionFor, controlText, expandService, moduleName, where } from "./pam-conf";
import { auditHelpers } from "./pam-helper";
import type { Tree } from "./tree";

export const PAM_DIRS = ["/etc/pam.d", "/usr/lib/pam.d"];
const SSHD = "sshd";
/** pam_flux(8)'s options; test/audit checks this against pam_flux.c's parse_args. */
export const PAM_FLUX_OPTIONS = ["allow-guest-user", "no-job-hint", "debug", "uri=", "helper=", "scope-prefix=", "lock-dir=", "timeout="];
const MAX_TIMEOUT_S = 3600; // pam_flux.c: MAX_TIMEOUT_MS

/** Why pam_flux.so would refuse an argument (and fail every call with PAM_SYSTEM_ERR), or undefined. */
export function optionProblem(arg: string): string | undefined {
  if (arg === "allow-guest-user" || arg === "no-job-hint" || arg === "debug") return undefined;
  const eq = arg.indexOf("=");
  const key = eq < 0 ? arg : arg.slice(0, eq + 1);
  const value = eq < 0 ? "" : arg.slice(eq + 1);
  switch (key) {
    case "uri=":
    case "scope-prefix=":
      return value === "" ? `${key} needs a value` : undefined;
    case "helper=":
    case "lock-dir=":
      return value.startsWith("/") ? undefined : `${key} needs an absolute path`;
    case "timeout=": {
      // As pam_flux.c reads it: a number, then a lower-case unit or none; 1 ms to 1 h.
      let s = Number.NaN;
      if (/^[0-9.]/.test(value) && value === value.toLowerCase()) {
        try {
          s = parseFsd(value);
        } catch {
          // not a duration: s stays NaN and is reported below
        }
      }
      return s >= 0.001 && s <= MAX_TIMEOUT_S ? undefined : `timeout= needs a duration from 1ms to 1h, not "${value}"`;
    }
    default:
      return `unknown option "${arg}"`;
  }
}

export function isPamFlux(e: PamEntry): boolean {
  return moduleName(e) === "pam_flux.so";
}

/** `account required pam_exec.so ... /usr/libexec/flux-pam/flux-pam account`: the module-less account check. */
export function isFluxPamExec(e: PamEntry): boolean {
  if (moduleName(e) !== "pam_exec.so") return false;
  const i = e.args.findIndex((a) => a.split("/").pop() === "flux-pam");
  return i >= 0 && e.args[i + 1] === "account";
}

export interface PamAuditContext {
  /** pam.manage-user-slice from the Flux config; undefined when it could not be read */
  manageUserSlice?: boolean;
  /** the node's files (pam_access's rules, pam_flux.so's helper); without them those are not judged */
  files?: Tree;
}

/** Is the line a final "no" for whoever reaches it (account required pam_deny.so)? */
function denies(e: PamEntry): boolean {
  const a = actionFor(e.control, "auth_err"); // what pam_deny.so's account function returns
  return moduleName(e) === "pam_deny.so" && (a === "bad" || a === "die");
}

/**
 * Is there a line after `i` that denies and that a success in between cannot jump over? Debian's
 * common-account has `[success=1 default=ignore] pam_unix.so` then `requisite pam_deny.so`: that
 * pam_deny.so stops nobody pam_unix.so knows.
 */
function reachableDenial(stack: PamEntry[], i: number): boolean {
  return stack.some((e, j) => {
    if (j <= i || !denies(e)) return false;
    return !stack.slice(i + 1, j).some((k, n) => {
      const jump = actionFor(k.control, "success");
      return /^\d+$/.test(jump) && i + 1 + n + Number(jump) >= j;
    });
  });
}

/** Can the line's success make the stack succeed (what a failed sufficient line falls back on)? */
function canSucceed(e: PamEntry): boolean {
  return actionFor(e.control, "success") === "ok";
}

function accountLine(e: PamEntry, account: PamEntry[], svc: string): Finding[] {
  const at = where(e.at);
  const name = isPamFlux(e) ? "pam_flux.so" : "flux-pam account (pam_exec.so)";
  const out: Finding[] = [];
  if (e.dash)
    out.push(warning("pam", `${at}: "-account ... ${name}": if the module cannot be loaded the line is skipped without a word`, `drop the "-" in front of "account"`));
  const deny = actionFor(e.control, "perm_denied");
  if (deny === "bad" || deny === "die") return out;
  const i = account.indexOf(e);
  if (deny === "ignore" && e.control.kind === "keyword" && e.control.word === "optional")
    return [...out, error("pam", `${at}: account optional ${name}: its answer does not decide who logs in`, `make it "account sufficient ${name}" followed by "account required pam_deny.so"`)];
  if (deny === "ignore") {
    if (reachableDenial(account, i)) return out;
    const others = account.some((x, j) => j !== i && canSucceed(x));
    const what = `${at}: account ${controlText(e.control)} ${name} is not followed by "account required pam_deny.so"`;
    const fix = `add "account required pam_deny.so" after it in ${svc}`;
    return [
      ...out,
      others
        ? error("pam", `${what}: a user it turns away is still admitted by the other account modules`, fix)
        : warning("pam", `${what}: a user it turns away is refused only because no other module said yes`, fix),
    ];
  }
  if (deny === "ok" || deny === "done")
    return [...out, error("pam", `${at}: account ${controlText(e.control)} ${name}: a denial counts as success`, `use "account sufficient ${name}" followed by "account required pam_deny.so"`)];
  return [...out, warning("pam", `${at}: account ${controlText(e.control)} ${name}: jumps or resets on a denial; check by hand that a denial denies`, `use "account sufficient ${name}" followed by "account required pam_deny.so"`)];
}

/** Modules whose success admits whoever they know of: as "sufficient" in account, a way in without a job. */
const ADMITS_ALL: Record<string, string> = {
  "pam_permit.so": "every user",
  "pam_unix.so": "every user whose account has not expired",
  "pam_localuser.so": "every user in /etc/passwd",
};

export const ACCESS_CONF = "/etc/security/access.conf";
const ACCESS_D = "/etc/security/access.d";
/** A rule that denies every user from everywhere: what pam_access needs last, since it grants when no rule matches. */
const DENY_ALL = /^\s*-\s*:\s*ALL\s*:\s*ALL\s*$/;

/**
 * The files pam_access reads for a line (accessfile=, or access.conf then access.d/*.conf in
 * order), and whether one of them denies everyone its earlier rules did not match: pam_access
 * grants a user no rule matches (PAM_SUCCESS), so without `-:ALL:ALL` a sufficient pam_access.so
 * admits everyone. Undefined: not decidable here (another field separator).
 */
export function accessDeniesTheRest(args: readonly string[], files: Pick<Tree, "read" | "list">): { files: string[]; deniesAll: boolean } | undefined {
  if (args.some((a) => a.startsWith("fieldsep="))) return undefined;
  const own = args.find((a) => a.startsWith("accessfile="))?.slice("accessfile=".length);
  const paths = own ? [own] : [ACCESS_CONF, ...(files.list(ACCESS_D) ?? []).filter((n) => n.endsWith(".conf")).sort().map((n) => `${ACCESS_D}/${n}`)];
  const deniesAll = paths.some((p) => (files.read(p) ?? "").split("\n").some((l) => !l.trimStart().startsWith("#") && DENY_ALL.test(l)));
  return { files: paths, deniesAll };
}

/**
 * The account lines before the denial that a success of theirs ends the stack with (sufficient,
 * [success=done]), pam_flux's own aside: each admits users without a job. pam_access.so is the
 * admins' way in and fine when its rules end by denying everyone else; the modules that admit
 * whoever they know are errors; any other is said, to be checked by hand.
 */
function accountEscapes(account: PamEntry[], admit: PamEntry[], svc: string, files: PamAuditContext["files"]): Finding[] {
  const first = Math.min(...admit.map((e) => account.indexOf(e)));
  const denial = account.findIndex((e, j) => j > first && denies(e));
  const before = denial < 0 ? account : account.slice(0, denial);
  const out: Finding[] = [];
  for (const e of before) {
    if (admit.includes(e) || actionFor(e.control, "success") !== "done") continue;
    const m = moduleName(e);
    const line = `${where(e.at)}: account ${controlText(e.control)} ${m}`;
    if (m === "pam_access.so") {
      if (!files) continue;
      const rules = accessDeniesTheRest(e.args, files);
      if (!rules)
        out.push(warning("pam", `${line} uses another field separator: whether its rules deny everyone they do not admit was not checked`, `check by hand that its rules end with a line denying ALL users from ALL origins`));
      else if (!rules.deniesAll)
        out.push(
          error(
            "pam",
            `${line}: ${rules.files.join(", ")} ${rules.files.length === 1 ? "has" : "have"} no "-:ALL:ALL" rule, and pam_access admits every user no rule names: anyone ${svc} authenticates logs in, job or not`,
            `list the administrators ("+:admins:ALL"), then end ${rules.files[0]} with the line "-:ALL:ALL"`,
          ),
        );
    } else if (ADMITS_ALL[m])
      out.push(error("pam", `${line}: its success ends the account stack, and it succeeds for ${ADMITS_ALL[m]}: they log in, job or not`, `make it "required" (or remove it), so that only pam_flux.so's answer admits`));
    else
      out.push(
        warning("pam", `${line}: its success ends the account stack before pam_flux.so's answer counts: whoever it admits logs in without a job`, `check by hand that ${m} admits only the users meant to log in without a job`),
      );
  }
  return out;
}

/** A pam_exec.so line that runs flux-pam (any subcommand). */
function runsFluxPamViaExec(e: PamEntry): boolean {
  return moduleName(e) === "pam_exec.so" && e.args.some((a) => a.split("/").pop() === "flux-pam");
}

/**
 * pam_exec hands flux-pam the PAM environment, and the Bun runtime inside the binary reads
 * BUN_OPTIONS (e.g. --preload=FILE) from it before any of our code runs (and BUN_JSC_*, and
 * BUN_BYTECODE_ORDER_OUT, a file it writes at exit): wherever a user can put variables into that
 * environment, pam_exec + flux-pam runs the user's code as root. pam_flux.so
 * scrubs the environment; pam_exec cannot. Nor can it carry the account's mark or set XDG_*.
 */
function pamExecEnvironment(entries: PamEntry[], svc: string): Finding[] {
  const out: Finding[] = [];
  const userEnv = entries.find((e) => moduleName(e) === "pam_env.so" && e.args.includes("user_readenv=1"));
  for (const e of entries.filter(runsFluxPamViaExec)) {
    if (e.type === "session")
      out.push(
        error("pam", `${where(e.at)}: session ... pam_exec.so ... flux-pam: pam_exec can neither see the account's admission nor set the session's environment, and passes the PAM environment to the Bun runtime`, `use "session requisite pam_flux.so" instead (pam_flux(8))`),
      );
    else if (userEnv)
      out.push(
        error("pam", `${where(e.at)}: pam_exec.so runs flux-pam with the PAM environment, which ${where(userEnv.at)} (pam_env user_readenv=1) lets the user fill: BUN_OPTIONS there runs their code as root`, `use "account sufficient pam_flux.so" (it scrubs the environment), or drop user_readenv=1`),
      );
  }
  return out;
}

/** requisite, or the bracket form of it: a failure ends the stack at once, PAM_IGNORE is ignored. */
function isRequisite(e: PamEntry): boolean {
  if (e.control.kind === "keyword") return e.control.word === "requisite";
  return actionFor(e.control, "session_err") === "die" && actionFor(e.control, "ignore") === "ignore" && actionFor(e.control, "success") === "ok";
}

function sessionStack(session: PamEntry[], svc: string): Finding[] {
  const out: Finding[] = [];
  const e = session.find(isPamFlux)!;
  const at = where(e.at);
  const first = session[0]!;
  if (first !== e)
    out.push(
      error(
        "pam",
        `${at}: pam_flux.so is not the first session module: ${moduleName(first)} (${where(first.at)}) runs before it`,
        `move "session requisite pam_flux.so" above every other session line of ${svc}${first.at.length > 1 ? " and above the include that brings in " + moduleName(first) : ""}`,
      ),
    );
  if (e.substack)
    out.push(
      error(
        "pam",
        `${at}: pam_flux.so is inside the substack of ${e.substack.file}:${e.substack.line}: its requisite ends only that substack, and the session modules after it still run before the login is refused`,
        `put "session requisite pam_flux.so" in ${svc} itself, as its first session line, not in a substack`,
      ),
    );
  if (!isRequisite(e)) {
    const why =
      e.control.kind === "keyword" && e.control.word === "required"
        ? "when it fails, the other session modules still run before the login is refused"
        : "a failure to set up the scope does not stop the login at once";
    out.push(error("pam", `${at}: session ${controlText(e.control)} pam_flux.so instead of requisite: ${why}`, `make it "session requisite pam_flux.so"`));
  }
  if (e.dash)
    out.push(warning("pam", `${at}: "-session ... pam_flux.so": if the module cannot be loaded the line is skipped and logins are not contained`, `drop the "-" in front of "session"`));
  for (const s of session.filter((x) => moduleName(x) === "pam_systemd.so")) {
    const inc = s.at.length > 1 ? s.at[0]!.file : undefined;
    out.push(
      error(
        "pam",
        `${where(s.at)}: pam_systemd.so is in the session stack of ${svc} with pam_flux.so: logind would move the login out of the job's slice and stop user@UID.service on logout`,
        inc
          ? `replace the include of ${inc} in ${svc} with the lines of it ${svc} needs, without pam_systemd.so`
          : `remove this line from ${svc}`,
      ),
    );
  }
  return out;
}

/** The findings for one service's expanded stack. */
export function auditPamStack(stack: PamStack, ctx: PamAuditContext = {}): Finding[] {
  const svc = stack.path;
  const out: Finding[] = stack.problems.map((p) =>
    warning("pam", `${where(p.at)}: ${p.what}`, "fix or remove the line: libpam fails the stack it belongs to"),
  );
  const flux = stack.entries.filter(isPamFlux);
  for (const e of flux)
    for (const a of e.args) {
      const p = optionProblem(a);
      if (p)
        out.push(
          error("pam", `${where(e.at)}: pam_flux.so ${p}: every ${e.type} call through this line fails (PAM_SYSTEM_ERR)`, `remove or correct it (the options are in pam_flux(8))`),
        );
    }
  for (const e of flux.filter((x) => x.type === "auth" || x.type === "password"))
    out.push(error("pam", `${where(e.at)}: pam_flux.so under ${e.type}: it has no ${e.type} function, so the line fails (PAM_MODULE_UNKNOWN)`, "remove the line: pam_flux.so is an account and session module"));

  const account = stack.entries.filter((e) => e.type === "account");
  const admit = account.filter((e) => isPamFlux(e) || isFluxPamExec(e));
  if (flux.length === 0 && admit.length === 0)
    out.push(
      error(
        "pam",
        `${svc}: pam_flux.so is not used: anyone ${stack.service} authenticates may log in, job or not`,
        `add "account sufficient pam_flux.so" before "account required pam_deny.so" (pam_flux(8))`,
      ),
    );
  else if (admit.length === 0)
    out.push(
      error(
        "pam",
        `${svc}: pam_flux.so is not in the account stack: its session part contains only logins its account part admitted`,
        `add "account sufficient pam_flux.so" before "account required pam_deny.so"`,
      ),
    );
  for (const e of admit) out.push(...accountLine(e, account, svc));
  if (admit.length > 0) out.push(...accountEscapes(account, admit, svc, ctx.files));
  out.push(...pamExecEnvironment(stack.entries, svc));

  const session = stack.entries.filter((e) => e.type === "session");
  if (session.some(isPamFlux)) out.push(...sessionStack(session, svc));
  else if (admit.length > 0 && ctx.manageUserSlice === true)
    out.push(
      warning(
        "pam",
        `${svc}: pam_flux.so is not in the session stack while pam.manage-user-slice is on: these logins are not put into the user's slice`,
        `add "session requisite pam_flux.so" as the first session line of ${svc}`,
      ),
    );

  const helpers = ctx.files ? auditHelpers(ctx.files, flux) : [];
  if (out.length === 0) {
    const acc = admit.map((e) => `account ${controlText(e.control)} ${isPamFlux(e) ? "pam_flux.so" : "flux-pam (pam_exec.so)"} (line ${e.at.at(-1)!.line})`);
    const ses = session.find(isPamFlux);
    const parts = [...acc, ses ? `session requisite pam_flux.so first (line ${ses.at.at(-1)!.line}), no pam_systemd.so` : "no pam_flux.so in session"];
    out.push(ok("pam", `${svc}: ${parts.join("; ")}`));
  }
  return [...out, ...helpers];
}

/** Backups and editor files in /etc/pam.d are not services anyone uses. */
const NOT_A_SERVICE = /(~|\.dpkg-[a-z]+|\.rpm(new|save|orig)|\.bak|\.orig|\.swp)$/;

export function pamLoader(tree: Tree): PamLoader {
  return (name) => {
    const paths = name.startsWith("/") ? [name] : PAM_DIRS.map((d) => `${d}/${name}`);
    for (const path of paths) {
      const st = tree.lstat(path);
      if (!st || st.isDirectory()) continue;
      const text = tree.read(path);
      if (text !== undefined) return { path, text };
    }
    return undefined;
  };
}

export interface PamAudit {
  findings: Finding[];
  /** the lock-dir= options of pam_flux.so session lines */
  lockDirs: string[];
}

/**
 * Audits /etc/pam.d/sshd and every other service whose stack uses pam_flux.so, except files only
 * included by others (common-account and the like are audited inside the services that include them).
 */
export function auditPam(tree: Tree, ctx: PamAuditContext = {}): PamAudit {
  const load = pamLoader(tree);
  const names = new Set<string>();
  for (const d of PAM_DIRS) for (const n of tree.list(d) ?? []) if (!n.startsWith(".") && !NOT_A_SERVICE.test(n)) names.add(n);
  const stacks = [...names].sort().flatMap((n) => expandService(n, load) ?? []);
  const included = new Set(stacks.flatMap((s) => [...s.included]));
  const uses = (s: PamStack) => s.entries.some((e) => isPamFlux(e) || isFluxPamExec(e));
  const audited = stacks.filter((s) => s.service === SSHD || (uses(s) && !included.has(s.path)));
  const findings: Finding[] = [];
  if (!audited.some((s) => s.service === SSHD))
    findings.push(warning("pam", `no ${PAM_DIRS[0]}/${SSHD}: ssh logins were not checked (is sshd installed?)`, `install openssh-server and add pam_flux.so to ${PAM_DIRS[0]}/${SSHD}`));
  for (const s of audited) findings.push(...auditPamStack(s, { ...ctx, files: tree }));
  const lockDirs = audited.flatMap((s) =>
    s.entries.filter((e) => e.type === "session" && isPamFlux(e)).flatMap((e) => e.args.filter((a) => a.startsWith("lock-dir=")).map((a) => a.slice(9))),
  );
  return { findings, lockDirs: [...new Set(lockDirs)] };
}
