// Typed errors of the systemd client: each names the unit, the call and systemd's own words.

/** What a failed call was doing, for the message: `StartUnit user@1000.service`. */
function what(method: string, unit: string | undefined): string {
  return unit === undefined ? method : `${method} ${unit}`;
}

/** The system bus could not be reached, or it refused us during the handshake. */
export class BusUnavailableError extends Error {
  override name = "BusUnavailableError";
  constructor(
    readonly address: string,
    readonly detail: string,
  ) {
    super(`cannot reach the system bus at ${address}: ${detail}`);
  }
}

/** systemd's answer for a unit it does not hold (GetUnit, KillUnit) or cannot find (LoadUnit). */
export const NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit";

/** systemd (or the bus) answered a call with a D-Bus error reply. */
export class DBusCallError extends Error {
  override name = "DBusCallError";
  constructor(
    readonly method: string,
    readonly unit: string | undefined,
    /** e.g. org.freedesktop.systemd1.NoSuchUnit */
    readonly dbusName: string,
    /** systemd's own explanation */
    readonly text: string,
  ) {
    super(`${what(method, unit)}: ${text} (${dbusName})`);
  }
}

/** No answer within the deadline: the bus or systemd is stuck. */
export class DBusTimeoutError extends Error {
  override name = "DBusTimeoutError";
  constructor(
    readonly method: string,
    readonly unit: string | undefined,
    readonly ms: number,
  ) {
    super(`${what(method, unit)}: no answer from the system bus within ${ms} ms`);
  }
}

/** The connection went away while a call was in flight. */
export class BusClosedError extends Error {
  override name = "BusClosedError";
  constructor(
    readonly method: string,
    readonly unit: string | undefined,
    detail: string,
  ) {
    super(`${what(method, unit)}: the system bus connection closed (${detail})`);
  }
}

/** A job systemd accepted did not finish with result "done" (failed, canceled, timeout, dependency...). */
export class JobFailedError extends Error {
  override name = "JobFailedError";
  constructor(
    readonly method: string,
    readonly unit: string,
    readonly job: string,
    readonly result: string,
  ) {
    super(`${what(method, unit)}: job ${job} finished with result "${result}"${resultHint(result)}`);
  }
}

function resultHint(result: string): string {
  switch (result) {
    case "failed":
      return " (see journalctl -u for the unit)";
    case "dependency":
      return " (a unit it depends on failed)";
    case "canceled":
      return " (another job replaced it)";
    default:
      return "";
  }
}

/** systemd accepted a job but did not report it finished within the deadline. */
export class JobTimeoutError extends Error {
  override name = "JobTimeoutError";
  constructor(
    readonly method: string,
    readonly unit: string,
    readonly job: string,
    readonly ms: number,
  ) {
    super(`${what(method, unit)}: job ${job} did not finish within ${ms} ms`);
  }
}

/** A unit property we cannot send: unknown to us, or a value systemd would not accept. */
export class PropertyError extends Error {
  override name = "PropertyError";
  constructor(
    readonly property: string,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`unit property ${property}=${JSON.stringify(value)}: ${reason}`);
  }
}

/** A reply whose shape is not what the method's signature promises. */
export class BadBusReplyError extends Error {
  override name = "BadBusReplyError";
  constructor(
    readonly method: string,
    readonly unit: string | undefined,
    detail: string,
  ) {
    super(`${what(method, unit)}: unexpected reply: ${detail}`);
  }
}
