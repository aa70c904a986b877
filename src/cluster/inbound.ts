// Peer traffic coming in: every frame is validated (parsePeerRequest / parsePeerOneWay), its
// sender authorized (peer-auth.ts), the data checks of requests that move or replace data
// applied, and what passes goes to its handler in the dispatch table (or, for one-way messages,
// to the message handler). Membership's own requests are served here. Private to src/cluster.
import { PeerFrameError, parsePeerOneWay, parsePeerReply, parsePeerRequest } from '../protocol/peer.ts';
import type { PeerOneWay, PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { ClusterGlue } from './glue.ts';
import { absorbKeys, admit, admitOneWay, deliverAllowed, entriesFrom, fanAllowed, handoffAllowed, memberName, pageKeys, pageOf } from './peer-auth.ts';
import type { RingCache } from './peer-auth.ts';
import { refuse } from './refusals.ts';

const TYPES = new Set([
  'call', 'deliver', 'fanout', 'relay', 'readmarks', 'presence', 'watch', 'register', 'renew', 'join', 'probe', 'ping', 'members',
  'handoff', 'absorb', 'holding', 'replicate', 'gossip', 'push', 'pushmsg', 'cinfo', 'profiles', 'revoke',
]);
/** A metric label from a peer-chosen type: known types, else 'other'. */
const typeLabel = (raw: unknown): string => {
  const t = raw !== null && typeof raw === 'object' ? (raw as { t?: unknown }).t : undefined;
  return typeof t === 'string' && TYPES.has(t) ? t : 'other';
};

type Req<T extends PeerRequest['t']> = Extract<PeerRequest, { t: T }>;

export class Inbound {
  #g: ClusterGlue;
  #ringCache: RingCache = new Map();

  constructor(g: ClusterGlue) {
    this.#g = g;
  }

  /** Listens to the transport and registers membership's own requests in the dispatch table. */
  listen(): void {
    const { net, m, dispatch } = this.#g;
    net.onPeer(({ peer, up }) => {
      const name = this.#g.nameOf(peer);
      if (!name) return;
      if (up) this.#g.apply(m.heard(name));
      else this.#g.apply(m.unreachable(name));
    });
    net.onMessage((from, raw) => this.#message(from, raw));
    net.onRequest((from, raw) => this.#request(from, raw));
    dispatch.on('join', async (_name, req, from) => this.#join(from, req));
    // The answer says whether the sender is a live member here: a yes vouches for it (lease).
    dispatch.on('ping', async (name) => ({ t: 'done', value: name !== undefined }));
    dispatch.on('members', async () => ({ t: 'done', value: m.joined() && m.lease() ? m.digest() : [] }));
    dispatch.on('probe', (_name, req) => this.#probe(req));
  }

  #message(from: string, raw: unknown): void {
    const g = this.#g;
    let msg: PeerOneWay;
    try {
      msg = parsePeerOneWay(raw);
    } catch (e) {
      g.c.onInvalidFrame?.(from);
      g.refusals.refused(typeLabel(raw), 'invalid', from, (e as Error).message, 'invalid peer message dropped');
      return;
    }
    const v = admitOneWay(g.view, from, msg);
    if (!v.ok) {
      g.refusals.refused(msg.t, v.reason, from, v.message, 'peer message dropped');
      return;
    }
    if (msg.t === 'gossip') {
      const claim = g.m.deadClaim(msg.entries, from);
      if (claim) g.net.send(from, { t: 'gossip', entries: [claim] });
      g.apply(g.m.merge(entriesFrom(g.view, from, msg.entries), g.nameOf(from)));
      const name = g.nameOf(from);
      if (name) g.apply(g.m.heard(name));
      return;
    }
    g.messageHandler(memberName(g.view, from), msg);
  }

  async #request(from: string, raw: unknown): Promise<PeerReply> {
    const g = this.#g;
    let req: PeerRequest;
    try {
      req = parsePeerRequest(raw, g.init.maxBody);
    } catch (e) {
      g.c.onInvalidFrame?.(from);
      g.refusals.refused(typeLabel(raw), 'invalid', from, (e as Error).message, 'invalid peer request refused');
      if (e instanceof PeerFrameError) return { t: 'fail', code: 'bad_request', message: e.message };
      throw e;
    }
    const v = admit(g.view, from, req.t);
    if (!v.ok) {
      g.refusals.refused(req.t, v.reason, from, v.message);
      // unavailable, not forbidden: a node that just joined through another member is not in
      // this node's table until gossip arrives, and its callers retry on unavailable.
      return refuse('unavailable', v.message);
    }
    if (g.nameOf(from)) g.apply(g.m.heard(g.nameOf(from)!));
    return this.#guarded(from, memberName(g.view, from), req);
  }

  #join(from: string, req: Req<'join'>): PeerReply {
    const { m, self, view } = this.#g;
    // Only a joined member lets others in: one that is itself out of the ring (joining, or
    // declared dead and rejoining) holds no current data to have been copied from.
    // Nor one cut off from the majority: its data may be stale.
    if (!m.joined() || !m.lease()) return { t: 'fail', code: 'unavailable', message: `${self} is not a joined member holding the lease` };
    this.#g.apply(m.merge(entriesFrom(view, from, req.entries), this.#g.nameOf(from)));
    return { t: 'done', value: m.digest() };
  }

  async #probe(req: Req<'probe'>): Promise<PeerReply> {
    const { m, net, init } = this.#g;
    const peer = m.peerOf(req.target);
    if (!peer) return { t: 'done', value: false };
    try {
      const r = parsePeerReply(await net.request(peer, { t: 'ping' }, { timeoutMs: init.probeTimeoutMs ?? 1000 }));
      return { t: 'done', value: r.t === 'done' };
    } catch {
      return { t: 'done', value: false };
    }
  }

  /** The data checks of requests that move or replace data, then the handler. */
  async #guarded(from: string, name: string | undefined, req: PeerRequest): Promise<PeerReply> {
    const g = this.#g;
    const handle = (r: PeerRequest) => g.dispatch.handle(name, r, from);
    switch (req.t) {
      case 'handoff': {
        const v = handoffAllowed(g.view, from, req);
        if (!v.ok) {
          g.refusals.refused(req.t, v.reason, from, v.message);
          return refuse('forbidden', v.message);
        }
        return handle(req);
      }
      case 'absorb': {
        const { ok, refused: no } = absorbKeys(g.view, this.#ringCache, name!, pageKeys(req.page));
        if (no.length) g.refusals.refused(req.t, 'not_holder', from, `${name} did not hold or this node does not take over: ${no.slice(0, 5).join(', ')}`);
        if (ok.size === 0) return refuse('forbidden', `${name} may not hand over these keys to ${g.self}`);
        return handle(no.length ? { t: 'absorb', page: pageOf(req.page, ok) } : req);
      }
      case 'deliver':
      case 'fanout':
        return this.#fromHome(from, name!, req, handle);
      case 'replicate': {
        const r = await handle(req);
        // The replicator refuses users whose home by this node's ring is not the sender (fencing).
        const no = r.t === 'done' ? (r.value as { refused?: unknown[] } | undefined)?.refused : undefined;
        if (Array.isArray(no) && no.length) g.refusals.refused(req.t, 'not_home', from, `${name} is not the home of ${no.length} users`);
        return r;
      }
      default:
        return handle(req);
    }
  }

  /** deliver and fanout come from the home of the sender or the group: refused items answer as
   * not delivered (the sender retries them on its next ring). */
  async #fromHome(from: string, name: string, req: Req<'deliver'> | Req<'fanout'>, handle: (r: PeerRequest) => Promise<PeerReply>): Promise<PeerReply> {
    const g = this.#g;
    const good = req.t === 'deliver' ? req.items.map((d) => deliverAllowed(g.view, name, d)) : req.items.map((it) => fanAllowed(g.view, name, it));
    if (good.every(Boolean)) return handle(req);
    g.refusals.refused(req.t, 'not_home', from, `${name} is not the home of the sender or group`);
    if (!good.some(Boolean)) return refuse('unavailable', `${name} is not the home of the sender or group`);
    const kept = req.t === 'deliver' ? { ...req, items: req.items.filter((_, i) => good[i]) } : { ...req, items: req.items.filter((_, i) => good[i]) };
    const r = await handle(kept as PeerRequest);
    if (r.t !== 'done' || !Array.isArray(r.value)) return r;
    const part = r.value as unknown[];
    let j = 0;
    return { t: 'done', value: req.items.map((it, i) => (good[i] ? part[j++] : req.t === 'deliver' ? 'not_home' : (it as { users: string[] }).users)) };
  }
}
