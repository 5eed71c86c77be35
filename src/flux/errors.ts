// Typed errors of the Flux client: each carries what a person needs to fix it.

// Linux errno names, for messages. A table rather than node:os: loading that module costs the
// login path a third of a millisecond, and only error messages need the names.
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
  9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY",
  17: "EEXIST", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE",
  28: "ENOSPC", 30: "EROFS", 32: "EPIPE", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG",
  38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 61: "ENODATA", 62: "ETIME", 71: "EPROTO",
  74: "EBADMSG", 75: "EOVERFLOW", 84: "EILSEQ", 90: "EMSGSIZE", 95: "EOPNOTSUPP", 98: "EADDRINUSE",
  104: "ECONNRESET", 107: "ENOTCONN", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH",
  114: "EALREADY", 115: "EINPROGRESS", 125: "ECANCELED",
};

/**
 * A value from outside (a broker, the environment) quoted for an error message: as a JSON string
 * (control characters escaped, so the message stays one line) and clipped to `max` characters.
 */
export function quote(value: string, max = 64): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max - 3)}...` : value);
}

/** EPERM for 1, ... */
export function errnoName(errnum: number): string {
  return ERRNO_NAMES[errnum] ?? `errno ${errnum}`;
}

/** The broker answered a request with an error response. */
export class FluxRpcError extends Error {
  override name = "FluxRpcError";
  constructor(
    readonly topic: string,
    readonly errnum: number,
    readonly text: string | undefined,
  ) {
    super(`${topic}: ${text ?? errnoName(errnum)}${text ? ` (${errnoName(errnum)})` : ""}`);
  }
}

/** No broker at the socket, or it could not be reached in time. */
export class BrokerUnavailableError extends Error {
  override name = "BrokerUnavailableError";
  constructor(
    readonly path: string,
    detail: string,
    /** the errno name of the cause, when there is one (ENOENT, ENOTSOCK, ECONNREFUSED, ECONNRESET, ...) */
    readonly code?: string,
  ) {
    super(`cannot reach the Flux broker at ${path}: ${detail}`);
  }
}

/** The broker refused the connection in its one-byte handshake. */
export class HandshakeRefusedError extends Error {
  override name = "HandshakeRefusedError";
  constructor(
    readonly path: string,
    readonly errnum: number,
  ) {
    super(`the Flux broker at ${path} refused the connection: ${errnoName(errnum)}${errnum === 1 ? " (no assigned roles for this user)" : ""}`);
  }
}

/** The broker did not answer within the deadline. */
export class FluxTimeoutError extends Error {
  override name = "FluxTimeoutError";
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what}: no answer from the Flux broker within ${ms} ms`);
  }
}

/** The broker's answer does not have the shape the RPC promises. */
export class BadReplyError extends Error {
  override name = "BadReplyError";
  constructor(
    readonly topic: string,
    detail: string,
  ) {
    super(`${topic}: unexpected reply from the Flux broker: ${detail}`);
  }
}
