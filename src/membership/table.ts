// The member table as a state machine (the rules are in index.ts): merging gossip, refuting
// claims about self, suspicion and death in tick, the majority and the write lease.
import { byName, declareDead, fresh, MAX_ENTRIES_PER_MERGE, parseEntry, pick, RANK, stateOf, view } from './entry.ts';
import type { Entry } from './entry.ts';
import type { Clock, GossipEntry, MemberInfo, MembershipEvent, MemberView } from './index.ts';

export type Timing = { suspectAfterMs: number; confirmTimeoutMs: number; forgetDeadAfterMs: number };

export class MemberTable {
  readonly me: Entry;
  readonly table: Map<string, Entry>;
  readonly tombstones = new Map<string, number>(); // forgotten dead: name → incarnation
  joined = false;
  malformedCount = 0;
  #hadMajority = true;
  #roundRobin = 0;
  #reported: string[];
  // This node's recent heartbeats and when it issued them (oldest first), for vouchedAt.
  #beats: { h: number; at: number }[];
  readonly #timing: Timing;
  readonly #clock: Clock;
  readonly #random: (() => number) | undefined;

  constructor(self: MemberInfo & { incarnation: number }, timing: Timing, clock: Clock, random: (() => number) | undefined) {
    this.#timing = timing;
    this.#clock = clock;
    this.#random = random;
    this.me = {
      info: { name: self.name, peer: self.peer, addrs: [...self.addrs], url: self.url },
      incarnation: self.incarnation, heartbeat: 0, status: 'alive', lastProgressAt: clock.now(),
    };
    this.table = new Map<string, Entry>([[this.me.info.name, this.me]]);
    this.#beats = [{ h: 0, at: clock.now() }];
    this.#reported = this.ringMembers();
  }

  others(): Entry[] {
    return [...this.table.values()].filter((e) => e !== this.me).sort(byName);
  }

  ringMembers(): string[] {
    return [...this.table.values()]
      .filter((e) => e.status === 'alive' && (e !== this.me || this.joined))
      .map((e) => e.info.name)
      .sort();
  }

  // Runs one call's changes and appends ring:changed last if the ring differs from the one last
  // reported, so that a change made by a call that returns no events (markJoined) is not lost.
  withRing(change: (events: MembershipEvent[]) => void): MembershipEvent[] {
    const events: MembershipEvent[] = [];
    change(events);
    const after = this.ringMembers();
    const reported = this.#reported;
    if (after.length !== reported.length || after.some((n, i) => n !== reported[i])) {
      this.#reported = after;
      events.push({ type: 'ring:changed', members: [...after] });
    }
    return events;
  }

