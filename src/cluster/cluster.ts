// Cluster glue: runs membership over the peer transport (join, gossip, heartbeats, probes),
// turns membership events into ring swaps, and dispatches peer traffic to its handlers.
import type { Logger } from 'pino';
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { Membership, MembershipEvent, MemberView } from '../membership/index.ts';
import { PeerFrameError, parsePeerOneWay, parsePeerRequest } from '../protocol/peer.ts';
import type { PeerOneWay, PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { PeerNet } from '../transport/index.ts';
import {
  absorbKeys, admit, admitOneWay, deliverAllowed, entriesFrom, fanAllowed, handoffAllowed, memberName, pageKeys, pageOf,
} from './peer-auth.ts';
import type { AuthView, RefuseReason, RingCache } from './peer-auth.ts';

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
  /** Resolves on the next ring change, or after `ms`. */
  ringChange(ms: number): Promise<void>;
  /** `died`: members of `prev` that left the ring by being declared dead (not by leaving). */
  onRingChanged(cb: (ring: Ring, prev: Ring, died: string[]) => void): void;
  /** The node lost (false) or regained (true) a majority of the members it knows, lastingly:
   * without a majority and without the lease for CUT_OFF_ROUNDS gossip rounds in a row. */
  onMajority(cb: (majority: boolean) => void): void;
  /** Cut off from the majority (see onMajority): clients are sent away. */
  cutOff(): boolean;
  onMemberGone(cb: (name: string) => void): void;
  /** Serves peer requests other than membership's own (join, probe, ping). */
  onRequest(cb: (fromName: string | undefined, req: PeerRequest) => Promise<PeerReply>): void;
  onMessage(cb: (fromName: string | undefined, msg: PeerOneWay) => void): void;
  start(): void;
  /** Announces a graceful leave to every member (gossip), so they drop this node from the ring. */
  leave(): Promise<void>;
  stop(): void;
};

const GOSSIP_MS = 500;
/** How long the ring before the current one still names who may deliver, fan out or absorb: a
 * sender's ring may be a change behind (or ahead of) ours while a change spreads. One ring back
 * only: older ones (a cluster forming: one member, then two) would name a node for many keys. */
const RING_GRACE_MS = 30_000;
const MAX_OLD_RINGS = 1;
/** Gossip rounds in a row without a majority (and without the lease) before clients are sent away. */
const CUT_OFF_ROUNDS = 3;
/** One warning per (type, reason) this often, with the count since the last one. */
const REFUSED_LOG_MS = 10_000;
const TYPES = new Set([
  'call', 'deliver', 'fanout', 'relay', 'readmarks', 'presence', 'watch', 'register', 'renew', 'join', 'probe', 'ping', 'members',
  'handoff', 'absorb', 'replicate', 'gossip', 'push', 'pushmsg', 'cinfo', 'profiles', 'revoke',
]);
/** A metric label from a peer-chosen type: known types, else 'other'. */
const typeLabel = (raw: unknown): string => {
  const t = raw !== null && typeof raw === 'object' ? (raw as { t?: unknown }).t : undefined;
  return typeof t === 'string' && TYPES.has(t) ? t : 'other';
};

