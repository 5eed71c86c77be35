// What the test broker pretends: a Flux node's rank, owner, config, jobs, and its misbehaviours.

export interface ScenarioJob {
  /** decimal job id (a string, so ids above 2^53 stay exact) */
  id: string;
  userid: number;
  /** RFC 21 state bit; default RUN (16) */
  state?: number;
  /** RFC 22 idset of broker ranks; default "0" */
  ranks?: string;
  /** the job's name (job-list's name); default "sleep" */
  name?: string;
  /** annotations.user.uri (an ssh:// URI) when the job is a Flux instance */
  uri?: string;
  /** cores / gpus per rank for R; default core "0" on each rank */
  cores?: string;
  gpus?: string;
}

export interface Scenario {
  rank?: number;
  /** host name of each rank (attr.get hostname, a job's nodelist); default node0, node1, ... */
  hosts?: string[];
  owner?: number;
  config?: Record<string, unknown>;
  /** the handshake byte: 0 accepts, an errno refuses and closes */
  handshake?: number;
  jobs?: ScenarioJob[];
  /** sdexec-mapper.lookup: "auto" derives properties from R; an object is sent as is */
  mapper?: "auto" | "absent" | Record<string, unknown>;
  /** per-topic misbehaviour */
  delayMs?: Record<string, number>;
  silent?: string[];
  /** per-topic: no answer to a request whose payload's JSON text contains this string */
  silentMatching?: Record<string, string>;
  garbage?: string[];
  errors?: Record<string, { errnum: number; text?: string }>;
  /** per-topic JSON sent verbatim instead of the computed answer (for replies that lie) */
  rawReplies?: Record<string, unknown>;
  /** per-topic payload text sent as is (for replies no JSON value can express: repeated keys, 1002.0) */
  rawText?: Record<string, string>;
  /** close the connection as soon as a request for one of these topics arrives */
  hangup?: string[];
}

export const RUN = 16;
