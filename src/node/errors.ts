// Errors of the node state: each names the path and what is wrong with it.

export class NodeStateError extends Error {
  override name = "NodeStateError";
  constructor(
    readonly path: string,
    detail: string,
  ) {
    // A path longer than any sane one (PATH_MAX is 4096) is clipped: the reason must stay on the line.
    super(`${path.length > 256 ? `${path.slice(0, 253)}...` : path}: ${detail}`);
  }
}

/** The per-uid lock was not acquired in time. */
export class LockTimeoutError extends NodeStateError {
  override name = "LockTimeoutError";
}
