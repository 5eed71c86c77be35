// Where the broker is: a local:// URI names a unix socket.

import { quote } from "./errors";

export const SYSTEM_URI = "local:///run/flux/local";

export class UriError extends Error {
  override name = "UriError";
}

/** The unix socket path of a local:// URI. Only local:// can be reached from a node. */
export function socketPath(uri: string): string {
  const m = /^local:\/\/(\/.*)$/.exec(uri);
  if (!m || m[1]!.includes("\0")) throw new UriError(`${quote(uri, 200)} is not a local:// URI with an absolute socket path`);
  return m[1]!;
}

/**
 * The local:// URI of a child instance advertised as annotations.user.uri = ssh://host/path.
 * Only the path is used: the child runs on this node (its first rank is ours).
 */
export function childLocalUri(sshUri: string): string {
  const m = /^ssh:\/\/[^/]+(\/.*)$/.exec(sshUri);
  if (!m || m[1]!.includes("\0")) throw new UriError(`${quote(sshUri, 200)} is not an ssh://host/path URI`);
  return `local://${m[1]}`;
}

/**
 * The broker URI a PAM or hook invocation may use. FLUX_URI is taken only from a caller whose
 * real uid is 0 (sshd, flux-run-prolog): under su/sudo the environment is the user's, and a
 * URI pointing at a fake broker would let them in.
 */
export function brokerUri(option: string | undefined, envUri: string | undefined, realUid: number): string {
  if (option !== undefined && option !== "") return option;
  if (realUid === 0 && envUri !== undefined && envUri !== "") return envUri;
  return SYSTEM_URI;
}
