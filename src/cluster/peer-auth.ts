// Who may ask this node for what, decided from the authenticated libp2p peer id, the member
// table and this node's recent rings. Pure: the cluster glue feeds it a view and applies the
// verdicts (refuse, count, or pass on only the keys the sender may move). See docs/CLUSTER.md.
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { MemberState } from '../membership/index.ts';
import type { Delivery, FanItem, Page, PeerOneWay, PeerRequest } from '../protocol/peer.ts';

/** Why a peer request or message was refused (the `reason` label of im_peer_refused_total). */
export type RefuseReason =
  /** The sender is not a current member (unknown, or declared dead) and the type is not open to joiners. */
  | 'not_member'
  /** A handoff names a target that is not the sender, or a name another live member holds. */
  | 'not_target'
  /** A handoff's future member list is not this node's members plus the newcomer. */
  | 'bad_members'
  /** absorb: keys the sender did not hold before its leave, or that this node does not take over. */
  | 'not_holder'
  /** deliver / fanout / replicate: the sender is not the home of the key (sender, group or user). */
  | 'not_home'
  /** A well-typed frame whose content is refused (a malformed push frame). */
  | 'invalid';

export type Verdict = { ok: true } | { ok: false; reason: RefuseReason; message: string };

/** What the rules read of the node's state. */
export type AuthView = {
  self: string;
  /** The member table entry of a peer id, any state. */
  byPeer(peer: string): { name: string; state: MemberState } | undefined;
  /** Every name in the member table (any state). */
  names(): Iterable<string>;
  /** The live entry (up, suspect or leaving) holding a name, if any. */
  live(name: string): { peer: string } | undefined;
  /** The current ring first, then the rings it replaced within the grace period (newest first). */
  rings(): Ring[];
  vnodes: number;
  replicas: number;
};

/** Membership's own protocol, open to any holder of the swarm key (the key is the admission):
 * a node that is not a member yet must be able to learn the table, ask to join and be pinged. */
export const OPEN_REQUESTS: ReadonlySet<string> = new Set(['join', 'members', 'ping', 'probe']);
/** What a joining node (not a member yet) may ask besides the open ones: the copy of the users it
 * will hold, and the pause of their writes for the final copy. */
export const JOINING_REQUESTS: ReadonlySet<string> = new Set(['handoff']);
/** The largest future member list a handoff may name. */
export const MAX_HANDOFF_MEMBERS = 1024;

const ok: Verdict = { ok: true };
const no = (reason: RefuseReason, message: string): Verdict => ({ ok: false, reason, message });
const LIVE: ReadonlySet<MemberState> = new Set(['up', 'suspect', 'leaving']);

/** The sender's member name, when it is a current member (up, suspect or leaving). */
export function memberName(v: AuthView, peer: string): string | undefined {
  const m = v.byPeer(peer);
  return m && LIVE.has(m.state) ? m.name : undefined;
}

/** The first gate: membership's protocol is open, handoff is open to joiners, the rest needs a member. */
export function admit(v: AuthView, peer: string, t: string): Verdict {
  if (OPEN_REQUESTS.has(t)) return ok;
  if (memberName(v, peer) !== undefined) return ok;
  if (JOINING_REQUESTS.has(t)) return ok; // checked further by handoffAllowed
  return no('not_member', `${peer} is not a member of this node's cluster`);
}

/** A one-way message: gossip is membership's own (its content is narrowed by entriesFrom); push
 * and pushmsg only from a member. */
export function admitOneWay(v: AuthView, peer: string, msg: PeerOneWay): Verdict {
  if (msg.t === 'gossip') return ok;
  return memberName(v, peer) !== undefined ? ok : no('not_member', `${peer} is not a member of this node's cluster`);
}

/** Gossip and join requests from a peer that is not a live member speak only for the sender
 * itself (a node that joined through another member and gossips before that member's gossip
 * reached us; a node coming back after it was declared dead): a stranger cannot declare a member
 * dead or leaving, nor add others. */
export function entriesFrom(v: AuthView, peer: string, entries: unknown[]): unknown[] {
  if (memberName(v, peer) !== undefined) return entries;
  return entries.filter((e) => e !== null && typeof e === 'object' && (e as { peer?: unknown }).peer === peer);
}

