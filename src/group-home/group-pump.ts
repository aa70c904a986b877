// The fan-out pump of the groups this node is home of: one per group, strictly in log order, it
// hands the log's messages to the members' homes (through `fanout`) and moves the group's
// fan-out cursor, a device cursor of the key `g:<group>` (replicated, so a new home resumes from
// it). A message goes out only once every member's copy of the one before it is durable, to the
// members at the message's seq: the pump keeps the member state at its cursor, started from the
// latest snapshot at or before the cursor (cursor FANBASE) and moved by the events it passes.
// The loop is in pump.ts, the posts waiting for it in pump-waiters.ts.
import type { Logger } from 'pino';
import type { Store } from '../store/index.ts';
import type { FanItem } from '../protocol/peer.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { COPY_DEADLINE_MS } from '../channel/timing.ts';
import { GroupPump } from './pump.ts';

export { FANBASE, FANOUT, genPrefix, isLogEvent, SNAPSHOT } from './group-keys.ts';

export type PumpComponents = {
  store: Store;
  owns: (key: string) => boolean;
  readable?: (key: string) => number;
  fanout: (items: FanItem[], still: () => boolean) => Promise<void>;
  ringChange: (ms: number) => Promise<void>;
  /** The cursor moved to `cursor` after `ms` spent handing out `entries` entries of `bytes`. */
  advanced?: (group: string, cursor: number, work: { ms: number; entries: number; bytes: number }) => void;
  /** How long a post waits for the cursor (default COPY_DEADLINE_MS). */
  deadlineMs?: number;
  /** Drives the post deadlines and the pauses between attempts (default: systemClock). */
  clock?: Clock;
  /** Aborted when the node stops: the loops end and waiting posts are answered unavailable. */
  signal?: AbortSignal;
  log: Logger;
};

export type Pump = {
  /** Starts the group's pump unless it runs. */
  kick(group: string): void;
  /** Resolves true once the fan-out cursor is at `seq` or beyond, false after the deadline (the
   * pump goes on); UnavailableError once this node stops serving the group (the next home goes
   * on, and the sender's retry reaches it). */
  reached(group: string, seq: number): Promise<boolean>;
  ringChanged(): void;
  readonly running: number;
};

export function createPump(c: PumpComponents): Pump {
  return new GroupPump(c, c.clock ?? systemClock, c.deadlineMs ?? COPY_DEADLINE_MS);
}