  #refute(g: GossipEntry, events: MembershipEvent[]): void {
    const me = this.me;
    if (me.status !== 'alive') return; // a leaving node lets any later claim stand
    if (g.incarnation > me.incarnation || (g.incarnation === me.incarnation && g.status !== 'alive')) {
      me.incarnation = g.incarnation + 1;
      if (g.status === 'dead' && this.joined) {
        this.joined = false;
        events.push({ type: 'self:dead', member: view(me) });
      }
    }
  }

  #apply(g: GossipEntry, events: MembershipEvent[]): void {
    if (g.name === this.me.info.name) return this.#refute(g, events);
    const now = this.#clock.now();
    const cur = this.table.get(g.name);
    if (cur === undefined || g.incarnation > cur.incarnation) {
      const buried = this.tombstones.get(g.name);
      if (cur === undefined && buried !== undefined && g.incarnation <= buried) return;
      this.tombstones.delete(g.name);
      const was = cur === undefined ? undefined : stateOf(cur);
      const e = fresh(g, now);
      this.table.set(g.name, e);
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
      if (cur.status !== 'dead') this.#progress(cur, events, now);
    }
  }

  // Evidence of life (direct or through another member): clears a local suspicion.
  #progress(e: Entry, events: MembershipEvent[], now: number, direct = false): void {
    if (direct) e.lastHeardAt = now;
    else e.lastProgressAt = now;
    if (e.suspectSince !== undefined) {
      delete e.suspectSince;
      events.push({ type: 'member:recovered', member: view(e) });
    }
  }

  /** `from` gossiped this node's own entry back: alive at this incarnation, it held this node
   * alive when it learnt that heartbeat, which this node issued at a known time. */
  #echoed(from: string, g: GossipEntry): void {
    if (g.status !== 'alive' || g.incarnation !== this.me.incarnation) return;
    const beat = this.#beats.find((b) => b.h === g.heartbeat);
    if (beat !== undefined) this.vouched(from, beat.at);
  }

  /** `name` held this node alive at `at` (this node's clock): see Entry.vouchedAt. */
  vouched(name: string, at: number): void {
    const e = this.table.get(name);
    if (e === undefined || e === this.me || e.status === 'dead') return;
    if (e.vouchedAt === undefined || at > e.vouchedAt) e.vouchedAt = at;
  }

  now(): number {
    return this.#clock.now();
  }

  heard(name: string, events: MembershipEvent[]): void {
    const e = this.table.get(name);
    // dead at this incarnation is final: only a higher incarnation (through merge) brings it back
    if (e === undefined || e === this.me || e.status === 'dead') return;
    this.#progress(e, events, this.#clock.now(), true);
  }

  /** Whether this node hears a strict majority of the members it knows (up, suspect or dead and
   * not yet forgotten; not those that left gracefully). Only then does it declare a suspect dead:
   * the side of a partition that cannot hear most members must not give their keys to itself. */
  /** Whether `e` counts towards a majority: not gone gracefully, and heard directly at least once
   * (self always). A name only ever heard of through gossip does not vote: a hostile member could
   * otherwise invent members that nobody can hear and leave every node without a majority. A real
   * newcomer pings every member as it joins (cluster.ts), so it votes at once. */
  #votes(e: Entry): boolean {
    return !e.left && e.status !== 'leaving' && (e === this.me || e.lastHeardAt !== undefined);
  }

  majority(): boolean {
    let voters = 0;
    let up = 0;
    for (const e of this.table.values()) {
      if (!this.#votes(e)) continue;
      voters++;
      if (e.status === 'alive' && (e === this.me || e.suspectSince === undefined)) up++;
    }
    return up * 2 > voters;
  }

  lease(): boolean {
    if (!this.joined || this.me.status !== 'alive') return false;
    const now = this.#clock.now();
    const { suspectAfterMs, confirmTimeoutMs } = this.#timing;
    let voters = 0;
    let fresh = 0;
    for (const e of this.table.values()) {
      if (!this.#votes(e)) continue;
      voters++;
      if (e === this.me || (e.status === 'alive' && e.vouchedAt !== undefined && now - e.vouchedAt < suspectAfterMs + (confirmTimeoutMs * 2) / 3)) fresh++;
    }
    return fresh * 2 > voters;
  }

  deadClaim(entries: unknown, fromPeer: string): GossipEntry | undefined {
    if (!Array.isArray(entries)) return undefined;
    for (const x of entries.slice(0, MAX_ENTRIES_PER_MERGE)) {
      let g: GossipEntry | undefined;
      try { g = parseEntry(x); } catch { g = undefined; }
      if (g === undefined || g.peer !== fromPeer || g.status !== 'alive' || g.name === this.me.info.name) continue;
      const cur = this.table.get(g.name);
      const dead = cur?.status === 'dead' ? cur.incarnation : cur === undefined ? this.tombstones.get(g.name) : undefined;
      if (dead !== undefined && dead >= g.incarnation) return { ...g, addrs: [...g.addrs], incarnation: dead, status: 'dead' };
    }
    return undefined;
  }

  digest(opts?: { joining?: boolean }): GossipEntry[] {
    return [...this.table.values()].filter((e) => e !== this.me || this.joined || opts?.joining).sort(byName).map((e) => ({
      ...e.info, addrs: [...e.info.addrs], incarnation: e.incarnation, heartbeat: e.heartbeat, status: e.status,
    }));
  }

  merge(entries: unknown, from?: string): MembershipEvent[] {
    return this.withRing((events) => {
      if (!Array.isArray(entries)) {
        this.malformedCount++;
      } else {
        const n = Math.min(entries.length, MAX_ENTRIES_PER_MERGE);
        this.malformedCount += entries.length - n;
        for (let i = 0; i < n; i++) {
          let g: GossipEntry | undefined;
          try { g = parseEntry(entries[i]); } catch { g = undefined; } // a hostile getter must not throw out of merge
          if (g === undefined) this.malformedCount++;
          else {
            if (typeof from === 'string' && g.name === this.me.info.name) this.#echoed(from, g);
            this.#apply(g, events);
          }
        }
      }
      if (typeof from === 'string') this.heard(from, events);
    });
  }

  tick(): MembershipEvent[] {
    return this.withRing((events) => {
      const now = this.#clock.now();
      const { suspectAfterMs, confirmTimeoutMs, forgetDeadAfterMs } = this.#timing;
      this.me.heartbeat++;
      this.#beats.push({ h: this.me.heartbeat, at: now });
      // Older ones could vouch for no lease (they are older than its window).
      while (this.#beats.length > 1 && now - this.#beats[0]!.at > suspectAfterMs + confirmTimeoutMs) this.#beats.shift();
      // Regaining the majority restarts the confirm window of every suspect: members that went
      // quiet together (a partition, a freeze) come back one by one, and the last ones must not
      // be declared dead for a silence that this node could not judge until now.
      const maj = this.majority();
      if (maj && !this.#hadMajority) for (const e of this.others()) if (e.suspectSince !== undefined) e.suspectSince = now;
      this.#hadMajority = maj;
      for (const e of this.others()) {
        const quietFor = now - Math.max(e.lastProgressAt, e.lastHeardAt ?? -Infinity);
        if (e.status === 'alive' && e.suspectSince === undefined) {
          if (quietFor >= suspectAfterMs) {
            e.suspectSince = now;
            events.push({ type: 'member:suspected', member: view(e) });
          }
        } else if (e.status === 'alive' && e.suspectSince !== undefined) {
          if (now - e.suspectSince >= confirmTimeoutMs && this.majority()) declareDead(e, events, now);
        } else if (e.status === 'leaving') {
          if (quietFor >= suspectAfterMs + confirmTimeoutMs) declareDead(e, events, now);
        } else if (now - (e.deadAt ?? now) >= forgetDeadAfterMs) {
          this.table.delete(e.info.name);
          this.tombstones.set(e.info.name, e.incarnation);
        }
      }
    });
  }

  unreachable(name: string): MembershipEvent[] {
    return this.withRing((events) => {
      const e = this.table.get(name);
      if (e === undefined || e === this.me || e.status !== 'alive' || e.suspectSince !== undefined) return;
      e.suspectSince = this.#clock.now();
      events.push({ type: 'member:suspected', member: view(e) });
    });
  }

  probes(): { target: string; via: string }[] {
    const all = this.others();
    const ups = all.filter((e) => stateOf(e) === 'up').map((e) => e.info.name);
    const out: { target: string; via: string }[] = [];
    for (const e of all) {
      if (stateOf(e) !== 'suspect') continue;
      const vias = ups.filter((n) => n !== e.info.name);
      if (vias.length === 0) continue; // nobody to ask: the confirm window alone decides
      const i = this.#random === undefined ? this.#roundRobin++ % vias.length : pick(this.#random(), vias.length);
      out.push({ target: e.info.name, via: vias[i] as string });
    }
    return out;
  }

  leave(): MembershipEvent[] {
    return this.withRing((events) => {
      const me = this.me;
      if (me.status !== 'alive') return;
      me.status = 'leaving';
      me.left = true;
      me.incarnation++;
      events.push({ type: 'member:left', member: view(me) });
    });
  }

  // A restarted node may share its peer id with its own dead entry under an older name: prefer the living.
  byPeer(peer: string): MemberView | undefined {
    const found = [...this.table.values()].filter((e) => e.info.peer === peer).sort((a, b) => RANK[a.status] - RANK[b.status] || byName(a, b));
    return found[0] === undefined ? undefined : view(found[0]);
  }
}
