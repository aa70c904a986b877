// The gateway role: client WebSocket connections, login, limits and timeouts, frame validation,
// dispatch to the homes, and in-order delivery of pushed entries with replay on login.
import type { WebSocket, RawData } from 'ws';
import type { Logger } from 'pino';
import { FrameError, parseRequest } from '../protocol/frames.ts';
import type { ErrorCode, MsgEvent, ReqId, Request, ServerFrame } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import type { Auth } from './auth.ts';
import { AuthError } from './auth.ts';
import type { Config } from '../node/config.ts';
import type { Homes } from '../home/home.ts';
import type { Router } from '../cluster/router.ts';
import { Lane } from './lane.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import type { ClientError } from '../protocol/errors.ts';
import type { Metrics } from '../node/metrics.ts';

// WebSocket close codes this node uses (documented in docs/PROTOCOL.md, "Close codes").
export const CLOSE = {
  loginTimeout: 4001, idle: 4002, slow: 4003, replaced: 4004, shutdown: 1001,
} as const;

const REPLAY_PAGE = 500;
const MAX_HELD = 256;
const MAX_REPLAY_BUFFER = 10_000;

type ClientConn = {
  id: string;
  ws: WebSocket;
  opened: number;
  last: number;
  session?: SessionRef;
  loggingIn: boolean;
  held: string[];
  replaying: boolean;
  overflow: boolean;
  buffer: MsgEvent[];
  pushed: number;
  /** Frames of any kind (docs/PROTOCOL.md, section 8). */
  frames: TokenBucket;
  closed: boolean;
  watching: Set<string>;
  /** Logged in with roster: the friends and followed users whose presence it receives. */
  roster: Set<string> | undefined;
  corked: boolean;
  /** Keeps this connection's sends in order across retries and ring changes. */
  lane: Lane;
  /** Typing notices (a bucket of its own, TYPING_PER_S per second). */
  typing: TokenBucket;
  /** Requests being served now (bounded by config.maxInFlight). */
  inFlight: number;
  /** Since when this connection has been over its rate limit without a pause of a second. */
  overSince: number | undefined;
  lastRefused: number;
  /** When the last rate_limited error went out (at most one a second). */
  lastLimitError: number;
};

/** A connection over its rate limit this long, without a second's pause, is closed (1008). */
const RATE_CLOSE_MS = 10_000;
const UNWATCH_PAGE = 1000;
const UNWATCH_TRIES = 5;

/** Typing notices per connection: a burst of TYPING_BURST, then TYPING_PER_S per second. */
const TYPING_BURST = 5;
const TYPING_PER_S = 2;

export type Gateway = {
  accept(ws: WebSocket): void;
  push(conn: string, frame: ServerFrame): void;
  sweep(): void;
  /** goaway to every client, then close; resolves when all have closed or after `graceMs`. */
  shutdown(nodes: string[], graceMs: number): Promise<void>;
  /** goaway `reason` to every client (they should reconnect to one of `nodes`), then close 1013. */
  goaway(reason: string, nodes: string[]): number;
  size(): number;
  /** The logged-in sessions this gateway holds (for renewing and re-registering with homes). */
  sessions(): SessionRef[];
  /** What each connection watches (to watch again at new homes after a ring change). */
  watches(): { conn: string; user: string; users: string[] }[];
};

export type GatewayComponents = {
  name: string;
  config: Config;
  homes: Homes;
  auth: Auth;
  metrics: Metrics;
  log: Logger;
  now: () => number;
  /** Client URLs of the other live nodes (for goaway full). */
  others?: () => string[];
  /** Set while the node must not take clients (cut off from the majority): the goaway to send. */
  turnAway?: () => { reason: string; nodes: string[] } | undefined;
  /** Profiles, contacts and status on the users' homes (section 13). */
  social: Pick<Router, 'socialOp' | 'contacts' | 'profiles'>;
};

const ROSTER_PAGE = 500;

