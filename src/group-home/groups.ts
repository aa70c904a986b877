// The group home: for the groups the ring gives this node (key `g:<group>`), it keeps the
// group's log — membership events and messages in one seq order, stored as the timeline of the
// key `g:<group>`, so replication, handoff and fencing treat it like any user's timeline. Per
// group, one batch at a time: ops and posts are appended in arrival order and made durable on
// every copy of the log; the pump (group-pump.ts) hands the messages to the members' homes, and
// a post is answered once the pump is past it. What a group may cost is bounded here: posts per
// second, the fan-out backlog, typing frames per second, and the events a load reads (a member
// snapshot every so many events; loading reads the latest snapshot and the events after it).
// This file is the surface; the work is in group-home.ts, log-batch.ts and group-state.ts.
import type { Logger } from 'pino';
import type { GroupLimits, Refusal } from '../groups/limits.ts';
import type { Store } from '../store/index.ts';
import type { CastFrame, FanItem, GroupOp, GroupPost, PostResult } from '../protocol/peer.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { GroupHome } from './group-home.ts';

export { groupKey } from './group-keys.ts';

/** `joined`: when each member joined (ms), an extension of the group reply. */
export type GroupInfo = { group: string; owner: string; members: string[]; joined: Record<string, number> };

export type GroupsComponents = {
  store: Store;
  /** Whether this node serves the key now (ring owner, not paused by a handoff). */
  owns: (key: string) => boolean;
  /** Resolves once the key's replicas hold everything committed for it so far. */
  replicated: (key: string) => Promise<void>;
  /** The highest seq of the key on every copy (the pump hands out nothing a crash could undo). */
  readable?: (key: string) => number;
  nextMid: () => string;
  midTime: (mid: string) => number;
  maxMembers: number;
  /** Hands group messages to the members' homes; resolves once every copy is durable there.
   * Gives up once `still()` turns false (this node no longer serves the group). */
  fanout: (items: FanItem[], still: () => boolean) => Promise<void>;
  /** Resolves when the ring changes or after `ms`. */
  ringChange: (ms: number) => Promise<void>;
  /** How long a post waits for its fan-out before it is answered unavailable (the pump goes on). */
  deadlineMs?: number;
  /** Pushes a frame to the online devices of these users (at their homes). */
  relay: (users: string[], frame: ServerFrame) => Promise<void>;
  /** Posts per second, fan-out backlog and typing frames per group (defaults: GROUP_LIMITS). */
  limits?: Partial<GroupLimits>;
  /** Membership events between two member snapshots of a group's log. */
  snapshotEvery?: number;
  /** A post or typing notice was refused by a group limit. */
  onLimited?: (reason: Refusal['reason']) => void;
  /** A member snapshot was written to a group's log. */
  onSnapshot?: () => void;
  /** The time the group budgets run on (default: the clock's). */
  now?: () => number;
  /** Drives the budgets, the post deadlines and the pump's pauses (default: systemClock). */
  clock?: Clock;
  /** Aborted when the node stops: the pumps end, and posts waiting for them are answered unavailable. */
  signal?: AbortSignal;
  log: Logger;
};

export type Groups = {
  /** A membership op or a query by `actor`; info and members answer the group. */
  op(actor: string, op: GroupOp, group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Orders posts into the log and fans them out; per post its mid or its refusal. */
  post(group: string, posts: GroupPost[]): Promise<PostResult[]>;
  /** Relays a typing notice or a receipt of a member to the other members. */
  cast(group: string, from: string, frame: CastFrame): Promise<void>;
  /** The ring changed: cached group state may be stale (the group moved away and back), and
   * groups this node now serves may have messages the previous home did not fan out. */
  ringChanged(): void;
  /** The groups this node is home of, and how many of their log entries the pumps have still
   * to hand out (0 when every member has every message). */
  progress(): { owned: number; fanoutBehind: number; pumping: number };
};

export const GROUP_LIMITS: GroupLimits = { rate: 200, burst: 400, backlog: 1000, backlogBytes: 8 << 20, typingFrames: 10_000 };
export const SNAPSHOT_EVERY = 256;

export function createGroups(c: GroupsComponents): Groups {
  const h = new GroupHome(c, c.clock ?? systemClock, { ...GROUP_LIMITS, ...c.limits }, c.snapshotEvery ?? SNAPSHOT_EVERY);
  // Bound, so that a caller may pass the methods on alone.
  return {
    op: (actor, op, group, members) => h.op(actor, op, group, members),
    post: (group, posts) => h.post(group, posts),
    cast: (group, from, frame) => h.cast(group, from, frame),
    ringChanged: () => h.ringChanged(),
    progress: () => h.progress(),
  };
}
