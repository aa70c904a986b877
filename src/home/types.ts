// What the home role offers (to gateways, routers and peers) and what it needs from its
// neighbours: the types only, so that every folder can name them without importing the role.
import type { Logger } from 'pino';
import type { Presence, SessionRef, Watcher } from '../presence/index.ts';
import type { Store, Unread } from '../store/index.ts';
import type { Entry, ServerFrame, UserPresence } from '../protocol/frames.ts';
import type { CastFrame, Delivery, FanItem, GroupPost, PostResult } from '../protocol/peer.ts';
import type { Clock } from '../clock/index.ts';
import type { Lane } from '../gateway/lane.ts';
import type { LaneMark } from '../protocol/peer.ts';
import type { GroupInfo } from '../group-home/groups.ts';
import type { Social } from '../social/social.ts';

export type { Watcher };

/** Delivers a frame to one connection held by a gateway (this node's own or a peer's). */
export type Push = (gateway: string, conn: string, frame: ServerFrame) => void;

export type SendResult = { mid: string; seq: number; ts: number; dup?: true };
export type Page = { msgs: Entry[]; more: boolean };

/** See Fences (home/fences.ts). */
export type LaneGuard = {
  arrives(m: LaneMark | undefined): boolean;
  overtakes(m: LaneMark | undefined, to: string): boolean;
  passing<T>(m: LaneMark | undefined, to: string, p: Promise<T>): Promise<T>;
  refused(m: LaneMark | undefined): void;
};

/** What a gateway asks of the homes of its users: implemented by the local home and by the router. */
export type Homes = {
  /** `lane`: the sending connection's, to keep its sends in order across retries (router); `at`:
   * its mark, which the home checks against its fences (home/fences.ts). */
  send(from: string, to: string, cid: string, body: string, lane?: Lane, at?: LaneMark): Promise<SendResult>;
  /** A group send: the sender's home dedups and mints the mid, the group's home orders it. */
  sendGroup(from: string, group: string, cid: string, body: string, lane?: Lane, at?: LaneMark): Promise<SendResult>;
  /** group_create/add/remove/leave (undefined) and group_info (the group). */
  group(actor: string, op: 'create' | 'add' | 'remove' | 'leave' | 'info', group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Relays a typing notice to the other party's or the members' online devices. */
  typing(from: string, target: { to: string } | { group: string }): Promise<void>;
  /** The newest mid each party of the conversation has read. */
  receipts(user: string, conv: string): Promise<Record<string, string>>;
  /** Registers a logged-in session; the caller replays from `acked` (or its own since). */
  login(s: SessionRef): Promise<{ seq: number; acked: number }>;
  logout(s: SessionRef): Promise<void>;
  sync(user: string, after: number, limit: number): Promise<Page>;
  history(user: string, conv: string, before: number | undefined, limit: number): Promise<Page>;
  /** Resolves once the moved cursor is durable. */
  ack(user: string, device: string, seq: number): Promise<void>;
  read(s: SessionRef, conv: string, seq: number): Promise<void>;
  unread(user: string): Promise<Unread>;
  /** `viewer`: who asks (hidden users look offline to them, section 13). */
  presence(users: string[], viewer?: string): Promise<Record<string, UserPresence>>;
  watch(w: Watcher, users: string[]): Promise<void>;
  unwatch(w: Watcher, users: string[]): Promise<void>;
};

/** The local home adds what only the owner does: deliveries from other homes, session upkeep. */
export type Home = Homes & {
  /** Appends copies delivered by a sender's home (idempotent by mid); resolves when durable. */
  deliver(items: Delivery[]): Promise<void>;
  /** Appends group messages for the members this node is home of; per item, the users whose
   * copy it could not take (not the home now, or paused): the group home routes them again. */
  deliverFan(items: FanItem[]): Promise<string[][]>;
  /** Pushes a typing notice or receipt to the online devices of these users. */
  relay(users: string[], frame: ServerFrame): void;
  /** Per user homed here, the newest mid read in `conv`. */
  readMarks(conv: string, users: string[]): Promise<Record<string, string>>;
  /** Whether this node serves the key now: the ring's owner, and not paused by a handoff. */
  serves(key: string): boolean;
  /** The lanes of the sends that reach this node, for passing a send on to the home the ring names
   * without overtaking an earlier one of its connection (home/fences.ts). */
  lanes: LaneGuard;
  /** Re-registers sessions (after a ring change); never replaces a newer session of the device.
   * Returns [conn, the user's newest seq] for each session it holds, to catch the gateway up. */
  register(sessions: SessionRef[]): Array<[string, number]>;
  /** A gateway's heartbeat for the connections it still holds: renews their sessions here (the
   * others expire) and returns the connections this home holds no session for. */
  renew(gateway: string, conns: string[]): string[];
  /** A gateway died or left: its sessions and watches go. */
  dropGateway(gateway: string): void;
  /** Expires sessions of gateways that stopped renewing. */
  tick(): void;
  /** Hands a copy to its key's home through the outbox (see `handOver` below). */
  handOver(sender: string, d: Delivery): Promise<void>;
  /** Hands over every outbox copy not already in flight (at start, and now and then). */
  replayOutbox(): Promise<{ delivered: number; failed: number }>;
  /** Stops writing to these users (they are being handed to a newcomer) until `release` or `ms`. */
  freeze(select: (user: string) => boolean, ms: number): { release(): void };
};

export type HomeComponents = {
  store: Store;
  presence: Presence;
  nextMid: () => string;
  midTime: (mid: string) => number;
  now: () => number;
  push: Push;
  log: Logger;
  /** Whether this node serves a user right now: its home by the ring, holding the write lease,
   * with a complete copy (always true on a lone node). */
  owns?: (user: string) => boolean;
  /** Why this node does not serve a user (for the `unavailable` message). */
  whyNot?: (user: string) => string;
  /** Hands a copy to a remote recipient's home; resolves once it is durable there. */
  deliverRemote?: (d: Delivery) => Promise<void>;
  /** Resolves once the user's replicas hold everything committed for the user so far. */
  replicated?: (user: string) => Promise<void>;
  /** Whether writes here have replicas at all (a cluster with R > 1 and other members). */
  replicating?: () => boolean;
  /** Hands posts of this node's senders to the group's home; per post, its mid or a refusal. */
  postGroup?: (group: string, posts: GroupPost[]) => Promise<PostResult[]>;
  /** Pushes a frame to the online devices of users homed anywhere. */
  relayRemote?: (users: string[], frame: ServerFrame) => Promise<void>;
  /** Relays a member's typing or receipt through the group's home. */
  castGroup?: (group: string, from: string, frame: CastFrame) => Promise<void>;
  /** The highest seq of a user's timeline reads may show: not entries the replicas lack yet. */
  readable?: (user: string) => number;
  onSent?: (dup: boolean) => void;
  /** Bytes of bodies one sync or history page may hold (it is cut with more: true). */
  maxReadBytes?: number;
  /** Devices of one user online at once; a login past it is refused too_large. */
  maxDevices?: number;
  /** A limit refused something (for the metrics). */
  onLimit?: (what: 'devices' | 'read_bytes') => void;
  /** Status and privacy (social.ts): what others see of a user's presence, who may send DMs. */
  social?: Pick<Social, 'presenceFor' | 'presenceChanged' | 'load' | 'gate'>;
  /** Pauses between retries of copies and posts (default: the system clock). */
  clock?: Clock;
  /** Aborted by the node's stop(): retries end, with the last error. */
  signal?: AbortSignal;
};