export function createGateway(c: GatewayComponents): Gateway {
  const { config, homes, metrics, log } = c;
  const conns = new Map<string, ClientConn>();
  let nextId = 0;
  const limits = { maxBody: config.maxBody, maxUsers: config.maxUsers, maxMembers: config.maxMembers, maxProfileFields: config.maxProfileFields };

  function send(cc: ClientConn, frame: ServerFrame, written?: () => void): void {
    if (cc.closed || cc.ws.readyState !== cc.ws.OPEN) return;
    if (cc.ws.bufferedAmount > config.maxBuffered) {
      metrics.slowClients.inc();
      log.warn({ conn: cc.id, user: cc.session?.user, buffered: cc.ws.bufferedAmount }, 'client too slow, closing');
      close(cc, CLOSE.slow, 'too slow');
      return;
    }
    // Frames sent in one synchronous stretch (a commit's pushes, a replay page) leave in one
    // write: without this, every frame is a writev syscall, the node's largest CPU cost.
    const sock = (cc.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (sock && !cc.corked) {
      cc.corked = true;
      sock.cork();
      process.nextTick(() => {
        cc.corked = false;
        sock.uncork();
      });
    }
    cc.ws.send(JSON.stringify(frame), written);
    metrics.framesOut.inc();
  }

  function error(cc: ClientConn, id: ReqId | null | undefined, code: ErrorCode, message: string): void {
    metrics.errors.inc({ code });
    send(cc, { op: 'error', id: id ?? null, code, message });
  }

  function close(cc: ClientConn, code: number, reason: string): void {
    if (cc.closed) return;
    try {
      cc.ws.close(code, reason);
    } catch {
      cc.ws.terminate();
    }
    closed(cc);
  }

  function closed(cc: ClientConn): void {
    if (cc.closed) return;
    cc.closed = true;
    cc.lane.shut();
    conns.delete(cc.id);
    metrics.connections.dec();
    if (cc.session) {
      metrics.sessions.dec();
      homes.logout(cc.session).catch((e) => log.warn({ err: e, conn: cc.id }, 'logout not delivered; the home expires it'));
    }
    const watched = new Set([...cc.watching, ...(cc.roster ?? [])]);
    if (watched.size) void unwatchAll(cc.id, [...watched]);
  }

  /** A closed connection's watches end on every home: tried again a few times, since a watch
   * left on a remote home would push to a connection that is gone until that gateway dies. */
  async function unwatchAll(conn: string, users: string[]): Promise<void> {
    for (let i = 0; i < users.length; i += UNWATCH_PAGE) {
      const part = users.slice(i, i + UNWATCH_PAGE);
      for (let attempt = 1; ; attempt++) {
        try {
          await homes.unwatch({ gateway: c.name, conn }, part);
          break;
        } catch (e) {
          if (attempt >= UNWATCH_TRIES) {
            log.warn({ conn, users: part.length, err: (e as Error).message }, 'watches of a closed connection not removed on every home');
            break;
          }
          await new Promise((r) => setTimeout(r, 1000 * attempt));
        }
      }
    }
  }

  /** A frame over the rate limit: dropped; one error a second at most; closed 1008 when the
   * connection stays over its limit (no second without a refused frame) for RATE_CLOSE_MS. */
  function refuse(cc: ClientConn, wait: number): void {
    const t = c.now();
    metrics.limits.inc({ limit: 'rate' });
    if (cc.overSince === undefined || t - cc.lastRefused > 1000) cc.overSince = t;
    cc.lastRefused = t;
    if (t - cc.overSince >= RATE_CLOSE_MS) {
      metrics.limits.inc({ limit: 'rate_close' });
      log.warn({ conn: cc.id, user: cc.session?.user }, 'client over its rate limit for 10 s, closing');
      close(cc, 1008, 'rate limit');
      return;
    }
    if (t - cc.lastLimitError < 1000) return;
    cc.lastLimitError = t;
    error(cc, null, 'rate_limited', `over ${config.rate} frames/s; frames are dropped; retry in ${wait} ms`);
  }

  async function replay(cc: ClientConn, since: number): Promise<void> {
    const user = cc.session!.user;
    let after = since;
    for (;;) {
      for (;;) {
        const page = await homes.sync(user, after, REPLAY_PAGE);
        if (cc.closed) return;
        // The last frame of a page is awaited until written, so a long replay cannot pile up memory.
        const written = new Promise<void>((ok) => {
          page.msgs.forEach((m, i) => send(cc, { op: 'msg', ...m }, i === page.msgs.length - 1 ? () => ok() : undefined));
          if (page.msgs.length === 0 || cc.closed) ok();
        });
        if (page.msgs.length) after = page.msgs[page.msgs.length - 1]!.seq;
        if (!page.more) break;
        await written;
      }
      if (!cc.overflow) break;
      cc.overflow = false; // pushes were dropped while replaying: read the timeline again
    }
    cc.pushed = Math.max(cc.pushed, after);
    cc.replaying = false;
    const buffered = cc.buffer;
    cc.buffer = [];
    for (const m of buffered) deliverMsg(cc, m);
  }

  function deliverMsg(cc: ClientConn, m: MsgEvent): void {
    if (cc.replaying) {
      if (cc.buffer.length >= MAX_REPLAY_BUFFER) {
        cc.buffer = [];
        cc.overflow = true;
      }
      if (!cc.overflow) cc.buffer.push(m);
      return;
    }
    if (m.seq <= cc.pushed) return;
    cc.pushed = m.seq;
    metrics.messagesOut.inc();
    send(cc, m);
  }

  async function login(cc: ClientConn, req: Extract<Request, { op: 'login' }>): Promise<void> {
    let user: string;
    try {
      user = await c.auth.verify(req);
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      error(cc, req.id, 'unauthenticated', e.message);
      return;
    }
    if (cc.closed) return;
    const device = req.device ?? 'default';
    const session: SessionRef = { user, device, gateway: c.name, conn: cc.id };
    // Pushes may arrive before the home's answer: from here on they are buffered for the replay.
    cc.session = session;
    cc.replaying = true;
    metrics.sessions.inc();
    let seq: number;
    let acked: number;
    try {
      ({ seq, acked } = await homes.login(session));
    } catch (e) {
      cc.session = undefined;
      cc.replaying = false;
      cc.buffer = [];
      metrics.sessions.dec();
      throw e;
    }
    if (cc.closed) return;
    log.debug({ conn: cc.id, user, device }, 'login');
    send(cc, { op: 'welcome', ...(req.id !== undefined ? { id: req.id } : {}), user, device, node: c.name, seq, acked });
    // A since or cursor past the newest entry would make live pushes up to it look old: clamp.
    const since = Math.min(req.since ?? acked, seq);
    void (req.roster ? roster(cc) : Promise.resolve()).then(() => replay(cc, since)).catch((e) => {
      log.error({ err: e, conn: cc.id }, 'replay failed');
      close(cc, 1011, 'replay failed');
    });
  }

  /** The roster, before the replay: the contacts in pages, and from then on the presence of
   * friends and followed users without a watch (section 13). Contact events keep it current. */
  async function roster(cc: ClientConn): Promise<void> {
    const user = cc.session!.user;
    cc.roster = new Set();
    let after: string | undefined;
    for (;;) {
      const page = await c.social.contacts(user, after, ROSTER_PAGE);
      if (cc.closed) return;
      // Watched before the page goes out, so that only a change between the read of the page and
      // the watch can be missed (a moment), not one while the rest of the roster is read.
      const fresh = page.contacts.filter((k) => (k.state === 'friend' || k.following) && !cc.roster!.has(k.user)).map((k) => k.user);
      for (const u of fresh) cc.roster.add(u);
      if (fresh.length) await homes.watch(watcherOf(cc), fresh);
      if (cc.closed) return;
      send(cc, { op: 'roster', contacts: page.contacts, more: page.more });
      if (!page.more || page.next === undefined) break;
      after = page.next;
    }
  }
  const watcherOf = (cc: ClientConn) => ({ gateway: c.name, conn: cc.id, user: cc.session!.user });

  /** A contact event for a roster session: its friend or follow may have begun or ended. */
  function rosterChange(cc: ClientConn, k: { user: string; state: string; following: boolean }): void {
    if (!cc.roster || !cc.session) return;
    const want = k.state === 'friend' || k.following;
    if (want === cc.roster.has(k.user)) return;
    if (want) cc.roster.add(k.user);
    else cc.roster.delete(k.user);
    if (cc.watching.has(k.user)) return; // an explicit watch holds it either way
    const w = watcherOf(cc);
    (want ? homes.watch(w, [k.user]) : homes.unwatch(w, [k.user]))
      .catch((e: Error) => log.info({ conn: cc.id, user: k.user, err: e.message }, 'roster watch not changed'));
  }

  const ok = (cc: ClientConn, id: ReqId | undefined) => {
    if (id !== undefined) send(cc, { op: 'ok', id });
  };

  async function dispatch(cc: ClientConn, req: Request): Promise<void> {
    const id = req.id;
    if (req.op === 'ping') return send(cc, { op: 'pong', ...(id !== undefined ? { id } : {}), ts: c.now() });
    if (req.op === 'login') {
      if (cc.session) return error(cc, id, 'bad_request', 'already logged in on this connection');
      cc.loggingIn = true;
      try {
        await login(cc, req);
      } finally {
        cc.loggingIn = false;
        const held = cc.held;
        cc.held = [];
        for (const text of held) onText(cc, text);
      }
      return;
    }
    const s = cc.session;
    if (!s) return error(cc, id, 'unauthenticated', 'log in first');
    const withId = id !== undefined ? { id } : {};
    switch (req.op) {
      case 'send': {
        const r = req.group !== undefined
          ? await homes.sendGroup(s.user, req.group, req.cid, req.body, cc.lane)
          : await homes.send(s.user, req.to!, req.cid, req.body, cc.lane);
        return send(cc, { op: 'sent', ...withId, ...r });
      }
      case 'group_create':
      case 'group_add':
      case 'group_remove':
        await homes.group(s.user, req.op.slice(6) as 'create' | 'add' | 'remove', req.group, req.members);
        return ok(cc, id);
      case 'group_leave':
        await homes.group(s.user, 'leave', req.group, []);
        return ok(cc, id);
      case 'group_info': {
        const g = (await homes.group(s.user, 'info', req.group, []))!;
        return send(cc, { op: 'group', ...withId, group: g.group, owner: g.owner, members: g.members, joined: g.joined });
      }
      case 'typing': {
        const wait = cc.typing.take(1, c.now());
        if (wait > 0) {
          // Typing is sent on keystrokes, mostly without an id: those are dropped without a word.
          if (id === undefined) return;
          return error(cc, id, 'rate_limited', `over ${TYPING_PER_S} typing notices/s; retry in ${wait} ms`);
        }
        try {
          await homes.typing(s.user, req.group !== undefined ? { group: req.group } : { to: req.to! });
        } catch (e) {
          // The group's typing budget: a keystroke notice without an id is dropped without a word too.
          if (id === undefined && (e as ClientError).code === 'rate_limited') return;
          throw e;
        }
        return ok(cc, id);
      }
      case 'receipts':
        return send(cc, { op: 'receipts', ...withId, conv: req.conv, read: await homes.receipts(s.user, req.conv) });
      case 'ack':
        await homes.ack(s.user, s.device, req.seq);
        return ok(cc, id);
      case 'sync':
        return send(cc, { op: 'msgs', ...withId, ...(await homes.sync(s.user, req.after, req.limit)) });
      case 'history':
        return send(cc, { op: 'msgs', ...withId, ...(await homes.history(s.user, req.conv, req.before, req.limit)) });
      case 'read':
        await homes.read(s, req.conv, req.seq);
        return ok(cc, id);
      case 'unread':
        return send(cc, { op: 'unread', ...withId, ...(await homes.unread(s.user)) });
      case 'presence':
        return send(cc, { op: 'presence', ...withId, users: await homes.presence(req.users, s.user) });
      case 'watch': {
        const more = new Set(req.users.filter((u) => !cc.watching.has(u))).size;
        if (cc.watching.size + more > config.maxWatched) {
          metrics.limits.inc({ limit: 'watched' });
          return error(cc, id, 'too_large', `a connection watches at most ${config.maxWatched} users (${cc.watching.size} now); unwatch some first`);
        }
        for (const u of req.users) cc.watching.add(u);
        await homes.watch(watcherOf(cc), req.users);
        return ok(cc, id);
      }
      case 'unwatch': {
        for (const u of req.users) cc.watching.delete(u);
        // The roster's own watches stay.
        const gone = req.users.filter((u) => !cc.roster?.has(u));
        if (gone.length) await homes.unwatch(watcherOf(cc), gone);
        return ok(cc, id);
      }
      case 'profiles':
        return send(cc, { op: 'profiles', ...withId, users: await c.social.profiles(s.user, req.users) });
      case 'contacts':
        return send(cc, { op: 'contacts', ...withId, ...(await c.social.contacts(s.user, req.after, req.limit)) });
      case 'profile_set':
      case 'status':
      case 'privacy':
      case 'contact_lists':
      case 'contact_request':
      case 'contact_accept':
      case 'contact_decline':
      case 'contact_remove':
      case 'follow':
      case 'unfollow':
      case 'block':
      case 'unblock':
        await c.social.socialOp(s.user, req);
        return ok(cc, id);
      default:
        return error(cc, id, 'bad_request', `op '${(req as Request).op}' is not supported by this version`);
    }
  }

  function onText(cc: ClientConn, text: string): void {
    if (cc.loggingIn) {
      if (cc.held.length >= MAX_HELD) return error(cc, null, 'rate_limited', 'too many frames before login completed');
      cc.held.push(text);
      return;
    }
    let req: Request;
    try {
      req = parseRequest(text, limits);
    } catch (e) {
      if (e instanceof FrameError) return error(cc, e.id, e.code, e.message);
      log.error({ err: e, conn: cc.id }, 'frame validation failed');
      return error(cc, null, 'internal', 'internal error; it is logged on the node');
    }
    metrics.framesIn.inc({ op: req.op });
    if (cc.inFlight >= config.maxInFlight) {
      metrics.limits.inc({ limit: 'in_flight' });
      return error(cc, req.id, 'rate_limited', `${config.maxInFlight} requests of this connection are still being served; retry once one is answered`);
    }
    cc.inFlight++;
    dispatch(cc, req).finally(() => cc.inFlight--).catch((e: unknown) => {
      const name = (e as Error)?.name;
      if (name === 'ForbiddenError') return error(cc, req.id, 'forbidden', (e as Error).message);
      if (name === 'ClientError') return error(cc, req.id, (e as ClientError).code, (e as Error).message);
      if (name === 'UnavailableError') return error(cc, req.id, 'unavailable', `${(e as Error).message}; retrying (with the same cid) is safe`);
      if (name === 'LaneClosedError') return; // the connection is gone: nobody to answer
      log.error({ err: e, conn: cc.id, op: req.op }, 'request failed');
      error(cc, req.id, 'internal', 'internal error; it is logged on the node');
    });
  }

  return {
    accept(ws) {
      const t = c.now();
      const away = c.turnAway?.();
      const full = conns.size >= config.maxConnections;
      if (away || full) {
        if (full) metrics.limits.inc({ limit: 'connections' });
        ws.on('error', () => undefined);
        try {
          ws.send(JSON.stringify(away ? { op: 'goaway', ...away } : { op: 'goaway', reason: 'full', nodes: c.others?.() ?? [] }));
          ws.close(1013, away ? away.reason : 'full');
        } catch {
          ws.terminate();
        }
        return;
      }
      const cc: ClientConn = {
        id: `c${++nextId}`, ws, opened: t, last: t, loggingIn: false, held: [], replaying: false,
        overflow: false, buffer: [], pushed: 0, frames: new TokenBucket(config.rate, config.rateBurst, t), closed: false, watching: new Set(), roster: undefined, corked: false,
        lane: new Lane(), typing: new TokenBucket(TYPING_PER_S, TYPING_BURST, t),
        inFlight: 0, overSince: undefined, lastRefused: 0, lastLimitError: 0,
      };
      conns.set(cc.id, cc);
      metrics.connections.inc();
      ws.on('message', (data: RawData, isBinary: boolean) => {
        cc.last = c.now();
        if (cc.closed) return;
        // Every frame counts, valid or not (docs/PROTOCOL.md, section 8).
        const wait = cc.frames.take(1, c.now());
        if (wait > 0) return refuse(cc, wait);
        if (isBinary) return error(cc, null, 'bad_request', 'binary frames are not supported; send JSON text');
        onText(cc, data.toString());
      });
      ws.on('close', () => closed(cc));
      ws.on('error', (e) => {
        log.debug({ err: e, conn: cc.id }, 'client socket error');
        closed(cc);
      });
    },

    push(conn, frame) {
      const cc = conns.get(conn);
      if (!cc) return;
      if (frame.op === 'msg') return deliverMsg(cc, frame);
      if (frame.op === 'contact') rosterChange(cc, frame);
      send(cc, frame);
      if (frame.op === 'goaway') close(cc, frame.reason === 'replaced' ? CLOSE.replaced : CLOSE.shutdown, frame.reason);
    },

    sweep() {
      const t = c.now();
      for (const cc of conns.values()) {
        if (!cc.session && !cc.loggingIn && t - cc.opened > config.loginTimeoutMs) close(cc, CLOSE.loginTimeout, 'login timeout');
        else if (t - cc.last > config.idleTimeoutMs) close(cc, CLOSE.idle, 'idle timeout');
      }
    },

    async shutdown(nodes, graceMs) {
      const gone: Promise<unknown>[] = [];
      for (const cc of [...conns.values()]) {
        if (cc.ws.readyState === cc.ws.OPEN) gone.push(new Promise((ok) => cc.ws.once('close', ok)));
        send(cc, { op: 'goaway', reason: 'shutdown', nodes });
        close(cc, CLOSE.shutdown, 'shutdown');
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(gone), new Promise((ok) => (timer = setTimeout(ok, graceMs)))]);
      clearTimeout(timer);
    },

    goaway(reason, nodes) {
      let n = 0;
      for (const cc of [...conns.values()]) {
        send(cc, { op: 'goaway', reason, nodes });
        close(cc, 1013, reason);
        n++;
      }
      return n;
    },

    size: () => conns.size,
    sessions: () => [...conns.values()].flatMap((cc) => (cc.session && !cc.closed ? [cc.session] : [])),
    watches: () => [...conns.values()].flatMap((cc) => {
      const users = new Set([...cc.watching, ...(cc.roster ?? [])]);
      return users.size && !cc.closed && cc.session ? [{ conn: cc.id, user: cc.session.user, users: [...users] }] : [];
    }),
  };
}
