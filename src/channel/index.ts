// Ordered work between nodes: per key (a destination, a group), one batch in flight at a time
// within a size budget, so that a later batch never overtakes an earlier one; and the one place
// for how long cross-node work retries (timing.ts).
export { Drain } from './drain.ts';
export type { DrainWork } from './drain.ts';
export { OrderedChannel } from './ordered.ts';
export type { ChannelInit, Limit, SendBatch } from './ordered.ts';
export { KeyedBatcher } from './batcher.ts';
export type { BatchRun } from './batcher.ts';
export { CALL_DEADLINE_MS, COPY_DEADLINE_MS, RETRY_MS } from './timing.ts';
