// The router: the Homes API over the ring. A call for a key runs on this node when it is the
// key's home, else it goes to the home peer to peer; the home checks ownership by its own ring,
// forwards once if the caller's ring was stale, or answers not_owner so that the caller retries.
import type { Logger } from 'pino';
import type { Ring } from '../ring/index.ts';
import type { SessionRef } from '../presence/index.ts';
import { isId } from '../protocol/frames.ts';
import type { Entry, UserPresence } from '../protocol/frames.ts';
import { entryWireChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { CastFrame, Delivery, GroupPost, HomeCall, PeerReply, PeerRequest, PostResult } from '../protocol/peer.ts';
import type { Unread } from '../store/index.ts';
import { ClientError, ForbiddenError, UnavailableError } from '../protocol/errors.ts';
import type { Home, Homes, Page, SendResult, Watcher } from '../home/home.ts';
import type { GroupInfo, Groups } from '../group-home/groups.ts';
import type { AdmitKind, ContactInfo, ContactsPage, Social, SocialReq } from '../social/social.ts';
import type { Refusal } from '../contacts/index.ts';
import type { Profile } from '../protocol/frames.ts';
import { groupKey } from '../group-home/groups.ts';
import type { Lane, LaneTurn } from '../gateway/lane.ts';

/** What the router needs of the peer transport. */
export type PeerLink = {
  request(peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }): Promise<unknown>;
};

export type RouterComponents = {
  self: string;
  ring: () => Ring;
  joined: () => boolean;
  local: Home;
  /** The group-home role of this node. */
  groups: Groups;
  /** The social role of this node (profiles, contacts, status of the users it is home of). */
  social: Social;
  peerOf: (name: string) => string | undefined;
  link: PeerLink;
  log: Logger;
  /** Resolves when the ring changes or after `ms`, whichever is first (to retry on a new ring). */
  ringChange: (ms: number) => Promise<void>;
  onForward?: (kind: 'forward' | 'reforward' | 'retry') => void;
  requestTimeoutMs?: number;
  /** How long a call or a delivery keeps retrying before the client is told `unavailable`. */
  deadlineMs?: number;
};

