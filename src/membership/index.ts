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

export type Clock = { now(): number };
export type Status = 'alive' | 'leaving' | 'dead'; // gossiped, agreed on
export type MemberState = 'up' | 'suspect' | 'leaving' | 'dead'; // local view: alive = up or suspect
export type MemberInfo = { name: string; peer: string; addrs: string[]; url: string };
export type GossipEntry = MemberInfo & { incarnation: number; heartbeat: number; status: Status };
export type MemberView = MemberInfo & { incarnation: number; state: MemberState; heartbeat: number; lastHeardAt?: number };

export const DEFAULT_SUSPECT_AFTER_MS = 2_000;
export const DEFAULT_CONFIRM_TIMEOUT_MS = 3_000;
export const DEFAULT_FORGET_DEAD_AFTER_MS = 60_000;
// Bounds on what one peer can make us hold; far above a cluster of tens of nodes.
const MAX_ENTRIES_PER_MERGE = 1_024;
const MAX_STRING = 2_048;
const MAX_ADDRS = 64;

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
  /** The write lease: joined, and heard directly from a strict majority of the members it knows
   * (itself included) within the last suspectAfterMs + confirmTimeoutMs * 2/3. The others declare
   * a silent member dead only after suspectAfterMs + confirmTimeoutMs, so a node cut off loses
   * its lease at least confirmTimeoutMs / 3 (1 s by default) before anyone gives its keys to
   * another home; the slack keeps a node whose event loop stalled for a few seconds (a busy
   * machine) from refusing writes. */
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
  unreachable(name: string): MembershipEvent[];
  probes(): { target: string; via: string }[]; // a suspect with no up member to ask is left out
  probeResult(target: string, alive: boolean): MembershipEvent[];
  leave(): MembershipEvent[];
  peerOf(name: string): string | undefined;
  byPeer(peer: string): MemberView | undefined;
  malformed(): number; // entries ignored by merge since creation, for metrics
};

type Entry = {
  info: MemberInfo;
  incarnation: number;
  heartbeat: number;
  status: Status;
  lastProgressAt: number; // when the heartbeat last rose here (or the entry was (re)created)
  lastHeardAt?: number;
  suspectSince?: number;
  deadAt?: number;
  left?: boolean; // announced a graceful leave: no longer counts towards a majority
};

const RANK: Record<Status, number> = { alive: 0, leaving: 1, dead: 2 };

const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_STRING;
const isName = (v: unknown): v is string => isText(v) && v.length > 0;
// Strictly below MAX_SAFE_INTEGER so that a refutation's +1 stays exact.
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < Number.MAX_SAFE_INTEGER;

function parseEntry(x: unknown): GossipEntry | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return undefined;
  const { name, peer, addrs, url, incarnation, heartbeat, status } = x as Record<string, unknown>;
  if (!isName(name) || !isName(peer) || !isText(url)) return undefined;
  if (!Array.isArray(addrs) || addrs.length > MAX_ADDRS || !addrs.every(isText)) return undefined;
  if (!isCount(incarnation) || !isCount(heartbeat)) return undefined;
  if (status !== 'alive' && status !== 'leaving' && status !== 'dead') return undefined;
  return { name, peer, addrs: [...addrs], url, incarnation, heartbeat, status };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

function stateOf(e: Entry): MemberState {
  if (e.status !== 'alive') return e.status;
  return e.suspectSince === undefined ? 'up' : 'suspect';
}

function view(e: Entry): MemberView {
  const v: MemberView = {
    ...e.info, addrs: [...e.info.addrs], incarnation: e.incarnation, state: stateOf(e), heartbeat: e.heartbeat,
  };
  if (e.lastHeardAt !== undefined) v.lastHeardAt = e.lastHeardAt;
  return v;
}

// A misbehaving random (NaN, 1, negative) still yields a valid index.
const pick = (r: number, n: number): number => (Number.isFinite(r) ? Math.min(n - 1, Math.max(0, Math.floor(r * n))) : 0);

