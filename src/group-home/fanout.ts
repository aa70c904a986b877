// Cluster-wide delivery for groups and relays: a group home's messages go to the members' homes
// in one request per home node (never one per member), retried on newer rings for the members
// whose home moved; typing notices and receipts go to the homes of the users who should see
// them; receipt queries are answered by the members' homes, one request per home node.
// This file is the surface; the work is in fan-delivery.ts and relays.ts.
import type { Ring } from '../ring/index.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import type { FanItem, PeerRequest } from '../protocol/peer.ts';
import type { Home, Homes } from '../home/home.ts';
import type { Router } from '../cluster/router.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { CALL_DEADLINE_MS } from '../channel/timing.ts';
import { FanDelivery } from './fan-delivery.ts';
import { Relays } from './relays.ts';

export { REQUEST_COPIES } from './fan-delivery.ts';

export type FanoutComponents = {
  self: string;
  ring: () => Ring;
  joined: () => boolean;
  /** This node's home, for members homed here (a LocalRoles, set once it exists). */
  locals: { readonly local: Home };
  router: Router;
  peerOf: (name: string) => string | undefined;
  request: (peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }) => Promise<unknown>;
  ringChange: (ms: number) => Promise<void>;
  /** One fan-out request went to a peer (for the metrics). */
  onRequest?: () => void;
  /** Whether the recipient takes typing from the sender (a block, contacts only): social.ts. */
  gate?: (from: string, to: string, kind: 'typing') => true | Promise<void>;
  /** How long a fan-out keeps retrying the copies not yet taken (default CALL_DEADLINE_MS). */
  deadlineMs?: number;
  /** Drives the deadline and the pauses between rounds (default: systemClock). */
  clock?: Clock;
  /** Aborted when the node stops: a fan-out still retrying ends with UnavailableError. */
  signal?: AbortSignal;
};

export type Fanout = Pick<Homes, 'group' | 'typing' | 'receipts'> & {
  /** Resolves once every member's copy of every item is durable at the member's home. */
  fanout(items: FanItem[], still?: () => boolean): Promise<void>;
  relay(users: string[], frame: ServerFrame): Promise<void>;
};

export function createFanout(c: FanoutComponents): Fanout {
  const delivery = new FanDelivery(c, c.clock ?? systemClock, c.deadlineMs ?? CALL_DEADLINE_MS);
  const relays = new Relays(c);
  return {
    fanout: (items, still) => delivery.fanout(items, still),
    relay: (users, frame) => relays.relay(users, frame),
    group: (actor, op, group, members) => c.router.groupCall(actor, op, group, members),
    typing: (from, target) => relays.typing(from, target),
    receipts: (user, conv) => relays.receipts(user, conv),
  };
}
