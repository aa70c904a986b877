// What the router serves for peers: calls on the homes of this node (checked against its own
// ring: forwarded once when the caller's ring was stale, else not_owner so that the caller
// retries), deliveries, fan-outs, relays, presence, watches and sessions. Private to src/cluster.
import { isId } from '../protocol/frames.ts';
import { parsePeerReply } from '../protocol/peer.ts';
import type { LaneMark, PeerReply, PeerRequest } from '../protocol/peer.ts';
import { LOST } from '../home/home.ts';
import { codeOf } from '../protocol/errors.ts';
import type { SessionRef } from '../presence/index.ts';
import type { PeerDispatch, PeerHandler } from './dispatch.ts';
import { callEntry } from './home-calls.ts';
import type { RouterContext } from './router-context.ts';

type Fail = Extract<PeerReply, { t: 'fail' }>;
const fail = (code: Fail['code'], message: string): Fail => ({ t: 'fail', code, message });
const done = (value?: unknown): PeerReply => ({ t: 'done', value });

/** The peer request types the router serves. */
export type RouterRequest = Extract<PeerRequest, { t: 'call' | 'deliver' | 'fanout' | 'relay' | 'readmarks' | 'presence' | 'cinfo' | 'profiles' | 'revoke' | 'watch' | 'register' | 'renew' }>;
type Handlers = { [T in RouterRequest['t']]: (fromName: string | undefined, req: Extract<RouterRequest, { t: T }>) => Promise<PeerReply> };

export class PeerServer {
  #x: RouterContext;
  readonly handlers: Handlers;

  constructor(x: RouterContext) {
    this.#x = x;
    this.handlers = this.#handlers();
  }

  /** Serves a request of one of the router's types; any other is a bad request. */
  async handle(fromName: string | undefined, req: PeerRequest): Promise<PeerReply> {
    const h = (this.handlers as Record<string, PeerHandler | undefined>)[req.t];
    return h ? h(fromName, req, '') : fail('bad_request', `unexpected request '${req.t}'`);
  }

  /** Registers the router's handlers in the node's dispatch table. */
  register(dispatch: PeerDispatch): void {
    for (const [t, h] of Object.entries(this.handlers)) dispatch.on(t as RouterRequest['t'], h as PeerHandler<RouterRequest>);
  }

  #handlers(): Handlers {
    // Looked up at each request: the local roles are set after the router exists.
    const side = this.#x.side;
    const owned = (key: string) => this.#x.owned(key);
    return {
      call: (fromName, req) => this.#call(fromName, req),
      deliver: async (_, req) => {
        const mine = req.items.map((d) => owned(d.user));
        await side.local.deliver(req.items.filter((_, i) => mine[i]));
        return done(mine.map((m) => (m ? 'ok' : 'not_owner')));
      },
      fanout: async (_, req) => done(await side.local.deliverFan(req.items)),
      relay: async (_, req) => {
        side.local.relay(req.users, req.frame);
        return done();
      },
      readmarks: async (_, req) => done(await side.local.readMarks(req.conv, req.users)),
      presence: async (_, req) => done(await side.local.presence(req.users.filter(isId), req.viewer)),
      cinfo: async (_, req) => done(await side.social.info(req.viewer, req.users.filter(owned))),
      profiles: async (_, req) => done(await side.social.profiles(req.viewer, req.users.filter(owned))),
      revoke: async (_, req) => {
        side.social.revoke(req.users);
        return done();
      },
      watch: async (fromName, req) => {
        if (req.watcher.gateway !== fromName) return fail('bad_request', 'a watcher must belong to the calling gateway');
        await (req.on ? side.local.watch(req.watcher, req.users) : side.local.unwatch(req.watcher, req.users));
        return done();
      },
      register: async (fromName, req) => {
        const ok: SessionRef[] = req.sessions.filter((s) => s.gateway === fromName && owned(s.user));
        return done(side.local.register(ok));
      },
      renew: async (fromName, req) => {
        if (req.gateway !== fromName) return fail('bad_request', 'a gateway renews only its own sessions');
        return done(side.local.renew(req.gateway, req.conns));
      },
    };
  }

  async #call(fromName: string | undefined, req: Extract<PeerRequest, { t: 'call' }>): Promise<PeerReply> {
    const { c, self } = this.#x;
    const hc = req.call;
    const entry = callEntry(hc);
    if (entry.key(hc) !== req.key) return fail('bad_request', 'key does not match the call');
    if (entry.gateway && entry.gateway(hc) !== fromName && req.hops === 0) return fail('bad_request', 'a session must belong to the calling gateway');
    if (!c.joined()) return fail('unavailable', `${self} has not joined the cluster yet`);
    const owner = c.ring().owner(req.key);
    if (owner !== self) return this.#passOn(req, owner, hc.fn === 'send' || hc.fn === 'gsend' ? hc.at : undefined);
    try {
      return done(await entry.run(this.#x.side, hc));
    } catch (e) {
      const wire = codeOf(e);
      if (wire) return fail(wire.code, wire.message);
      this.#x.log.error({ err: e, fn: hc.fn }, 'peer call failed');
      return fail('internal', 'internal error; it is logged on the home');
    }
  }

  /**
   * A send passed on keeps its place in its connection's order (PROTOCOL: order per connection):
   * sends of one connection may reach this node before and after its ring moved their sender, and
   * a later one must not land at the new home ahead of earlier ones refused here or still on their
   * way (home/fences.ts). A refusal on the way fences the lane here, for the same reason.
   */
  async #passOn(req: Extract<PeerRequest, { t: 'call' }>, owner: string | undefined, at: LaneMark | undefined): Promise<PeerReply> {
    const lanes = this.#x.side.local.lanes;
    if (at && lanes.arrives(at)) return fail('unavailable', LOST);
    if (at && owner !== undefined && lanes.overtakes(at, owner)) {
      return fail('unavailable', `an earlier send of this connection is still at ${this.#x.self}; it goes again first`);
    }
    const r = await lanes.passing(at, owner ?? '', this.#forward(req, owner));
    if (at && r.t === 'fail' && (r.code === 'not_owner' || r.code === 'unavailable')) lanes.refused(at);
    return r;
  }

  /** The caller's ring is older or newer than ours: pass the call on once, never in a loop. */
  async #forward(req: Extract<PeerRequest, { t: 'call' }>, owner: string | undefined): Promise<PeerReply> {
    const { c, self } = this.#x;
    const peer = owner ? c.peerOf(owner) : undefined;
    if (req.hops >= 1 || !peer) return fail('not_owner', `${self} does not own ${req.key} (ring ${c.ring().version})`);
    c.onForward?.('reforward');
    try {
      return parsePeerReply(await c.link.request(peer, { ...req, hops: req.hops + 1 }, { timeoutMs: this.#x.timeoutMs }));
    } catch (e) {
      return fail('unavailable', `${owner}: ${(e as Error).message}`);
    }
  }
}