export type Router = Omit<Homes, 'group' | 'typing' | 'receipts'> & {
  /** A group op or query on the group's home. */
  groupCall(actor: string, op: Extract<HomeCall, { fn: 'group' }>['op'], group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Posts of this node's senders to the group's home. */
  postGroup(group: string, posts: GroupPost[]): Promise<PostResult[]>;
  /** A member's typing or receipt, relayed by the group's home. */
  castGroup(group: string, from: string, frame: CastFrame): Promise<void>;
  /** Splits users by home and runs `here` locally and `there` per remote home (in parallel). */
  perHome<T>(users: string[], here: (us: string[]) => Promise<T>, there: (peer: string, us: string[]) => Promise<T>): Promise<T[]>;
  /** One request to a peer; its `done` value, or UnavailableError. */
  remote(peer: string, req: PeerRequest, timeoutMs?: number): Promise<unknown>;
  /** Hands a copy to the recipient's home, in order per destination node; resolves when durable there. */
  deliverRemote(d: Delivery): Promise<void>;
  /** A change of `user`'s profile, status, privacy or contacts, on the user's home. */
  socialOp(user: string, req: SocialReq): Promise<void>;
  contacts(user: string, after: string | undefined, limit: number): Promise<ContactsPage>;
  profiles(viewer: string, users: string[]): Promise<Record<string, Profile | null>>;
  info(viewer: string, users: string[]): Promise<Record<string, ContactInfo>>;
  /** Whether `to`'s home takes `kind` from `from`. */
  admitAt(to: string, from: string, kind: AdmitKind): Promise<Refusal | undefined>;
  /** Every other member forgets the admissions it cached for these users. */
  revokeEverywhere(users: string[]): Promise<void>;
  /** Serves a peer's call, deliver, presence, watch, register or renew request. */
  handle(fromName: string | undefined, req: PeerRequest): Promise<PeerReply>;
};

const DEADLINE_MS = 8000;
const RETRY_MS = 300;
const DELIVER_BATCH = 1000;

type Fail = Extract<PeerReply, { t: 'fail' }>;
const fail = (code: Fail['code'], message: string): Fail => ({ t: 'fail', code, message });
const done = (value?: unknown): PeerReply => ({ t: 'done', value });

function keyOfCall(c: HomeCall): string {
  switch (c.fn) {
    case 'send': case 'gsend': return c.from;
    case 'group': case 'gpost': case 'gcast': return groupKey(c.group);
    case 'login': case 'logout': case 'read': return c.session.user;
    default: return c.user;
  }
}

// Replies are peer input too: check the shapes the gateway relies on.
const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
function checkValue(fn: HomeCall['fn'], v: unknown): boolean {
  const o = v as Record<string, unknown> | null;
  switch (fn) {
    case 'send': case 'gsend': return !!o && typeof o.mid === 'string' && isNat(o.seq) && isNat(o.ts);
    case 'group':
      return v === undefined || v === null || (!!o && isId(o.owner) && Array.isArray(o.members) && (o.members as unknown[]).every(isId) &&
        typeof o.joined === 'object' && o.joined !== null && Object.values(o.joined).every(isNat));
    case 'gpost':
      return Array.isArray(v) && v.every((r: Record<string, unknown> | null) => !!r &&
        ((typeof r.mid === 'string' && r.mid.length <= 64) || ((r.code === 'not_found' || r.code === 'forbidden' || r.code === 'rate_limited' || r.code === 'unavailable') && typeof r.message === 'string')));
    case 'login': return !!o && isNat(o.seq) && isNat(o.acked);
    case 'sync': case 'history':
      return !!o && typeof o.more === 'boolean' && Array.isArray(o.msgs) &&
        (o.msgs as Entry[]).every((e) => e && isNat(e.seq) && typeof e.mid === 'string' && typeof e.body === 'string');
    case 'unread': return !!o && isNat(o.total) && typeof o.convs === 'object' && o.convs !== null;
    case 'admit': return v === null || (!!o && typeof o.message === 'string' && ['forbidden', 'too_large', 'not_found', 'conflict', 'bad_request'].includes(o.code as string));
    default: return true;
  }
}

export function createRouter(c: RouterComponents): Router {
  const { self, local, log } = c;
  const deadlineMs = c.deadlineMs ?? DEADLINE_MS;
  const timeoutMs = c.requestTimeoutMs ?? 5000;
  /** The request timeout left before a deadline (at least 100 ms). */
  const left = (deadline: number) => Math.max(100, Math.min(timeoutMs, deadline - Date.now()));

  /** Runs a call on the key's home, retrying on a stale ring or a lost peer until the deadline. */
  async function call<T>(key: string, hc: HomeCall, here: () => Promise<T>, lane?: Lane): Promise<T> {
    const turn = lane?.open();
    try {
      return await attempts(key, hc, here, lane, turn);
    } finally {
      if (turn) lane!.close(turn);
    }
  }

  async function attempts<T>(key: string, hc: HomeCall, here: () => Promise<T>, lane: Lane | undefined, turn: LaneTurn | undefined): Promise<T> {
    let last = 'no owner';
    const deadline = Date.now() + deadlineMs;
    for (let i = 0; i === 0 || Date.now() < deadline; i++) {
      if (i > 0) {
        if (turn) lane!.retrying(turn);
        c.onForward?.('retry');
        await c.ringChange(RETRY_MS);
      }
      if (!c.joined()) {
        last = 'this node has not joined the cluster yet';
        continue;
      }
      let ring = c.ring();
      let owner = ring.owner(key);
      if (owner === undefined) continue;
      // In the lane's order: wait until every earlier call of the connection goes the same way.
      while (turn) {
        await lane!.admit(turn, owner);
        ring = c.ring();
        const now = ring.owner(key);
        if (now === owner || now === undefined) break;
        owner = now;
      }
      if (owner === self) return await here();
      const peer = c.peerOf(owner);
      if (!peer) {
        last = `no address for ${owner}`;
        continue;
      }
      c.onForward?.('forward');
      let reply: PeerReply;
      try {
        reply = parsePeerReply(await c.link.request(peer, { t: 'call', key, rv: ring.version, hops: 0, call: hc }, { timeoutMs: left(deadline) }));
      } catch (e) {
        last = `${owner}: ${(e as Error).message}`;
        continue;
      }
      if (reply.t === 'done') {
        if (!checkValue(hc.fn, reply.value)) throw new Error(`malformed ${hc.fn} reply from ${owner}`);
        return reply.value as T;
      }
      if (reply.code === 'forbidden') throw new ForbiddenError(reply.message);
      if (reply.code === 'not_found' || reply.code === 'conflict' || reply.code === 'too_large' || reply.code === 'bad_request' || reply.code === 'rate_limited') {
        throw new ClientError(reply.code, reply.message);
      }
      if (reply.code === 'not_owner' || reply.code === 'unavailable') {
        last = `${owner}: ${reply.message}`;
        continue;
      }
      throw new Error(`${owner} answered ${reply.code}: ${reply.message}`);
    }
    throw new UnavailableError(`the home of ${key} is not reachable (${last})`);
  }

  /** Splits users by home and runs `here` locally and `there` per remote home. */
  async function perHome<T>(users: string[], here: (us: string[]) => Promise<T>, there: (peer: string, us: string[]) => Promise<T>): Promise<T[]> {
    if (!c.joined()) throw new UnavailableError('this node has not joined the cluster yet');
    const byOwner = new Map<string, string[]>();
    for (const u of new Set(users)) {
      const o = c.ring().owner(u) ?? self;
      let l = byOwner.get(o);
      if (!l) byOwner.set(o, (l = []));
      l.push(u);
    }
    return Promise.all([...byOwner].map(async ([owner, us]) => {
      if (owner === self) return here(us);
      const peer = c.peerOf(owner);
      if (!peer) throw new UnavailableError(`no address for ${owner}`);
      try {
        return await there(peer, us);
      } catch (e) {
        if ((e as Error).name === 'ForbiddenError') throw e;
        throw new UnavailableError(`${owner}: ${(e as Error).message}`);
      }
    }));
  }

  async function remote(peer: string, req: PeerRequest, ms = timeoutMs): Promise<unknown> {
    const reply = parsePeerReply(await c.link.request(peer, req, { timeoutMs: ms }));
    if (reply.t === 'fail') throw new UnavailableError(reply.message);
    return reply.value;
  }

  // Deliveries to one destination node go out in order, one batch in flight at a time, so that
  // messages from one connection land in each recipient's timeline in the order they were sent.
  // A copy that has to be retried (its home died, moved, or paused it) holds back every later
  // copy for the same recipient until it is routed again, so a newer copy cannot overtake it
  // on the next ring.
  type Pending = { d: Delivery; deadline: number; resolve(): void; reject(e: Error): void };
  const channels = new Map<string, { queue: Pending[]; busy: boolean }>();
  const held = new Map<string, Pending[]>();

  function route(p: Pending): void {
    const wait = held.get(p.d.user);
    if (wait) {
      wait.push(p);
      return;
    }
    const owner = c.joined() ? c.ring().owner(p.d.user) : undefined;
    if (owner === self) {
      // Unavailable here means the recipient is being handed to a newcomer: retry on the new ring.
      local.deliver([p.d]).then(p.resolve, (e: Error) => (e.name === 'UnavailableError' ? retry([p], e.message) : p.reject(e)));
      return;
    }
    const dest = owner ?? '';
    let ch = channels.get(dest);
    if (!ch) channels.set(dest, (ch = { queue: [], busy: false }));
    ch.queue.push(p);
    if (!ch.busy) void flush(dest, ch);
  }

  /** Routes `ps` again on the next ring (or after RETRY_MS), ahead of every later copy for the
   * same recipients, which wait with them (also those already queued behind them). */
  function retry(ps: Pending[], why: string): void {
    const users = new Set<string>();
    // A recipient with a copy past its deadline: every copy for it is given back, in mid order (a
    // sender's mids rise with its sends), so that the senders' retries route them again in that
    // order. Were only the late one given back, its retry would queue behind the later copies
    // still held here, and land after them (seen when a recipient's home was cut off).
    const now = Date.now();
    const expired = new Set(ps.filter((p) => now >= p.deadline).map((p) => p.d.user));
    if (expired.size) {
      const out = ps.filter((p) => expired.has(p.d.user));
      ps = ps.filter((p) => !expired.has(p.d.user));
      for (const u of expired) {
        out.push(...(held.get(u) ?? []));
        held.delete(u);
      }
      for (const ch of channels.values()) {
        if (!ch.queue.some((p) => expired.has(p.d.user))) continue;
        out.push(...ch.queue.filter((p) => expired.has(p.d.user)));
        ch.queue = ch.queue.filter((p) => !expired.has(p.d.user));
      }
      out.sort((a, b) => (a.d.mid < b.d.mid ? -1 : a.d.mid > b.d.mid ? 1 : 0));
      for (const p of out) p.reject(new UnavailableError(`the home of ${p.d.user} is not reachable (${why})`));
    }
    for (const p of ps) {
      let wait = held.get(p.d.user);
      if (!wait) {
        held.set(p.d.user, (wait = []));
        users.add(p.d.user);
      }
      wait.push(p);
    }
    if (users.size === 0) return;
    for (const ch of channels.values()) {
      const later = ch.queue.filter((p) => users.has(p.d.user));
      if (later.length === 0) continue;
      ch.queue = ch.queue.filter((p) => !users.has(p.d.user));
      for (const p of later) held.get(p.d.user)!.push(p);
    }
    c.onForward?.('retry');
    void c.ringChange(RETRY_MS).then(() => {
      for (const u of users) {
        const wait = held.get(u) ?? [];
        held.delete(u);
        for (const p of wait) route(p);
      }
    });
  }

  async function flush(dest: string, ch: { queue: Pending[]; busy: boolean }): Promise<void> {
    ch.busy = true;
    while (ch.queue.length) {
      // Up to DELIVER_BATCH copies, and few enough large ones that the request fits a peer frame.
      let n = 0;
      for (let chars = 0; n < ch.queue.length && n < DELIVER_BATCH; n++) {
        chars += entryWireChars(ch.queue[n]!.d.body);
        if (n > 0 && chars > PEER_BUDGET_CHARS) break;
      }
      const batch = ch.queue.splice(0, n);
      const peer = dest ? c.peerOf(dest) : undefined;
      if (!peer) {
        retry(batch, `no address for ${dest || 'the owner'}`);
        continue;
      }
      c.onForward?.('forward');
      try {
        const reply = parsePeerReply(await c.link.request(peer, { t: 'deliver', rv: c.ring().version, items: batch.map((p) => p.d) }, { timeoutMs: left(Math.min(...batch.map((p) => p.deadline))) }));
        if (reply.t === 'fail') throw new Error(reply.message);
        const results = reply.value;
        if (!Array.isArray(results) || results.length !== batch.length) throw new Error(`malformed deliver reply from ${dest}`);
        const again: Pending[] = [];
        batch.forEach((p, i) => (results[i] === 'ok' ? p.resolve() : again.push(p)));
        if (again.length) retry(again, `${dest}: ${String(results[batch.indexOf(again[0]!)])}`);
      } catch (e) {
        retry(batch, `${dest}: ${(e as Error).message}`);
      }
    }
    ch.busy = false;
  }

  const owned = (key: string) => c.joined() && c.ring().owner(key) === self;

  async function serveCall(fromName: string | undefined, req: Extract<PeerRequest, { t: 'call' }>): Promise<PeerReply> {
    const hc = req.call;
    if (keyOfCall(hc) !== req.key) return fail('bad_request', 'key does not match the call');
    if ((hc.fn === 'login' || hc.fn === 'logout' || hc.fn === 'read') && hc.session.gateway !== fromName && req.hops === 0) {
      return fail('bad_request', 'a session must belong to the calling gateway');
    }
    if (!c.joined()) return fail('unavailable', `${self} has not joined the cluster yet`);
    const owner = c.ring().owner(req.key);
    if (owner !== self) {
      // The caller's ring is older or newer than ours: pass it on once, never in a loop.
      const peer = owner ? c.peerOf(owner) : undefined;
      if (req.hops >= 1 || !peer) return fail('not_owner', `${self} does not own ${req.key} (ring ${c.ring().version})`);
      c.onForward?.('reforward');
      try {
        return parsePeerReply(await c.link.request(peer, { ...req, hops: req.hops + 1 }, { timeoutMs }));
      } catch (e) {
        return fail('unavailable', `${owner}: ${(e as Error).message}`);
      }
    }
    try {
      switch (hc.fn) {
        case 'send': return done(await local.send(hc.from, hc.to, hc.cid, hc.body));
        case 'login': return done(await local.login(hc.session));
        case 'logout': return done(await local.logout(hc.session));
        case 'sync': return done(await local.sync(hc.user, hc.after, hc.limit));
        case 'history': return done(await local.history(hc.user, hc.conv, hc.before, hc.limit));
        case 'ack': return done(await local.ack(hc.user, hc.device, hc.seq));
        case 'read': return done(await local.read(hc.session, hc.conv, hc.seq));
        case 'unread': return done(await local.unread(hc.user));
        case 'gsend': return done(await local.sendGroup(hc.from, hc.group, hc.cid, hc.body));
        case 'group': return done(await c.groups.op(hc.actor, hc.op, hc.group, hc.members));
        case 'gpost': return done(await c.groups.post(hc.group, hc.posts));
        case 'gcast': return done(await c.groups.cast(hc.group, hc.from, hc.frame));
        case 'social': return done(await c.social.op(hc.user, hc.req));
        case 'contacts': return done(await c.social.contacts(hc.user, hc.after, hc.limit));
        case 'admit': return done((await c.social.admit(hc.user, hc.from, hc.kind)) ?? null);
      }
    } catch (e) {
      if ((e as Error).name === 'ForbiddenError') return fail('forbidden', (e as Error).message);
      if (e instanceof ClientError) return fail(e.code, e.message);
      if ((e as Error).name === 'UnavailableError') return fail('unavailable', (e as Error).message);
      log.error({ err: e, fn: hc.fn }, 'peer call failed');
      return fail('internal', 'internal error; it is logged on the home');
    }
  }

  return {
    send: (from, to, cid, body, lane) => call<SendResult>(from, { fn: 'send', from, to, cid, body }, () => local.send(from, to, cid, body), lane),
    login: (s) => call(s.user, { fn: 'login', session: s }, () => local.login(s)),
    logout: (s) => call(s.user, { fn: 'logout', session: s }, () => local.logout(s)),
    sync: (user, after, limit) => call<Page>(user, { fn: 'sync', user, after, limit }, () => local.sync(user, after, limit)),
    history: (user, conv, before, limit) =>
      call<Page>(user, { fn: 'history', user, conv, limit, ...(before !== undefined ? { before } : {}) }, () => local.history(user, conv, before, limit)),
    ack: (user, device, seq) => call(user, { fn: 'ack', user, device, seq }, () => local.ack(user, device, seq)),
    read: (s, conv, seq) => call(s.user, { fn: 'read', session: s, conv, seq }, () => local.read(s, conv, seq)),
    unread: (user) => call<Unread>(user, { fn: 'unread', user }, () => local.unread(user)),
    sendGroup: (from, group, cid, body, lane) =>
      call<SendResult>(from, { fn: 'gsend', from, group, cid, body }, () => local.sendGroup(from, group, cid, body), lane),
    groupCall: (actor, op, group, members) =>
      call<GroupInfo | undefined>(groupKey(group), { fn: 'group', op, group, actor, members }, () => c.groups.op(actor, op, group, members)),
    postGroup: (group, posts) => call<PostResult[]>(groupKey(group), { fn: 'gpost', group, posts }, () => c.groups.post(group, posts)),
    castGroup: (group, from, frame) => call<void>(groupKey(group), { fn: 'gcast', group, from, frame }, () => c.groups.cast(group, from, frame)),
    perHome,
    remote,

    socialOp: (user, req) => call<void>(user, { fn: 'social', user, req }, () => c.social.op(user, req)),
    contacts: (user, after, limit) =>
      call<ContactsPage>(user, { fn: 'contacts', user, limit, ...(after !== undefined ? { after } : {}) }, () => c.social.contacts(user, after, limit)),

    async profiles(viewer, users) {
      const parts = await perHome<Record<string, Profile | null>>(users, (us) => c.social.profiles(viewer, us), async (peer, us) => {
        const v = await remote(peer, { t: 'profiles', viewer, users: us });
        if (typeof v !== 'object' || v === null) throw new Error('malformed profiles reply');
        return Object.fromEntries(us.map((u) => [u, Object.hasOwn(v, u) ? (v as Record<string, Profile | null>)[u]! : null]));
      });
      const out: Record<string, Profile | null> = Object.create(null);
      for (const p of parts) for (const u of Object.keys(p)) out[u] = p[u]!;
      return out;
    },

    async info(viewer, users) {
      const parts = await perHome<Record<string, ContactInfo>>(users, (us) => c.social.info(viewer, us), async (peer, us) => {
        const v = await remote(peer, { t: 'cinfo', viewer, users: us });
        if (typeof v !== 'object' || v === null) throw new Error('malformed cinfo reply');
        return Object.fromEntries(us.flatMap((u) => (Object.hasOwn(v, u) ? [[u, (v as Record<string, ContactInfo>)[u]!]] : [])));
      });
      const out: Record<string, ContactInfo> = Object.create(null);
      for (const p of parts) for (const u of Object.keys(p)) out[u] = p[u]!;
      return out;
    },

    // A call like any other on the recipient's home: retried through ring changes and moves.
    async admitAt(to, from, kind) {
      const x = await call<Refusal | null | undefined>(to, { fn: 'admit', user: to, from, kind }, () => c.social.admit(to, from, kind));
      return x ?? undefined;
    },

    async revokeEverywhere(users) {
      if (!c.joined()) return;
      await Promise.all(c.ring().members.filter((m) => m !== self).map(async (m) => {
        const peer = c.peerOf(m);
        if (peer) await remote(peer, { t: 'revoke', users }, 2000);
      }));
    },

    async presence(users, viewer) {
      const parts = await perHome<Record<string, UserPresence>>(users, (us) => local.presence(us, viewer), async (peer, us) => {
        const v = await remote(peer, { t: 'presence', users: us, ...(viewer !== undefined ? { viewer } : {}) });
        if (typeof v !== 'object' || v === null) throw new Error('malformed presence reply');
        // Own properties only: a user may be called constructor or __proto__.
        return Object.fromEntries(us.map((u) => [u, Object.hasOwn(v, u) ? (v as Record<string, UserPresence>)[u]! : { online: false }]));
      });
      const out: Record<string, UserPresence> = Object.create(null);
      for (const u of users) for (const p of parts) if (Object.hasOwn(p, u)) out[u] = p[u]!;
      return out;
    },

    async watch(w: Watcher, users: string[]) {
      await perHome(users, (us) => local.watch(w, us), async (peer, us) => void (await remote(peer, { t: 'watch', watcher: w, users: us, on: true })));
    },
    async unwatch(w: Watcher, users: string[]) {
      await perHome(users, (us) => local.unwatch(w, us), async (peer, us) => void (await remote(peer, { t: 'watch', watcher: w, users: us, on: false })));
    },

    deliverRemote(d) {
      return new Promise((resolve, reject) => route({ d, deadline: Date.now() + deadlineMs, resolve, reject }));
    },

    async handle(fromName, req) {
      const ownGateway = (gw: string) => gw === fromName;
      switch (req.t) {
        case 'call':
          return serveCall(fromName, req);
        case 'deliver': {
          const mine = req.items.map((d) => owned(d.user));
          await local.deliver(req.items.filter((_, i) => mine[i]));
          return done(mine.map((m) => (m ? 'ok' : 'not_owner')));
        }
        case 'fanout':
          return done(await local.deliverFan(req.items));
        case 'relay':
          local.relay(req.users, req.frame);
          return done();
        case 'readmarks':
          return done(await local.readMarks(req.conv, req.users));
        case 'presence':
          return done(await local.presence(req.users.filter(isId), req.viewer));
        case 'cinfo':
          return done(await c.social.info(req.viewer, req.users.filter(owned)));
        case 'profiles':
          return done(await c.social.profiles(req.viewer, req.users.filter(owned)));
        case 'revoke':
          c.social.revoke(req.users);
          return done();
        case 'watch':
          if (!ownGateway(req.watcher.gateway)) return fail('bad_request', 'a watcher must belong to the calling gateway');
          await (req.on ? local.watch(req.watcher, req.users) : local.unwatch(req.watcher, req.users));
          return done();
        case 'register': {
          const ok: SessionRef[] = req.sessions.filter((s) => ownGateway(s.gateway) && owned(s.user));
          local.register(ok);
          return done(ok.length);
        }
        case 'renew':
          if (!ownGateway(req.gateway)) return fail('bad_request', 'a gateway renews only its own sessions');
          return done(local.renew(req.gateway, req.conns));
        default:
          return fail('bad_request', `unexpected request '${req.t}'`);
      }
    },
  };
}