const byName = (a: Entry, b: Entry): number => (a.info.name < b.info.name ? -1 : a.info.name > b.info.name ? 1 : 0);

export function createMembership(
  self: MemberInfo & { incarnation: number },
  init: MembershipInit,
  components: MembershipComponents,
): Membership {
  const suspectAfterMs = positive(init.suspectAfterMs, DEFAULT_SUSPECT_AFTER_MS, 'suspectAfterMs');
  const confirmTimeoutMs = positive(init.confirmTimeoutMs, DEFAULT_CONFIRM_TIMEOUT_MS, 'confirmTimeoutMs');
  const forgetDeadAfterMs = positive(init.forgetDeadAfterMs, DEFAULT_FORGET_DEAD_AFTER_MS, 'forgetDeadAfterMs');
  if (!isName(self.name) || !isCount(self.incarnation)) throw new RangeError('self needs a name and a safe incarnation');
  const { clock, random } = components;

  const me: Entry = {
    info: { name: self.name, peer: self.peer, addrs: [...self.addrs], url: self.url },
    incarnation: self.incarnation, heartbeat: 0, status: 'alive', lastProgressAt: clock.now(),
  };
  const table = new Map<string, Entry>([[me.info.name, me]]);
  const tombstones = new Map<string, number>(); // forgotten dead: name → incarnation
  let joinedFlag = false;
  let hadMajority = true;
  let malformedCount = 0;
  let roundRobin = 0;

  const others = (): Entry[] => [...table.values()].filter((e) => e !== me).sort(byName);

  function ringMembers(): string[] {
    return [...table.values()]
      .filter((e) => e.status === 'alive' && (e !== me || joinedFlag))
      .map((e) => e.info.name)
      .sort();
  }

  // Runs one call's changes and appends ring:changed last if the ring differs from the one last
  // reported, so that a change made by a call that returns no events (markJoined) is not lost.
  let reported = ringMembers();
  function withRing(change: (events: MembershipEvent[]) => void): MembershipEvent[] {
    const events: MembershipEvent[] = [];
    change(events);
    const after = ringMembers();
    if (after.length !== reported.length || after.some((n, i) => n !== reported[i])) {
      reported = after;
      events.push({ type: 'ring:changed', members: [...after] });
    }
    return events;
  }

  function fresh(g: GossipEntry, now: number): Entry {
    const e: Entry = {
      info: { name: g.name, peer: g.peer, addrs: g.addrs, url: g.url },
      incarnation: g.incarnation, heartbeat: g.heartbeat, status: g.status, lastProgressAt: now,
    };
    if (g.status === 'leaving') e.left = true;
    if (g.status === 'dead') e.deadAt = now;
    return e;
  }

  function refute(g: GossipEntry, events: MembershipEvent[]): void {
    if (me.status !== 'alive') return; // a leaving node lets any later claim stand
    if (g.incarnation > me.incarnation || (g.incarnation === me.incarnation && g.status !== 'alive')) {
      me.incarnation = g.incarnation + 1;
      if (g.status === 'dead' && joinedFlag) {
        joinedFlag = false;
        events.push({ type: 'self:dead', member: view(me) });
      }
    }
  }

  function apply(g: GossipEntry, events: MembershipEvent[]): void {
    if (g.name === me.info.name) return refute(g, events);
    const now = clock.now();
    const cur = table.get(g.name);
    if (cur === undefined || g.incarnation > cur.incarnation) {
      const buried = tombstones.get(g.name);
      if (cur === undefined && buried !== undefined && g.incarnation <= buried) return;
      tombstones.delete(g.name);
      const was = cur === undefined ? undefined : stateOf(cur);
      const e = fresh(g, now);
      table.set(g.name, e);
      // An unknown member first seen leaving or dead was never in our ring: nothing to announce.
      if (e.status === 'alive') events.push({ type: 'member:joined', member: view(e) });
      else if (was !== undefined && was !== e.status) {
        events.push({ type: e.status === 'dead' ? 'member:died' : 'member:left', member: view(e) });
      }
      return;
    }
    if (g.incarnation < cur.incarnation) return;
    if (RANK[g.status] > RANK[cur.status]) {
      cur.status = g.status;
      if (g.status === 'leaving') cur.left = true;
      delete cur.suspectSince;
      if (g.status === 'dead') cur.deadAt = now;
      events.push({ type: g.status === 'dead' ? 'member:died' : 'member:left', member: view(cur) });
    }
    if (g.heartbeat > cur.heartbeat) {
      cur.heartbeat = g.heartbeat;
      if (cur.status !== 'dead') progress(cur, events, now);
    }
  }

  // Evidence of life (direct or through another member): clears a local suspicion.
  function progress(e: Entry, events: MembershipEvent[], now: number, direct = false): void {
    if (direct) e.lastHeardAt = now;
    else e.lastProgressAt = now;
    if (e.suspectSince !== undefined) {
      delete e.suspectSince;
      events.push({ type: 'member:recovered', member: view(e) });
    }
  }

  function heard(name: string, events: MembershipEvent[]): void {
    const e = table.get(name);
    // dead at this incarnation is final: only a higher incarnation (through merge) brings it back
    if (e === undefined || e === me || e.status === 'dead') return;
    progress(e, events, clock.now(), true);
  }

  /** Whether this node hears a strict majority of the members it knows (up, suspect or dead and
   * not yet forgotten; not those that left gracefully). Only then does it declare a suspect dead:
   * the side of a partition that cannot hear most members must not give their keys to itself. */
  /** Whether `e` counts towards a majority: not gone gracefully, and heard directly at least once
   * (self always). A name only ever heard of through gossip does not vote: a hostile member could
   * otherwise invent members that nobody can hear and leave every node without a majority. A real
   * newcomer pings every member as it joins (cluster.ts), so it votes at once. */
  const votes = (e: Entry): boolean => !e.left && e.status !== 'leaving' && (e === me || e.lastHeardAt !== undefined);

  function majority(): boolean {
    let voters = 0;
    let up = 0;
    for (const e of table.values()) {
      if (!votes(e)) continue;
      voters++;
      if (e.status === 'alive' && (e === me || e.suspectSince === undefined)) up++;
    }
    return up * 2 > voters;
  }

  function declareDead(e: Entry, events: MembershipEvent[], now: number): void {
    e.status = 'dead';
    e.deadAt = now;
    delete e.suspectSince;
    events.push({ type: 'member:died', member: view(e) });
  }

  return {
    self: () => view(me),
    members: () => [...table.values()].sort(byName).map(view),
    ringMembers,
    joined: () => joinedFlag,
    markJoined: () => { joinedFlag = true; },
    hasMajority: majority,

    lease() {
      if (!joinedFlag || me.status !== 'alive') return false;
      const now = clock.now();
      let voters = 0;
      let fresh = 0;
      for (const e of table.values()) {
        if (!votes(e)) continue;
        voters++;
        if (e === me || (e.status === 'alive' && e.lastHeardAt !== undefined && now - e.lastHeardAt < suspectAfterMs + (confirmTimeoutMs * 2) / 3)) fresh++;
      }
      return fresh * 2 > voters;
    },

    deadClaim(entries, fromPeer) {
      if (!Array.isArray(entries)) return undefined;
      for (const x of entries.slice(0, MAX_ENTRIES_PER_MERGE)) {
        let g: GossipEntry | undefined;
        try { g = parseEntry(x); } catch { g = undefined; }
        if (g === undefined || g.peer !== fromPeer || g.status !== 'alive' || g.name === me.info.name) continue;
        const cur = table.get(g.name);
        const dead = cur?.status === 'dead' ? cur.incarnation : cur === undefined ? tombstones.get(g.name) : undefined;
        if (dead !== undefined && dead >= g.incarnation) return { ...g, addrs: [...g.addrs], incarnation: dead, status: 'dead' };
      }
      return undefined;
    },

    digest: (opts) => [...table.values()].filter((e) => e !== me || joinedFlag || opts?.joining).sort(byName).map((e) => ({
      ...e.info, addrs: [...e.info.addrs], incarnation: e.incarnation, heartbeat: e.heartbeat, status: e.status,
    })),

    merge: (entries, from) => withRing((events) => {
      if (!Array.isArray(entries)) {
        malformedCount++;
      } else {
        const n = Math.min(entries.length, MAX_ENTRIES_PER_MERGE);
        malformedCount += entries.length - n;
        for (let i = 0; i < n; i++) {
          let g: GossipEntry | undefined;
          try { g = parseEntry(entries[i]); } catch { g = undefined; } // a hostile getter must not throw out of merge
          if (g === undefined) malformedCount++;
          else apply(g, events);
        }
      }
      if (typeof from === 'string') heard(from, events);
    }),

    tick: () => withRing((events) => {
      const now = clock.now();
      me.heartbeat++;
      // Regaining the majority restarts the confirm window of every suspect: members that went
      // quiet together (a partition, a freeze) come back one by one, and the last ones must not
      // be declared dead for a silence that this node could not judge until now.
      const maj = majority();
      if (maj && !hadMajority) for (const e of others()) if (e.suspectSince !== undefined) e.suspectSince = now;
      hadMajority = maj;
      for (const e of others()) {
        const quietFor = now - Math.max(e.lastProgressAt, e.lastHeardAt ?? -Infinity);
        if (e.status === 'alive' && e.suspectSince === undefined) {
          if (quietFor >= suspectAfterMs) {
            e.suspectSince = now;
            events.push({ type: 'member:suspected', member: view(e) });
          }
        } else if (e.status === 'alive' && e.suspectSince !== undefined) {
          if (now - e.suspectSince >= confirmTimeoutMs && majority()) declareDead(e, events, now);
        } else if (e.status === 'leaving') {
          if (quietFor >= suspectAfterMs + confirmTimeoutMs) declareDead(e, events, now);
        } else if (now - (e.deadAt ?? now) >= forgetDeadAfterMs) {
          table.delete(e.info.name);
          tombstones.set(e.info.name, e.incarnation);
        }
      }
    }),

    heard: (name) => withRing((events) => heard(name, events)),

    unreachable: (name) => withRing((events) => {
      const e = table.get(name);
      if (e === undefined || e === me || e.status !== 'alive' || e.suspectSince !== undefined) return;
      e.suspectSince = clock.now();
      events.push({ type: 'member:suspected', member: view(e) });
    }),

    probes: () => {
      const all = others();
      const ups = all.filter((e) => stateOf(e) === 'up').map((e) => e.info.name);
      const out: { target: string; via: string }[] = [];
      for (const e of all) {
        if (stateOf(e) !== 'suspect') continue;
        const vias = ups.filter((n) => n !== e.info.name);
        if (vias.length === 0) continue; // nobody to ask: the confirm window alone decides
        const i = random === undefined ? roundRobin++ % vias.length : pick(random(), vias.length);
        out.push({ target: e.info.name, via: vias[i] as string });
      }
      return out;
    },

    // A failed probe proves nothing (the helper may be the one cut off): the confirm window decides.
    probeResult: (target, alive) => (alive ? withRing((events) => heard(target, events)) : []),

    leave: () => withRing((events) => {
      if (me.status !== 'alive') return;
      me.status = 'leaving';
      me.left = true;
      me.incarnation++;
      events.push({ type: 'member:left', member: view(me) });
    }),

    peerOf: (name) => table.get(name)?.info.peer,

    // A restarted node may share its peer id with its own dead entry under an older name: prefer the living.
    byPeer: (peer) => {
      const found = [...table.values()].filter((e) => e.info.peer === peer).sort((a, b) => RANK[a.status] - RANK[b.status] || byName(a, b));
      return found[0] === undefined ? undefined : view(found[0]);
    },

    malformed: () => malformedCount,
  };
}
