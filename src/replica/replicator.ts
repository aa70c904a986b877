// Replication: every commit a home makes for its users (entries and state) goes to the users'
// replicas, the next R-1 owners on the ring, in order per replica with one batch in flight;
// `sent` and `ok` wait until every current replica has it. A replica that misses earlier data
// says how far it is, and the home backfills from its store. Replicas accept writes only from
// the node their own ring names as the user's home (fencing).
//
// This file is the public surface (settings, interface, factory); the work is done by
// replication.ts (the home's view), replica-queue.ts (one ordered queue per replica),
// confirmations.ts (writes waiting for their replicas) and replica-apply.ts (the replica side).
import type { Logger } from 'pino';
import type { Ring } from '../ring/index.ts';
import type { Changed, ExportedEntry, Store } from '../store/index.ts';
import type { Page, PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { Clock } from '../clock/index.ts';
import { Replication } from './replication.ts';

export type ReplicatorComponents = {
  self: string;
  store: Store;
  ring: () => Ring;
  joined: () => boolean;
  peerOf: (name: string) => string | undefined;
  request: (peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }) => Promise<unknown>;
  ringChange: (ms: number) => Promise<void>;
  log: Logger;
  deadlineMs?: number;
  onBatch?: (dest: string, entries: number, users: number) => void;
  /** A user stopped going first to a replica: its writes waited longer than the deadline. */
  onUrgentExpired?: () => void;
  /** The write lease (see membership): without it no write is confirmed, and none is taken as a replica. */
  lease?: () => boolean;
  /** Whether this node's copy of a user it owns is complete (see custody): only those are sent to
   * replicas after a ring change, so a replica is never "filled" from a partial copy. */
  complete?: (user: string) => boolean;
  /** Replica side: an import brought the home's snapshot of the user (the copy here is complete). */
  onFilled?: (user: string) => void;
  /** Time for the pauses between attempts and for how long a user goes first (default: the system's). */
  clock?: Clock;
  /** Aborted when the node stops: every queue stops sending, every pause ends, and every write
   * still waiting for its replicas is answered unavailable (not confirmed). */
  signal?: AbortSignal;
};

export type Replicator = {
  /** The store committed these (from its onCommit hook): queue them for the replicas. */
  committed(entries: ExportedEntry[], changed: Changed): void;
  /** Resolves once every current replica of `user` has everything committed for it so far. */
  wait(user: string): Promise<void>;
  /** Replica side: apply a page from a home. */
  apply(fromName: string | undefined, page: Page): Promise<PeerReply>;
  /** The ring changed: send every owned user's state to its replicas (new ones get backfilled). */
  ringChanged(): void;
  /** Users queued, on the wire or waiting to be asked again, over all replicas. */
  pending(): number;
  /** (replica, user) pairs not known to be in sync: a ring change, a gap or a refusal put them
   * here, a clean acknowledgement takes them out. Live writes do not count, so this reaches 0
   * under traffic once re-replication after a change has finished. */
  behind(): number;
  /** Per replica with work: users queued, on the wire, waiting to ask again after a refusal, behind. */
  progress(): Record<string, ReplicaProgress>;
};

export type ReplicaProgress = { queued: number; inflight: number; deferred: number; behind: number };

export function createReplicator(c: ReplicatorComponents): Replicator {
  const r = new Replication(c);
  // Plain functions, as before: a caller may pass one on without its object.
  return {
    committed: (entries, changed) => r.committed(entries, changed),
    wait: (user) => r.wait(user),
    apply: (fromName, page) => r.apply(fromName, page),
    ringChanged: () => r.ringChanged(),
    pending: () => r.pending(),
    behind: () => r.behind(),
    progress: () => r.progress(),
  };
}
