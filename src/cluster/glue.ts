// The cluster glue's state and its membership side: membership events become ring swaps and
// listener calls, gossip rounds track the majority (and cut the node off after a lasting loss),
// and the node starts, leaves and stops. Private to src/cluster (see cluster.ts).
import type { Logger } from 'pino';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import type { Ring } from '../ring/index.ts';
import type { Membership, MembershipEvent, MemberView } from '../membership/index.ts';
import { parsePeerReply } from '../protocol/peer.ts';
import type { PeerOneWay, PeerReply } from '../protocol/peer.ts';
import type { PeerNet } from '../transport/index.ts';
import type { ClusterComponents, ClusterInit } from './cluster.ts';
import { createPeerDispatch } from './dispatch.ts';
import type { PeerDispatch } from './dispatch.ts';
import { Inbound } from './inbound.ts';
import { Joiner } from './join.ts';
import type { AuthView } from './peer-auth.ts';
import { Refusals } from './refusals.ts';
import { RingHistory } from './rings.ts';

const GOSSIP_MS = 500;
/** Gossip rounds in a row without a majority (and without the lease) before clients are sent away. */
const CUT_OFF_ROUNDS = 3;

export class ClusterGlue {
  readonly init: ClusterInit;
  readonly c: ClusterComponents;
  readonly m: Membership;
  readonly net: PeerNet;
  readonly log: Logger;
  readonly clock: Clock;
  readonly self: string;
  readonly rings: RingHistory;
  readonly view: AuthView;
  readonly dispatch: PeerDispatch;
  readonly refusals: Refusals;
  /** Aborted by stop() (or the components' signal): ends the rounds and the join retry loop. */
  readonly stopping = new AbortController();
  readonly ringListeners: ((r: Ring, prev: Ring, died: string[]) => void)[] = [];
  readonly majorityListeners: ((majority: boolean) => void)[] = [];
  readonly goneListeners: ((name: string) => void)[] = [];
  messageHandler: (fromName: string | undefined, msg: PeerOneWay) => void = () => undefined;
  cutOff = false;
  #majority = true;
  // Rounds in a row without a majority and without the lease; cut off once it reaches CUT_OFF_ROUNDS.
  #lostRounds = 0;
  #known = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #joiner: Joiner;

  constructor(init: ClusterInit, c: ClusterComponents) {
    this.init = init;
    this.c = c;
    this.m = c.membership;
    this.net = c.net;
    this.log = c.log;
    this.clock = c.clock ?? systemClock;
    this.self = this.m.self().name;
    this.rings = new RingHistory(this.m.ringMembers(), { vnodes: init.vnodes, replicas: init.replicas }, this.clock);
    this.view = this.#authView();
    this.dispatch = c.dispatch ?? createPeerDispatch();
    this.refusals = new Refusals(this.log, this.clock, (peer) => this.nameOf(peer), c.onRefused);
    this.#joiner = new Joiner(this);
    new Inbound(this).listen();
    c.signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  nameOf(peer: string): string | undefined {
    return this.m.byPeer(peer)?.name;
  }

  #authView(): AuthView {
    const m = this.m;
    return {
      self: this.self,
      byPeer: (peer) => m.byPeer(peer),
      names: () => m.members().map((mv) => mv.name),
      live: (name) => m.members().find((mv) => mv.name === name && mv.state !== 'dead'),
      rings: () => this.rings.recent(),
      vnodes: this.rings.current.vnodes,
      replicas: this.rings.current.replicas,
    };
  }

  apply(events: MembershipEvent[]): void {
    for (const e of events) {
      this.c.onEvent?.(e.type);
      if (e.type === 'ring:changed') this.#ringChanged(e.members);
      else this.#memberEvent(e.type, e.member);
    }
    this.#learnAddrs();
  }

