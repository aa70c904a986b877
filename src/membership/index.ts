// Membership: the member table and its failure detector (gossip + heartbeat) as a pure state machine.
// The network glue feeds it digests and direct evidence; it answers with events and the ring's member set.
//
// Rules:
// - Each member owns its heartbeat (only it increments it, in tick) and its incarnation (set at start,
//   e.g. the start time in ms, so a restarted node always comes back higher).
// - merge, per entry: an unknown name is added (joined if alive). A higher incarnation wins outright,
//   peer id included (a restart, possibly with a new identity); alive at a higher incarnation is
//   `joined` again, so the glue re-registers its soft state there. At the same incarnation the status
//   precedence is dead > leaving > alive and the heartbeat is the max; a heartbeat that rose records
//   progress now, which is how life heard by OTHER members reaches us (confirmation through others).
//   A lower incarnation is ignored.
// - About self: an entry saying self is dead or leaving at its incarnation (or anything at a higher
//   one) while self is alive is refuted, SWIM style: incarnation = seen + 1. Self is never suspected.
//   Dead is not refuted in place: the others have given this node's keys to other homes, so what
//   it holds may be stale. It stops being joined (its ring drops it, `self:dead`) and comes back
//   at the higher incarnation only through a join request, after the glue has copied its data.
// - suspect is a local view, never gossiped (a suspect is gossiped as alive). dead is a local decision
//   (suspect for confirmTimeoutMs without refutation) and is then gossiped so every node agrees quickly.
// - A leaving member that goes quiet for suspectAfter + confirmTimeout is declared dead (no suspect step).
// - A suspect is declared dead only while this node hears a strict majority of the members it
//   knows (dead ones until forgotten count, those that left do not): a minority side of a
//   partition keeps its suspects, so it never gives their keys to itself.
// - Forgotten dead members leave a tombstone (name → incarnation) so that a stale alive entry still
//   gossiped by a lagging node cannot bring them back; only a higher incarnation can.
// - Events come back from each call in a deterministic order (input order in merge, name order in
//   tick); `ring:changed` is last whenever ringMembers() differs from the ring last reported.

// entry.ts holds one member's record and the pure helpers over it, table.ts the state machine;
// this file keeps the module's types and its factory.
import { byName, isCount, isName, positive, view } from './entry.ts';
import { MemberTable } from './table.ts';

export type Clock = { now(): number };
export type Status = 'alive' | 'leaving' | 'dead'; // gossiped, agreed on
export type MemberState = 'up' | 'suspect' | 'leaving' | 'dead'; // local view: alive = up or suspect
export type MemberInfo = { name: string; peer: string; addrs: string[]; url: string };
export type GossipEntry = MemberInfo & { incarnation: number; heartbeat: number; status: Status };
export type MemberView = MemberInfo & { incarnation: number; state: MemberState; heartbeat: number; lastHeardAt?: number };

export const DEFAULT_SUSPECT_AFTER_MS = 2_000;
export const DEFAULT_CONFIRM_TIMEOUT_MS = 3_000;
export const DEFAULT_FORGET_DEAD_AFTER_MS = 60_000;

export type MembershipInit = {
  suspectAfterMs?: number; // no heartbeat progress for this long → suspect
  confirmTimeoutMs?: number; // a suspect not refuted within this long after suspicion → dead
  forgetDeadAfterMs?: number; // drop dead entries from the table after this long
};
export type MembershipComponents = { clock: Clock; random?: () => number };

export type MembershipEvent =
  | { type: 'member:joined'; member: MemberView } // first seen alive, or alive with a higher incarnation
  | { type: 'member:suspected'; member: MemberView }
  | { type: 'member:recovered'; member: MemberView } // suspect → up
  | { type: 'member:left'; member: MemberView } // status leaving
  | { type: 'member:died'; member: MemberView }
  | { type: 'self:dead'; member: MemberView } // the others declared this node dead: it must rejoin
  | { type: 'ring:changed'; members: string[] }; // the sorted ringMembers() changed