/**
 * A handoff (copy, or pause then copy) is asked by the node that will hold the users: the sender
 * itself is `target`. A member asks under its own name (a restart before anyone declared it
 * dead); a node that is not a live member may not take the name of one that is. The future ring
 * is this node's ring plus the target: every member of the current ring, and no name this node
 * has never heard of, so a
 * stranger cannot make up a ring that hands it more keys than a join would.
 */
export function handoffAllowed(v: AuthView, peer: string, req: Extract<PeerRequest, { t: 'handoff' }>): Verdict {
  if (req.target === v.self) return no('not_target', 'a handoff cannot target this node');
  const entry = v.byPeer(peer);
  if (entry && entry.name !== req.target) return no('not_target', `${peer} is ${entry.name}, not ${req.target}`);
  const holder = v.live(req.target);
  if (holder && holder.peer !== peer) return no('not_target', `${req.target} is a live member with another peer id`);
  if (req.members.length > MAX_HANDOFF_MEMBERS) return no('bad_members', 'too many members');
  if (!req.members.includes(req.target) || !req.members.includes(v.self)) return no('bad_members', 'the members must include the target and this node');
  // Every member of this node's current ring stays: a newcomer only adds itself. (Not a recent
  // ring: one of those may be the lone first member. A joiner whose table is a change behind or
  // ahead of ours is refused and tries again: the join retries every 500 ms, join.ts.)
  if (!v.rings()[0]!.members.every((m) => req.members.includes(m))) return no('bad_members', 'the members must include every member of this node\'s ring');
  const known = new Set(v.names());
  const strangers = req.members.filter((m) => m !== req.target && !known.has(m));
  if (strangers.length) return no('bad_members', `unknown members: ${strangers.slice(0, 5).join(', ')}`);
  return ok;
}

/** Memoized rings of (members ± a name) per ring version, for absorb. */
export type RingCache = Map<string, Ring>;

function variant(v: AuthView, cache: RingCache, base: Ring, name: string, add: boolean): Ring {
  const k = `${base.version}${add ? '+' : '-'}${name}`;
  let r = cache.get(k);
  if (!r) {
    const members = add ? [...base.members, name] : base.members.filter((m) => m !== name);
    r = createRing(members, { vnodes: v.vnodes, replicas: v.replicas });
    if (cache.size > 64) cache.clear();
    cache.set(k, r);
  }
  return r;
}

/**
 * absorb from leaving node `from`: a key is taken when, by one of this node's recent rings, the
 * sender held it (home or replica) in the ring with the sender and this node holds it in the ring
 * without the sender. The rest is refused (a leaver never pushes it; a stranger or a member
 * replacing someone's timeline would).
 */
export function absorbKeys(v: AuthView, cache: RingCache, from: string, keys: Iterable<string>): { ok: Set<string>; refused: string[] } {
  const pairs = v.rings().map((r) => [variant(v, cache, r, from, true), variant(v, cache, r, from, false)] as const);
  const good = new Set<string>();
  const refused: string[] = [];
  for (const k of new Set(keys)) {
    const held = pairs.some(([before, after]) => before.owners(k, v.replicas).includes(from) && after.owners(k, v.replicas).includes(v.self));
    if (held) good.add(k);
    else refused.push(k);
  }
  return { ok: good, refused };
}

/** Whether `from` is the home of `key` by one of this node's recent rings (the sender's ring may
 * be one change behind or ahead of ours). */
export function homeOf(v: AuthView, from: string, key: string): boolean {
  return v.rings().some((r) => r.owner(key) === from);
}

/** deliver: the copy's sender user must be homed on the sending node (its recipient's ownership
 * is the handler's check). */
export const deliverAllowed = (v: AuthView, from: string, d: Delivery): boolean => homeOf(v, from, d.from);

/** fanout: group messages come from the group's home. */
export const fanAllowed = (v: AuthView, from: string, it: FanItem): boolean => homeOf(v, from, `g:${it.group}`);

/** The keys of a page (snapshots and entries). */
export function pageKeys(p: Page): string[] {
  return [...new Set([...p.users.map((s) => s.user), ...p.entries.map((e) => e.user)])];
}

/** The part of a page about these keys. */
export function pageOf(p: Page, keys: Set<string>): Page {
  return { users: p.users.filter((s) => keys.has(s.user)), entries: p.entries.filter((e) => keys.has(e.user)) };
}