  #ringChanged(members: string[]): void {
    const prev = this.rings.swap(members);
    const ring = this.rings.current;
    const dead = new Set(this.m.members().filter((mv) => mv.state === 'dead').map((mv) => mv.name));
    const died = prev.members.filter((n) => !ring.has(n) && dead.has(n));
    this.log.info({ version: ring.version, members: ring.members, was: prev.version, ...(died.length ? { died } : {}) }, 'ring changed');
    for (const cb of this.ringListeners) cb(ring, prev, died);
    this.rings.wake();
  }

  #memberEvent(type: Exclude<MembershipEvent['type'], 'ring:changed'>, mv: MemberView): void {
    const what = { member: mv.name, peer: mv.peer, url: mv.url, incarnation: mv.incarnation };
    if (type === 'self:dead') {
      // The others gave this node's keys to other homes while it was cut off or frozen: what
      // it holds may be stale. It owns nothing now and comes back through the join copy.
      this.log.warn(what, 'the other members declared this node dead: rejoining through the data copy');
      void this.#joiner.join(this.#joiner.rejoinSeeds()); // never alone: the others are alive, and own its keys
      return;
    }
    if (type === 'member:joined') this.log.info(what, 'member joined');
    else if (type === 'member:suspected') this.log.warn(what, 'member suspected');
    else if (type === 'member:recovered') this.log.info(what, 'member recovered');
    else if (type === 'member:left') this.log.info(what, 'member leaving');
    else if (type === 'member:died') this.log.warn(what, 'member died');
    if (type === 'member:died' || type === 'member:left') for (const cb of this.goneListeners) cb(mv.name);
  }

  #learnAddrs(): void {
    for (const mv of this.m.members()) {
      if (mv.name === this.self || this.#known.has(`${mv.peer}`) || mv.addrs.length === 0) continue;
      this.#known.add(mv.peer);
      this.net.addAddrs(mv.peer, mv.addrs);
    }
  }

  alivePeers(): MemberView[] {
    return this.m.members().filter((mv) => mv.name !== this.self && (mv.state === 'up' || mv.state === 'suspect' || mv.state === 'leaving'));
  }

  gossip(): void {
    const entries = this.m.digest();
    for (const mv of this.alivePeers()) this.net.send(mv.peer, { t: 'gossip', entries });
  }

  /** Asks `via` whether `target` answers it (an indirect probe of a suspect). */
  async #probe(target: string, via: string): Promise<void> {
    const peer = this.m.peerOf(via);
    if (!peer) return;
    try {
      const r = parsePeerReply(await this.net.request(peer, { t: 'probe', target }, { timeoutMs: (this.init.probeTimeoutMs ?? 1000) * 2 }));
      this.apply(this.m.probeResult(target, r.t === 'done' && r.value === true));
    } catch {
      this.apply(this.m.probeResult(target, false));
    }
  }

  #round(): void {
    if (this.stopped) return;
    const m = this.m;
    this.apply(m.tick());
    // A node leaving gracefully stops counting itself: that is no loss of the majority.
    const counting = m.joined() && m.self().state !== 'leaving';
    if (counting && m.hasMajority() !== this.#majority) {
      this.#majority = !this.#majority;
      const suspects = m.members().filter((mv) => mv.state === 'suspect').map((mv) => mv.name);
      if (this.#majority) this.log.info('this node hears a majority of the members again');
      else this.log.warn({ suspects }, 'this node cannot hear a majority of the members: it declares nobody dead (it may be the one cut off), confirms no write and serves no read until it does');
    }
    // Clients are sent away only once the loss has lasted a few rounds, with the peers' frames
    // read in between: after a long stall of its event loop a node runs its timers before it
    // reads the gossip that piled up, and would otherwise send every client away for nothing.
    this.#lostRounds = counting && !this.#majority && !m.lease() ? this.#lostRounds + 1 : 0;
    if (this.cutOff !== (this.#lostRounds >= CUT_OFF_ROUNDS)) {
      this.cutOff = !this.cutOff;
      for (const cb of this.majorityListeners) cb(!this.cutOff);
    }
    for (const p of m.probes()) void this.#probe(p.target, p.via);
    this.gossip();
  }

  startAlone(why: string): void {
    this.m.markJoined();
    this.apply(this.m.tick());
    this.log.info({ members: this.m.ringMembers() }, why);
  }

  /** Pings every member once: a newcomer has heard only its seed directly, and holds no write
   * lease until a majority has vouched for it (their gossip reaches it only once the seed's
   * reached them). A yes vouches as of the moment the ping left. */
  heardFromAll(): void {
    for (const mv of this.alivePeers()) {
      const sent = this.m.now();
      this.net.request(mv.peer, { t: 'ping' }, { timeoutMs: this.init.probeTimeoutMs ?? 1000 }).then(
        (r) => {
          const reply = parseReply(r);
          if (reply?.t !== 'done') return;
          if (reply.value === true) this.m.vouched(mv.name, sent);
          this.apply(this.m.heard(mv.name));
        },
        () => undefined,
      );
    }
  }

  /** The hook run before joining (see ClusterInit.beforeJoin), when given at start. */
  beforeJoin: ClusterInit['beforeJoin'];

  start(beforeJoin?: ClusterInit['beforeJoin']): void {
    this.beforeJoin = beforeJoin ?? this.init.beforeJoin;
    if (this.init.seeds.length === 0) {
      this.startAlone('no seeds given: starting a new cluster');
    } else {
      void this.#joiner.join(this.init.seeds, this.init.aloneAfterMs);
    }
    this.#timer = setInterval(() => this.#round(), this.init.gossipMs ?? GOSSIP_MS);
  }

  async leave(): Promise<void> {
    this.apply(this.m.leave());
    this.gossip();
    // One more round so that the leave reaches members that missed the first frame.
    try {
      await this.clock.sleep(this.init.gossipMs ?? GOSSIP_MS, this.stopping.signal);
    } catch {
      return; // stopped meanwhile: the transport may be gone
    }
    this.gossip();
  }

  stop(): void {
    this.stopping.abort();
    clearInterval(this.#timer);
    this.rings.wake();
  }
}

/** A peer's reply, or undefined when it is malformed (treated like no answer). */
function parseReply(raw: unknown): PeerReply | undefined {
  try {
    return parsePeerReply(raw);
  } catch {
    return undefined;
  }
}