export type Membership = {
  self(): MemberView;
  members(): MemberView[]; // sorted by name, self included
  // Self (once joined and not leaving) + alive others (up or suspect): a slow node does not flap the ring.
  ringMembers(): string[];
  joined(): boolean;
  /** Hears a strict majority of the members it knows: may declare suspects dead. */
  hasMajority(): boolean;
  /** The write lease: joined, and vouched for (see vouched) by a strict majority of the members
   * it knows (itself included) within the last suspectAfterMs + confirmTimeoutMs * 2/3. The
   * evidence is dated by this node's clock when it spoke (the heartbeat a member echoed, the ping
   * it answered), not when the answer was read: a node frozen (SIGSTOP, a long pause) reads on
   * waking the gossip that piled up while it slept, and that must not give it the lease back
   * before it learns that the others declared it dead and gave its keys to other homes. A member
   * that held this node alive at time t declares it dead no earlier than t + suspectAfterMs +
   * confirmTimeoutMs, so a node cut off or frozen loses its lease at least confirmTimeoutMs / 3
   * (1 s by default) before anyone gives its keys to another home. */
  lease(): boolean;
  markJoined(): void; // the ring:changed it causes comes with the next call (tick, merge, ...)
  /** If gossip from `fromPeer` shows its sender alive at an incarnation this node holds dead (or
   * forgot as dead), the entry that tells it so; the glue sends it back, so a node that was
   * frozen or cut off learns that it must rejoin instead of serving its stale data. */
  deadClaim(entries: unknown, fromPeer: string): GossipEntry | undefined;
  /** The member table to gossip. Self is left out until joined (a node that is still copying its
   * data must not be taken into anyone's ring from its gossip), except in the join request. */
  digest(opts?: { joining?: boolean }): GossipEntry[];
  merge(entries: unknown, from?: string): MembershipEvent[]; // from: the sender's name, heard as alive
  tick(): MembershipEvent[];
  heard(name: string): MembershipEvent[];
  /** `name` held this node alive as of `at` (a time from `now()`): it answered, as from a member,
   * a ping this node sent at `at`. Gossip vouches by itself: a member's gossip carries the
   * heartbeat of this node it last learnt, and this node knows when it issued that heartbeat. */
  vouched(name: string, at: number): void;
  /** The membership clock's time, to date a ping for `vouched`. */
  now(): number;
  unreachable(name: string): MembershipEvent[];
  probes(): { target: string; via: string }[]; // a suspect with no up member to ask is left out
  probeResult(target: string, alive: boolean): MembershipEvent[];
  leave(): MembershipEvent[];
  peerOf(name: string): string | undefined;
  byPeer(peer: string): MemberView | undefined;
  malformed(): number; // entries ignored by merge since creation, for metrics
};

export function createMembership(
  self: MemberInfo & { incarnation: number },
  init: MembershipInit,
  components: MembershipComponents,
): Membership {
  const suspectAfterMs = positive(init.suspectAfterMs, DEFAULT_SUSPECT_AFTER_MS, 'suspectAfterMs');
  const confirmTimeoutMs = positive(init.confirmTimeoutMs, DEFAULT_CONFIRM_TIMEOUT_MS, 'confirmTimeoutMs');
  const forgetDeadAfterMs = positive(init.forgetDeadAfterMs, DEFAULT_FORGET_DEAD_AFTER_MS, 'forgetDeadAfterMs');
  if (!isName(self.name) || !isCount(self.incarnation)) throw new RangeError('self needs a name and a safe incarnation');
  const t = new MemberTable(self, { suspectAfterMs, confirmTimeoutMs, forgetDeadAfterMs }, components.clock, components.random);

  // Plain functions over the table, so that callers may pass them around unbound.
  return {
    self: () => view(t.me),
    members: () => [...t.table.values()].sort(byName).map(view),
    ringMembers: () => t.ringMembers(),
    joined: () => t.joined,
    markJoined: () => { t.joined = true; },
    hasMajority: () => t.majority(),
    lease: () => t.lease(),
    deadClaim: (entries, fromPeer) => t.deadClaim(entries, fromPeer),
    digest: (opts) => t.digest(opts),
    merge: (entries, from) => t.merge(entries, from),
    tick: () => t.tick(),
    heard: (name) => t.withRing((events) => t.heard(name, events)),
    vouched: (name, at) => t.vouched(name, at),
    now: () => t.now(),
    unreachable: (name) => t.unreachable(name),
    probes: () => t.probes(),
    // A failed probe proves nothing (the helper may be the one cut off): the confirm window decides.
    probeResult: (target, alive) => (alive ? t.withRing((events) => t.heard(target, events)) : []),
    leave: () => t.leave(),
    peerOf: (name) => t.table.get(name)?.info.peer,
    byPeer: (peer) => t.byPeer(peer),
    malformed: () => t.malformedCount,
  };
}
