// Cluster glue: runs membership over the peer transport (join, gossip, heartbeats, probes),
// turns membership events into ring swaps, and dispatches peer traffic to its handlers. The
// work is done by private classes: glue.ts (events, rounds, start/leave/stop), join.ts (joining
// through seeds), inbound.ts (validation, authorization, dispatch); this file is the interface.
import type { Logger } from 'pino';
import type { Clock } from '../clock/index.ts';
import type { Ring } from '../ring/index.ts';
import type { Membership, MembershipEvent, MemberView } from '../membership/index.ts';
import type { PeerOneWay, PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { PeerNet } from '../transport/index.ts';
import type { RefuseReason } from './peer-auth.ts';
import type { PeerDispatch } from './dispatch.ts';
import { ClusterGlue } from './glue.ts';

export type ClusterInit = {
  seeds: string[];
  /** With no seed reachable for this long, start a new cluster alone (used for remembered seeds). */
  aloneAfterMs?: number;
  vnodes?: number;
  replicas?: number;
  gossipMs?: number;
  probeTimeoutMs?: number;
  maxBody: number;
  /** Runs after a seed answered with its member table and before this node joins (the data copy). */
  /** `inPlace`: the seed still counts this node as a live member (it restarted before anyone
   * declared it dead), so no key moves to it and a member that does not answer may be skipped. */
  beforeJoin?: (members: { name: string; peer: string; addrs: string[] }[], inPlace: boolean) => Promise<void>;
};

export type ClusterComponents = {
  net: PeerNet;
  membership: Membership;
  log: Logger;
  onEvent?: (type: MembershipEvent['type']) => void;
  onInvalidFrame?: (from: string) => void;
  /** A peer request or message refused by authorization (see peer-auth.ts), or by validation ('invalid'). */
  onRefused?: (type: string, reason: RefuseReason) => void;
  /** Default systemClock: ring grace periods, refusal log pacing, the join retry pause, ringChange. */
  clock?: Clock;
  /** Aborting it stops the cluster like stop(): the gossip rounds end, the join retry loop ends,
   * every ringChange wait resolves. */
  signal?: AbortSignal;
  /** The table of peer request handlers to fill (default: a new one, see `dispatch`). */
  dispatch?: PeerDispatch;
};

export type Cluster = {
  ring(): Ring;
  joined(): boolean;
  /** Hears a strict majority of the members it knows (see membership). */
  hasMajority(): boolean;
  /** Holds the write lease: joined and heard from a strict majority lately (see membership). */
  lease(): boolean;
  peerOf(name: string): string | undefined;
  nameOf(peer: string): string | undefined;
  members(): MemberView[];
  /** Resolves on the next ring change, after `ms`, or once `signal` aborts. */
  ringChange(ms: number, signal?: AbortSignal): Promise<void>;
  /** `died`: members of `prev` that left the ring by being declared dead (not by leaving). */
  onRingChanged(cb: (ring: Ring, prev: Ring, died: string[]) => void): void;
  /** The node lost (false) or regained (true) a majority of the members it knows, lastingly:
   * without a majority and without the lease for CUT_OFF_ROUNDS gossip rounds in a row. */
  onMajority(cb: (majority: boolean) => void): void;
  /** Cut off from the majority (see onMajority): clients are sent away. */
  cutOff(): boolean;
  onMemberGone(cb: (name: string) => void): void;
  /** The one table of peer request handlers, by type. Membership's own (join, probe, ping,
   * members) are in it from the start; the rest register with `dispatch.on(t, handler)`. */
  dispatch: PeerDispatch;
  /** Serves the peer requests no handler is registered for in `dispatch` (every type but
   * membership's own, until the wiring registers them there). */
  onRequest(cb: (fromName: string | undefined, req: PeerRequest) => Promise<PeerReply>): void;
  onMessage(cb: (fromName: string | undefined, msg: PeerOneWay) => void): void;
  /** Starts gossip and joins through the seeds; `beforeJoin` (the node's handoff, which exists
   * only once the roles are wired) copies in what this node will own before the ring names it. */
  start(beforeJoin?: ClusterInit['beforeJoin']): void;
  /** Announces a graceful leave to every member (gossip), so they drop this node from the ring. */
  leave(): Promise<void>;
  stop(): void;
};

export function createCluster(init: ClusterInit, c: ClusterComponents): Cluster {
  const g = new ClusterGlue(init, c);
  const m = c.membership;
  // A plain object of bound functions: the wiring passes some of them on alone (cluster.ringChange).
  return {
    ring: () => g.rings.current,
    joined: () => m.joined(),
    hasMajority: () => m.hasMajority(),
    lease: () => m.lease(),
    peerOf: (name) => m.peerOf(name),
    nameOf: (peer) => g.nameOf(peer),
    members: () => m.members(),
    ringChange: (ms, signal) => g.rings.change(ms, signal),
    onRingChanged: (cb) => void g.ringListeners.push(cb),
    onMajority: (cb) => void g.majorityListeners.push(cb),
    cutOff: () => g.cutOff,
    onMemberGone: (cb) => void g.goneListeners.push(cb),
    dispatch: g.dispatch,
    onRequest: (cb) => g.dispatch.otherwise(cb),
    onMessage: (cb) => void (g.messageHandler = cb),
    start: (beforeJoin) => g.start(beforeJoin),
    leave: () => g.leave(),
    stop: () => g.stop(),
  };
}
