// The replica role: every copy of a key beyond its home's. It owns replication (a home's commits
// sent in order to the key's replicas, and a write confirmed only once all have it), the handoff
// copies around a join or a graceful leave, and custody (whether this node's copy is complete).
// It does not own the ring or membership (src/cluster), the store, or serving a key as its home.
export { createReplicator } from './replicator.ts';
export type { ReplicaProgress, Replicator, ReplicatorComponents } from './replicator.ts';
export { createHandoff, fitPage } from './handoff.ts';
export type { CopyProgress, Handoff, HandoffComponents } from './handoff.ts';
export { createCustody } from './custody.ts';
export type { Custody } from './custody.ts';
