// Errors of the node state: each names the path and what is wrong with it.

export class NodeStateError extends Error {
  override name = "NodeStateError";
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

/** The per-uid lock was not acquired in time. */
export class LockTimeoutError extends NodeStateError {
  override name = "LockTimeoutError";
}