export function createCluster(init: ClusterInit, c: ClusterComponents): Cluster {
  const { net, membership: m, log } = c;
  const opts = { vnodes: init.vnodes, replicas: init.replicas };
  const self = m.self().name;
  let ring: Ring = createRing(m.ringMembers(), opts);
  // Rings replaced within RING_GRACE_MS, newest first: authorization accepts their homes too.
  let oldRings: { ring: Ring; until: number }[] = [];
  let waiters: (() => void)[] = [];
  const ringListeners: ((r: Ring, prev: Ring, died: string[]) => void)[] = [];
  const majorityListeners: ((majority: boolean) => void)[] = [];
  const goneListeners: ((name: string) => void)[] = [];
  let requestHandler: (fromName: string | undefined, req: PeerRequest) => Promise<PeerReply> = async () => ({ t: 'fail', code: 'unavailable', message: 'starting' });
  let messageHandler: (fromName: string | undefined, msg: PeerOneWay) => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const known = new Set<string>();
  function learnAddrs(): void {
    for (const mv of m.members()) {
      if (mv.name === self || known.has(`${mv.peer}`) || mv.addrs.length === 0) continue;
      known.add(mv.peer);
      net.addAddrs(mv.peer, mv.addrs);
    }
  }

  function apply(events: MembershipEvent[]): void {
    for (const e of events) {
      c.onEvent?.(e.type);
      if (e.type === 'ring:changed') {
        const prev = ring;
        ring = createRing(e.members, opts);
        const now = Date.now();
        oldRings = [{ ring: prev, until: now + RING_GRACE_MS }, ...oldRings].filter((o) => o.until > now).slice(0, MAX_OLD_RINGS);
        const dead = new Set(m.members().filter((mv) => mv.state === 'dead').map((mv) => mv.name));
        const died = prev.members.filter((n) => !ring.has(n) && dead.has(n));
        log.info({ version: ring.version, members: ring.members, was: prev.version, ...(died.length ? { died } : {}) }, 'ring changed');
        for (const cb of ringListeners) cb(ring, prev, died);
        const w = waiters;
        waiters = [];
        for (const ok of w) ok();
        continue;
      }
      const mv = e.member;
      const what = { member: mv.name, peer: mv.peer, url: mv.url, incarnation: mv.incarnation };
      if (e.type === 'self:dead') {
        // The others gave this node's keys to other homes while it was cut off or frozen: what
        // it holds may be stale. It owns nothing now and comes back through the join copy.
        log.warn(what, 'the other members declared this node dead: rejoining through the data copy');
        void join(rejoinSeeds()); // never alone: the others are alive, and own its keys
        continue;
      }
      if (e.type === 'member:joined') log.info(what, 'member joined');
      else if (e.type === 'member:suspected') log.warn(what, 'member suspected');
      else if (e.type === 'member:recovered') log.info(what, 'member recovered');
      else if (e.type === 'member:left') log.info(what, 'member leaving');
      else if (e.type === 'member:died') log.warn(what, 'member died');
      if (e.type === 'member:died' || e.type === 'member:left') for (const cb of goneListeners) cb(mv.name);
    }
    learnAddrs();
  }

  const nameOf = (peer: string) => m.byPeer(peer)?.name;
  const view: AuthView = {
    self,
    byPeer: (peer) => m.byPeer(peer),
    names: () => m.members().map((mv) => mv.name),
    live: (name) => m.members().find((mv) => mv.name === name && mv.state !== 'dead'),
    rings: () => {
      const now = Date.now();
      return [ring, ...oldRings.filter((o) => o.until > now).map((o) => o.ring)];
    },
    vnodes: ring.vnodes,
    replicas: ring.replicas,
  };
  const ringCache: RingCache = new Map();
  const refusedLog = new Map<string, { at: number; n: number }>();
  /** Counts a refusal and warns about it at most once per REFUSED_LOG_MS per (type, reason). */
  function refused(type: string, reason: RefuseReason, peer: string, message: string, what = 'peer request refused'): void {
    c.onRefused?.(type, reason);
    const k = `${type}:${reason}`;
    const now = Date.now();
    const r = refusedLog.get(k) ?? { at: 0, n: 0 };
    refusedLog.set(k, r);
    r.n++;
    if (now - r.at < REFUSED_LOG_MS) {
      log.debug({ peer, type, reason, err: message }, what);
      return;
    }
    log.warn({ peer, name: nameOf(peer), type, reason, err: message, count: r.n }, `${what} (counted in im_peer_refused_total)`);
    r.at = now;
    r.n = 0;
  }
  const refuse = (code: 'unavailable' | 'forbidden', message: string): PeerReply => ({ t: 'fail', code, message: `refused: ${message}` });

  /** The data checks of requests that move or replace data, then the handler. */
  async function guarded(from: string, name: string | undefined, req: PeerRequest): Promise<PeerReply> {
    switch (req.t) {
      case 'handoff': {
        const v = handoffAllowed(view, from, req);
        if (!v.ok) {
          refused(req.t, v.reason, from, v.message);
          return refuse('forbidden', v.message);
        }
        return requestHandler(name, req);
      }
      case 'absorb': {
        const { ok, refused: no } = absorbKeys(view, ringCache, name!, pageKeys(req.page));
        if (no.length) refused(req.t, 'not_holder', from, `${name} did not hold or this node does not take over: ${no.slice(0, 5).join(', ')}`);
        if (ok.size === 0) return refuse('forbidden', `${name} may not hand over these keys to ${self}`);
        return requestHandler(name, no.length ? { t: 'absorb', page: pageOf(req.page, ok) } : req);
      }
      case 'deliver':
      case 'fanout': {
        // Refused items answer as not delivered (the sender retries them on its next ring).
        const good = req.t === 'deliver' ? req.items.map((d) => deliverAllowed(view, name!, d)) : req.items.map((it) => fanAllowed(view, name!, it));
        if (good.every(Boolean)) return requestHandler(name, req);
        refused(req.t, 'not_home', from, `${name} is not the home of the sender or group`);
        if (!good.some(Boolean)) return refuse('unavailable', `${name} is not the home of the sender or group`);
        const kept = req.t === 'deliver' ? { ...req, items: req.items.filter((_, i) => good[i]) } : { ...req, items: req.items.filter((_, i) => good[i]) };
        const r = await requestHandler(name, kept as PeerRequest);
        if (r.t !== 'done' || !Array.isArray(r.value)) return r;
        const part = r.value as unknown[];
        let j = 0;
        return { t: 'done', value: req.items.map((it, i) => (good[i] ? part[j++] : req.t === 'deliver' ? 'not_home' : (it as { users: string[] }).users)) };
      }
      case 'replicate': {
        const r = await requestHandler(name, req);
        // The replicator refuses users whose home by this node's ring is not the sender (fencing).
        const no = r.t === 'done' ? (r.value as { refused?: unknown[] } | undefined)?.refused : undefined;
        if (Array.isArray(no) && no.length) refused(req.t, 'not_home', from, `${name} is not the home of ${no.length} users`);
        return r;
      }
      default:
        return requestHandler(name, req);
    }
  }
  const alivePeers = () => m.members().filter((mv) => mv.name !== self && (mv.state === 'up' || mv.state === 'suspect' || mv.state === 'leaving'));

  function gossip(): void {
    const entries = m.digest();
    for (const mv of alivePeers()) net.send(mv.peer, { t: 'gossip', entries });
  }

  async function probe(target: string, via: string): Promise<void> {
    const peer = m.peerOf(via);
    if (!peer) return;
    try {
      const r = (await net.request(peer, { t: 'probe', target }, { timeoutMs: (init.probeTimeoutMs ?? 1000) * 2 })) as { t?: string; value?: unknown };
      apply(m.probeResult(target, r.t === 'done' && r.value === true));
    } catch {
      apply(m.probeResult(target, false));
    }
  }

  let majority = true;
  // Rounds in a row without a majority and without the lease; cut off once it reaches CUT_OFF_ROUNDS.
  let lostRounds = 0;
  let cutOff = false;
  function round(): void {
    if (stopped) return;
    apply(m.tick());
    // A node leaving gracefully stops counting itself: that is no loss of the majority.
    const counting = m.joined() && m.self().state !== 'leaving';
    if (counting && m.hasMajority() !== majority) {
      majority = !majority;
      const suspects = m.members().filter((mv) => mv.state === 'suspect').map((mv) => mv.name);
      if (majority) log.info('this node hears a majority of the members again');
      else log.warn({ suspects }, 'this node cannot hear a majority of the members: it declares nobody dead (it may be the one cut off), confirms no write and serves no read until it does');
    }
    // Clients are sent away only once the loss has lasted a few rounds, with the peers' frames
    // read in between: after a long stall of its event loop a node runs its timers before it
    // reads the gossip that piled up, and would otherwise send every client away for nothing.
    lostRounds = counting && !majority && !m.lease() ? lostRounds + 1 : 0;
    if (cutOff !== (lostRounds >= CUT_OFF_ROUNDS)) {
      cutOff = !cutOff;
      for (const cb of majorityListeners) cb(!cutOff);
    }
    for (const p of m.probes()) void probe(p.target, p.via);
    gossip();
  }

  function startAlone(why: string): void {
    m.markJoined();
    apply(m.tick());
    log.info({ members: m.ringMembers() }, why);
  }

  /** Where a node declared dead asks to come back: the members it still believes alive. */
  function rejoinSeeds(): string[] {
    const seeds: string[] = [];
    for (const mv of m.members()) {
      if (mv.name === self || mv.state === 'dead') continue;
      for (const a of mv.addrs) seeds.push(a.includes('/p2p/') ? a : `${a}/p2p/${mv.peer}`);
    }
    return seeds.length ? seeds : init.seeds;
  }

  /** Pings every member once: a newcomer has heard only its seed directly, and holds no write
   * lease until it has heard a majority (their gossip reaches it only once the seed's reached them). */
  function heardFromAll(): void {
    for (const mv of alivePeers()) {
      net.request(mv.peer, { t: 'ping' }, { timeoutMs: init.probeTimeoutMs ?? 1000 }).then(
        (r) => { if ((r as { t?: string }).t === 'done') apply(m.heard(mv.name)); },
        () => undefined,
      );
    }
  }

  let joining = false;
  async function join(seeds: string[], aloneAfterMs = Infinity): Promise<void> {
    if (joining) return;
    joining = true;
    try {
      await joinThrough(seeds, aloneAfterMs);
    } finally {
      joining = false;
    }
  }

  async function joinThrough(seeds: string[], aloneAfterMs: number): Promise<void> {
    const giveUpAt = Date.now() + aloneAfterMs;
    for (let attempt = 0; !stopped && !m.joined(); attempt++) {
      if (Date.now() >= giveUpAt) {
        log.warn({ seeds: init.seeds, waitedMs: init.aloneAfterMs }, 'no remembered member answered: starting a new cluster alone');
        return startAlone('started a new cluster alone');
      }
      for (const addr of seeds) {
        if (stopped || m.joined()) return;
        try {
          const peer = await net.dial(addr);
          if (init.beforeJoin) {
            const t = (await net.request(peer, { t: 'members' })) as { t?: string; value?: unknown };
            const table = (Array.isArray(t.value) ? t.value : []) as Record<string, unknown>[];
            const inPlace = table.some((e) => e && e.name === self && e.status === 'alive');
            const alive = table.filter((e: Record<string, unknown>) =>
              e && e.status === 'alive' && typeof e.name === 'string' && typeof e.peer === 'string' && Array.isArray(e.addrs) && e.name !== self) as { name: string; peer: string; addrs: string[] }[];
            // A seed that is not joined itself (it may be rejoining too, after the same partition)
            // has no member table to give: copying from nobody and joining would bring this
            // node's stale data back as if it were current.
            if (alive.length === 0) throw new Error('the seed is not a joined member (yet)');
            for (const a of alive) net.addAddrs(a.peer, a.addrs.filter((x) => typeof x === 'string'));
            await init.beforeJoin(alive, inPlace);
          }
          const r = (await net.request(peer, { t: 'join', entries: m.digest({ joining: true }) })) as { t?: string; value?: unknown };
          if (r.t !== 'done') throw new Error(`join refused: ${JSON.stringify(r).slice(0, 200)}`);
          apply(m.merge(r.value, nameOf(peer)));
          m.markJoined();
          apply(m.tick());
          log.info({ seed: addr, members: m.ringMembers() }, 'joined the cluster');
          gossip();
          heardFromAll();
          return;
        } catch (e) {
          if (attempt % 10 === 0) log.warn({ seed: addr, err: (e as Error).message }, 'cannot join through seed yet; retrying');
        }
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  net.onPeer(({ peer, up }) => {
    const name = nameOf(peer);
    if (!name) return;
    if (up) apply(m.heard(name));
    else apply(m.unreachable(name));
  });

  net.onMessage((from, raw) => {
    let msg: PeerOneWay;
    try {
      msg = parsePeerOneWay(raw);
    } catch (e) {
      c.onInvalidFrame?.(from);
      refused(typeLabel(raw), 'invalid', from, (e as Error).message, 'invalid peer message dropped');
      return;
    }
    const v = admitOneWay(view, from, msg);
    if (!v.ok) {
      refused(msg.t, v.reason, from, v.message, 'peer message dropped');
      return;
    }
    if (msg.t === 'gossip') {
      const claim = m.deadClaim(msg.entries, from);
      if (claim) net.send(from, { t: 'gossip', entries: [claim] });
      apply(m.merge(entriesFrom(view, from, msg.entries), nameOf(from)));
      const name = nameOf(from);
      if (name) apply(m.heard(name));
      return;
    }
    messageHandler(memberName(view, from), msg);
  });

  net.onRequest(async (from, raw) => {
    let req: PeerRequest;
    try {
      req = parsePeerRequest(raw, init.maxBody);
    } catch (e) {
      c.onInvalidFrame?.(from);
      refused(typeLabel(raw), 'invalid', from, (e as Error).message, 'invalid peer request refused');
      if (e instanceof PeerFrameError) return { t: 'fail', code: 'bad_request', message: e.message };
      throw e;
    }
    const v = admit(view, from, req.t);
    if (!v.ok) {
      refused(req.t, v.reason, from, v.message);
      // unavailable, not forbidden: a node that just joined through another member is not in
      // this node's table until gossip arrives, and its callers retry on unavailable.
      return refuse('unavailable', v.message);
    }
    if (nameOf(from)) apply(m.heard(nameOf(from)!));
    const name = memberName(view, from);
    switch (req.t) {
      case 'join':
        // Only a joined member lets others in: one that is itself out of the ring (joining, or
        // declared dead and rejoining) holds no current data to have been copied from.
        // Nor one cut off from the majority: its data may be stale.
        if (!m.joined() || !m.lease()) return { t: 'fail', code: 'unavailable', message: `${self} is not a joined member holding the lease` };
        apply(m.merge(entriesFrom(view, from, req.entries), nameOf(from)));
        return { t: 'done', value: m.digest() };
      case 'ping':
        return { t: 'done', value: true };
      case 'members':
        return { t: 'done', value: m.joined() && m.lease() ? m.digest() : [] };
      case 'probe': {
        const peer = m.peerOf(req.target);
        if (!peer) return { t: 'done', value: false };
        try {
          const r = (await net.request(peer, { t: 'ping' }, { timeoutMs: init.probeTimeoutMs ?? 1000 })) as { t?: string };
          return { t: 'done', value: r.t === 'done' };
        } catch {
          return { t: 'done', value: false };
        }
      }
      default:
        return guarded(from, name, req);
    }
  });

  return {
    ring: () => ring,
    joined: () => m.joined(),
    hasMajority: () => m.hasMajority(),
    lease: () => m.lease(),
    peerOf: (name) => m.peerOf(name),
    nameOf,
    members: () => m.members(),
    ringChange: (ms) =>
      new Promise<void>((ok) => {
        const t = setTimeout(ok, ms);
        waiters.push(() => {
          clearTimeout(t);
          ok();
        });
      }),
    onRingChanged: (cb) => void ringListeners.push(cb),
    onMajority: (cb) => void majorityListeners.push(cb),
    cutOff: () => cutOff,
    onMemberGone: (cb) => void goneListeners.push(cb),
    onRequest: (cb) => void (requestHandler = cb),
    onMessage: (cb) => void (messageHandler = cb),
    start() {
      if (init.seeds.length === 0) {
        startAlone('no seeds given: starting a new cluster');
      } else {
        void join(init.seeds, init.aloneAfterMs);
      }
      timer = setInterval(round, init.gossipMs ?? GOSSIP_MS);
    },
    async leave() {
      apply(m.leave());
      gossip();
      // One more round so that the leave reaches members that missed the first frame.
      await new Promise((r) => setTimeout(r, init.gossipMs ?? GOSSIP_MS));
      gossip();
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const ok of waiters) ok();
      waiters = [];
    },
  };
}
