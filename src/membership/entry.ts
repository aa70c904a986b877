// One member's record in the table and the pure helpers over it: parsing a gossiped entry,
// the state and view it shows, and the orders the table lists members in.
import type { GossipEntry, MemberInfo, MemberState, MemberView, MembershipEvent, Status } from './index.ts';

// Bounds on what one peer can make us hold; far above a cluster of tens of nodes.
export const MAX_ENTRIES_PER_MERGE = 1_024;
const MAX_STRING = 2_048;
const MAX_ADDRS = 64;

export type Entry = {
  info: MemberInfo;
  incarnation: number;
  heartbeat: number;
  status: Status;
  lastProgressAt: number; // when the heartbeat last rose here (or the entry was (re)created)
  lastHeardAt?: number;
  /** The newest time (this node's clock) at which this member is known to have held this node
   * alive: when this node issued the heartbeat the member last gossiped back to it, or sent a ping
   * the member answered as from a member. Unlike lastHeardAt, a frame that waited in a buffer
   * while this node was frozen cannot make it recent: it is what the write lease counts. */
  vouchedAt?: number;
  suspectSince?: number;
  deadAt?: number;
  left?: boolean; // announced a graceful leave: no longer counts towards a majority
};

export const RANK: Record<Status, number> = { alive: 0, leaving: 1, dead: 2 };

const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_STRING;
export const isName = (v: unknown): v is string => isText(v) && v.length > 0;
// Strictly below MAX_SAFE_INTEGER so that a refutation's +1 stays exact.
export const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < Number.MAX_SAFE_INTEGER;

export function parseEntry(x: unknown): GossipEntry | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return undefined;
  const { name, peer, addrs, url, incarnation, heartbeat, status } = x as Record<string, unknown>;
  if (!isName(name) || !isName(peer) || !isText(url)) return undefined;
  if (!Array.isArray(addrs) || addrs.length > MAX_ADDRS || !addrs.every(isText)) return undefined;
  if (!isCount(incarnation) || !isCount(heartbeat)) return undefined;
  if (status !== 'alive' && status !== 'leaving' && status !== 'dead') return undefined;
  return { name, peer, addrs: [...addrs], url, incarnation, heartbeat, status };
}

export function positive(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

export function stateOf(e: Entry): MemberState {
  if (e.status !== 'alive') return e.status;
  return e.suspectSince === undefined ? 'up' : 'suspect';
}

export function view(e: Entry): MemberView {
  const v: MemberView = {
    ...e.info, addrs: [...e.info.addrs], incarnation: e.incarnation, state: stateOf(e), heartbeat: e.heartbeat,
  };
  if (e.lastHeardAt !== undefined) v.lastHeardAt = e.lastHeardAt;
  return v;
}

// A misbehaving random (NaN, 1, negative) still yields a valid index.
export const pick = (r: number, n: number): number => (Number.isFinite(r) ? Math.min(n - 1, Math.max(0, Math.floor(r * n))) : 0);

export const byName = (a: Entry, b: Entry): number => (a.info.name < b.info.name ? -1 : a.info.name > b.info.name ? 1 : 0);

/** A new record for a gossiped entry this node did not hold (or held at a lower incarnation). */
export function fresh(g: GossipEntry, now: number): Entry {
  const e: Entry = {
    info: { name: g.name, peer: g.peer, addrs: g.addrs, url: g.url },
    incarnation: g.incarnation, heartbeat: g.heartbeat, status: g.status, lastProgressAt: now,
  };
  if (g.status === 'leaving') e.left = true;
  if (g.status === 'dead') e.deadAt = now;
  return e;
}

export function declareDead(e: Entry, events: MembershipEvent[], now: number): void {
  e.status = 'dead';
  e.deadAt = now;
  delete e.suspectSince;
  events.push({ type: 'member:died', member: view(e) });
}
