// Typed errors of the Flux client: each carries what a person needs to fix it.

import { constants } from "node:os";

let errnoNames: Map<number, string> | undefined;

/** EPERM for 1, ... (built on first use: only error paths need it). */
export function errnoName(errnum: number): string {
  errnoNames ??= new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));
  return errnoNames.get(errnum) ?? `errno ${errnum}`;
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
