// A session that stays alive across a churning cluster, for browsers and Node alike. It keeps
// one logged-in connection to some node of a list and, when that node says goaway or the
// connection drops, connects to another with jittered backoff and carries on:
// - replay: it logs in again with `since` = the last seq it delivered without a gap, so the node
//   pushes exactly what was missed;
// - resend: every send not yet confirmed goes again with its cid, in the order it was sent (the
//   node answers a send it already stored with the original seq and `dup: true`);
// - gap repair: pushes are delivered in seq order with no gap and no repeat; when a pushed seq
//   skips, the missing entries are fetched with `sync`;
// - acks: delivered seqs are acknowledged in batches, so a reconnect resumes where it left off;
// - watches are renewed on the new connection.
// Every buffer the node can grow is bounded (out-of-order pushes, queued requests, the outbox).
import { Emitter } from './emitter.ts';
import { Connection, ConnectionClosedError, ImError } from './connection.ts';
import type { Out, Reply, WebSocketCtor } from './connection.ts';
import type {
  Entry, GoawayEvent, GroupReply, MsgsReply, OkReply, PresenceEvent, PresenceReply, ReadEvent, ReceiptEvent, ReceiptsReply,
  SentReply, ServerFrame, TypingEvent, UnreadReply, WelcomeReply,
} from '../protocol/frames.ts';

export type SessionState =
  /** first connection being opened or logged in */
  | 'connecting'
  /** logged in; the node is pushing what was missed (up to `welcome.seq`) */
  | 'replaying'
  /** logged in and caught up: pushes are live */
  | 'live'
  /** the connection went; waiting (backoff) or connecting to another node */
  | 'reconnecting'
  /** stopped for good: close() was called, the login was refused, or another login replaced it */
  | 'closed';

export type StateInfo = {
  state: SessionState;
  /** The node's URL (while connected) and name (once logged in). */
  url?: string;
  node?: string;
  /** Failed connection attempts since the last login. */
  attempt: number;
  /** When state is 'reconnecting' or 'closed': why. */
  reason?: string;
  /** While replaying: the seq the replay runs to. */
  replayTo?: number;
};

export type SendTarget = { to: string } | { group: string };

export type PendingSend = {
  cid: string;
  to?: string;
  group?: string;
  body: string;
  /** queued: not sent yet; sending: on the wire; resending: being sent again after a lost
   * connection or a retryable refusal; sent: confirmed; failed: refused for good. */
  state: 'queued' | 'sending' | 'resending' | 'sent' | 'failed';
  attempts: number;
  /** The `sent` reply once confirmed (`dup: true` when a resend found it already stored). */
  sent?: SentReply;
  error?: ImError;
};

export type SessionEvents = {
  state: [StateInfo];
  welcome: [WelcomeReply];
  /** A timeline entry, in seq order with no gap and no repeat across reconnects. */
  message: [Entry];
  presence: [PresenceEvent];
  typing: [TypingEvent];
  receipt: [ReceiptEvent];
  /** Another device of this user read a conversation up to a seq. */
  read: [ReadEvent];
  goaway: [GoawayEvent];
  /** A send changed state (queued, resending, sent, failed). */
  send: [PendingSend];
  /** Something the app may want to log: a failed connection attempt, a refused login. */
  error: [Error];
  /** Any other frame pushed by the node (events added by newer nodes). */
  event: [ServerFrame];
};

export type SessionOptions = {
  /** Client URLs of any nodes (ws://host:port/ws); the session learns more from goaway frames. */
  urls: string[];
  /** A login token, or a function that returns a fresh one for each login. */
  token?: string | (() => string | Promise<string>);
  /** The user id, for a node in insecure (development) mode, which takes logins without a token. */
  user?: string;
  /** The device id (default `default`); one session per device. */
  device?: string;
  /** Where the first replay starts: a seq, 'acked' (the device's acked cursor, the default), or
   * 'latest' (nothing old: only entries after login). Later logins continue from the last seq delivered. */
  since?: number | 'acked' | 'latest';
  /** Acknowledge delivered seqs automatically (default true), batched over ackDelayMs (default 200). */
  autoAck?: boolean;
  ackDelayMs?: number;
  /** Sends on the wire at once (default 32; the node serves at most 64 requests of a connection). */
  window?: number;
  /** Sends waiting at most (default 10,000): more are refused at once with rate_limited. */
  maxOutbox?: number;
  /** Reconnect backoff: full jitter between 0 and min(max, min * 2^attempt) (default 100 ms, 5 s). */
  backoffMs?: { min: number; max: number };
  connectTimeoutMs?: number;
  /** A request with no reply for this long drops the connection (default 20 s). */
  requestTimeoutMs?: number;
  /** A ping when nothing was sent for this long (default 20 s; the node closes idle connections at 60 s). */
  pingEveryMs?: number;
  /** Out-of-order pushes kept while a gap is repaired (default 5,000). */
  maxAhead?: number;
  /** Which URL the first connection tries: a random one (default, spreads clients over the
   * nodes), or the first of `urls` (a page served by a node may prefer that node). */
  start?: 'random' | 'first';
  /** The WebSocket constructor (default the global one: browsers and Node 22+). */
  WebSocket?: WebSocketCtor;
  /** Randomness for backoff and cids (tests pass a seeded one). */
  random?: () => number;
};

/** Errors that mean "try again, maybe elsewhere": the send keeps its cid and goes again. */
const RETRYABLE = new Set(['unavailable', 'rate_limited']);
const LATEST = Number.MAX_SAFE_INTEGER; // a since past the newest seq: the node replays nothing
const MAX_QUEUED_REQUESTS = 1000;

type Queued = { frame: Out; resolve(r: Reply): void; reject(e: Error): void; retry: boolean };
type OutItem = { p: PendingSend; resolve(r: SentReply): void; reject(e: Error): void; onWire: boolean; retryAt: number };

export class ImSession extends Emitter<SessionEvents> {
  readonly opts: Required<Omit<SessionOptions, 'token' | 'user' | 'WebSocket'>> & Pick<SessionOptions, 'token' | 'user' | 'WebSocket'>;
  #urls: string[];
  #conn: Connection | undefined;
  #info: StateInfo = { state: 'connecting', attempt: 0 };
  #welcome: WelcomeReply | undefined;
  /** The last seq delivered to the app with nothing missing below it (undefined before the first login). */
  #seq: number | undefined;
  #ahead = new Map<number, Entry>();
  #repairing = false;
  #acked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #outbox: OutItem[] = [];
  /** The connection being logged in, and the pushes it delivered before its welcome was handled. */
  #loggingIn: Connection | undefined;
  #early: Entry[] = [];
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #queued: Queued[] = [];
  #watched = new Set<string>();
  #cidCounter = 0;
  #cidPrefix: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastSent = 0;
  #urlIndex: number;
  #preferred: string[] = [];
  #stopped = false;
  #ready: Promise<void>;
  #readyResolve!: () => void;
  #readyReject!: (e: Error) => void;

  constructor(opts: SessionOptions) {
    super();
    if (!opts.urls.length) throw new Error('ImSession needs at least one node URL');
    if (!opts.token && !opts.user) throw new Error('ImSession needs a token, or a user for a node in insecure mode');
    this.opts = {
      device: 'default', since: 'acked', autoAck: true, ackDelayMs: 200, window: 32, maxOutbox: 10_000,
      backoffMs: { min: 100, max: 5000 }, connectTimeoutMs: 5000, requestTimeoutMs: 20_000, pingEveryMs: 20_000, maxAhead: 5000,
      random: Math.random, start: 'random', ...opts,
    };
    this.#urls = [...new Set(opts.urls)];
    // #nextUrl steps before it reads: start one before the URL wanted first.
    const first = this.opts.start === 'first' ? 0 : Math.floor(this.opts.random() * this.#urls.length);
    this.#urlIndex = (first + this.#urls.length - 1) % this.#urls.length;
    this.#cidPrefix = `${this.opts.device.slice(0, 16)}-${Date.now().toString(36)}${Math.floor(this.opts.random() * 36 ** 4).toString(36)}`;
    this.#ready = new Promise((ok, ko) => {
      this.#readyResolve = ok;
      this.#readyReject = ko;
    });
    this.#ready.catch(() => undefined); // nobody may be waiting for it
    queueMicrotask(() => void this.#run());
  }

  // ---------------------------------------------------------------- state

  get state(): StateInfo {
    return { ...this.#info };
  }
  /** The welcome of the current login (user, device, node, seq, acked). */
  get welcome(): WelcomeReply | undefined {
    return this.#welcome;
  }
  /** The last seq delivered in order: everything up to it has been emitted as 'message'. */
  get seq(): number {
    return this.#seq ?? 0;
  }
  /** Sends not yet confirmed, in the order they were made. */
  get pending(): PendingSend[] {
    return this.#outbox.map((o) => ({ ...o.p }));
  }
  /** The node URLs the session knows. */
  get urls(): string[] {
    return [...this.#urls];
  }

  /** Adds node URLs (for example from a node's GET /nodes): a reconnect may pick any of them. */
  addUrls(urls: string[]): void {
    for (const u of urls) if (!this.#urls.includes(u)) this.#urls.push(u);
  }

  /** Resolves once logged in and caught up (state 'live'); rejects if the session closes first. */
  ready(): Promise<void> {
    if (this.#info.state === 'closed') return Promise.reject(new Error(`session closed: ${this.#info.reason ?? ''}`));
    return this.#ready;
  }

  #setState(s: Partial<StateInfo> & { state: SessionState }): void {
    this.#info = { attempt: this.#info.attempt, ...s };
    if (s.state === 'live') this.#readyResolve();
    this.emit('state', this.state);
  }

  // ---------------------------------------------------------------- connecting

  #nextUrl(): string {
    const p = this.#preferred.shift();
    if (p) return p;
    this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
    return this.#urls[this.#urlIndex]!;
  }

  #backoff(attempt: number): number {
    const { min, max } = this.opts.backoffMs;
    return Math.floor(this.opts.random() * Math.min(max, min * 2 ** Math.min(attempt, 16)));
  }

  async #token(): Promise<{ token?: string; user?: string }> {
    const t = this.opts.token;
    if (t === undefined) return { user: this.opts.user! };
    return { token: typeof t === 'function' ? await t() : t };
  }

  /** Connects and logs in, again and again, until closed. */
  async #run(): Promise<void> {
    let delay = 0;
    while (!this.#stopped) {
      if (delay) await new Promise((r) => (this.#timer = setTimeout(r, delay)));
      if (this.#stopped) return;
      const url = this.#nextUrl();
      const attempt = this.#info.attempt;
      this.#setState({ state: this.#welcome ? 'reconnecting' : 'connecting', url, attempt, reason: this.#info.reason });
      let conn: Connection | undefined;
      try {
        conn = await Connection.connect(url, { WebSocket: this.opts.WebSocket, timeoutMs: this.opts.connectTimeoutMs });
        if (this.#stopped) return conn.close();
        const closed = new Promise<{ code: number; reason: string }>((r) => conn!.once('close', (code, reason) => r({ code, reason })));
        let goaway: GoawayEvent | undefined;
        conn.on('event', (f) => {
          if (f.op === 'goaway') goaway = f;
          this.#onEvent(conn!, f);
        });
        this.#loggingIn = conn;
        this.#early = [];
        const since = this.#seq ?? (this.opts.since === 'acked' ? undefined : this.opts.since === 'latest' ? LATEST : this.opts.since);
        const welcome = await conn.request<WelcomeReply>(
          { op: 'login', ...(await this.#token()), device: this.opts.device, ...(since !== undefined ? { since } : {}) },
          this.opts.requestTimeoutMs,
        );
        this.#onWelcome(conn, welcome, since);
        const end = await closed;
        this.#conn = undefined;
        this.#stopTimers();
        if (this.#stopped) return;
        if (goaway?.reason === 'replaced') return this.#close(`replaced by a newer login of device ${this.opts.device}`);
        this.#info.attempt = 0;
        this.#info.reason = goaway ? `goaway: ${goaway.reason}` : `connection closed (${end.code}${end.reason ? ` ${end.reason}` : ''})`;
        // A goaway names other nodes: go there at once; a dropped connection waits a little first.
        delay = goaway?.nodes?.length ? this.#backoff(0) : this.#backoff(1);
        this.#requeueAfterLoss();
      } catch (e) {
        conn?.abort();
        this.#conn = undefined;
        this.#stopTimers();
        if (this.#stopped) return;
        const err = e as Error;
        if (err instanceof ImError && (err.code === 'unauthenticated' || err.code === 'too_large' || err.code === 'bad_request')) {
          this.emit('error', err);
          return this.#close(`login refused: ${err.message}`);
        }
        this.emit('error', err);
        this.#info.attempt = attempt + 1;
        this.#info.reason = err.message;
        this.#requeueAfterLoss();
        delay = this.#backoff(this.#info.attempt);
      }
    }
  }

  #onWelcome(conn: Connection, w: WelcomeReply, since: number | undefined): void {
    this.#conn = conn;
    this.#loggingIn = undefined;
    this.#welcome = w;
    if (this.#seq === undefined) this.#seq = since === undefined ? w.acked : Math.min(since, w.seq);
    this.#acked = Math.max(this.#acked, w.acked);
    this.#info.attempt = 0;
    this.emit('welcome', w);
    if (this.#seq < w.seq) this.#setState({ state: 'replaying', url: conn.url, node: w.node, replayTo: w.seq });
    else this.#setState({ state: 'live', url: conn.url, node: w.node });
    this.#lastSent = Date.now();
    this.#armPing(conn);
    if (this.#watched.size) void this.#rewatch(conn);
    // Pushes that came in the same read as the welcome, before this ran.
    const early = this.#early;
    this.#early = [];
    for (const e of early) this.#onEntry(e);
    this.#flushQueued();
    this.#pump();
  }

  #onEvent(conn: Connection, f: ServerFrame): void {
    if (conn !== this.#conn) {
      // Pushes read together with the welcome can reach us before its reply is handled.
      if (conn === this.#loggingIn && f.op === 'msg' && this.#early.length < this.opts.maxAhead) {
        const { op: _op, ...entry } = f;
        this.#early.push(entry);
      }
      if (f.op !== 'goaway') return;
    }
    switch (f.op) {
      case 'msg': {
        const { op: _op, ...entry } = f;
        return this.#onEntry(entry);
      }
      case 'presence':
        if ('user' in f) this.emit('presence', f as PresenceEvent);
        return;
      case 'typing':
        return this.emit('typing', f);
      case 'receipt':
        return this.emit('receipt', f);
      case 'read':
        return this.emit('read', f);
      case 'goaway': {
        for (const u of f.nodes ?? []) if (!this.#urls.includes(u)) this.#urls.push(u);
        // Reconnect to a node the goaway names (any of them; the rest are tried after).
        const others = (f.nodes ?? []).filter((u) => u !== conn.url);
        this.#preferred = others.sort(() => this.opts.random() - 0.5);
        this.emit('goaway', f);
        return;
      }
      default:
        this.emit('event', f);
    }
  }

  // ---------------------------------------------------------------- delivery, gaps, acks

  #onEntry(e: Entry): void {
    if (this.#seq === undefined) {
      // A push raced ahead of the welcome: keep it until the cursor is known.
      if (this.#ahead.size < this.opts.maxAhead) this.#ahead.set(e.seq, e);
      return;
    }
    if (e.seq <= this.#seq) return;
    if (e.seq !== this.#seq + 1) {
      if (this.#ahead.size < this.opts.maxAhead) this.#ahead.set(e.seq, e);
      void this.#repair();
      return;
    }
    this.#deliver(e);
    this.#drainAhead();
  }

  #deliver(e: Entry): void {
    this.#seq = e.seq;
    this.emit('message', e);
    if (this.#info.state === 'replaying' && e.seq >= (this.#info.replayTo ?? 0)) {
      this.#setState({ state: 'live', url: this.#info.url, node: this.#info.node });
    }
    if (this.opts.autoAck) this.#scheduleAck();
  }

  #drainAhead(): void {
    for (const k of this.#ahead.keys()) if (k <= this.#seq!) this.#ahead.delete(k);
    for (let next = this.#ahead.get(this.#seq! + 1); next; next = this.#ahead.get(this.#seq! + 1)) {
      this.#ahead.delete(next.seq);
      this.#deliver(next);
    }
  }

  /** Fills a gap below the pushes held ahead with `sync`, page by page. */
  async #repair(): Promise<void> {
    if (this.#repairing) return;
    this.#repairing = true;
    try {
      while (this.#ahead.size && this.#conn && !this.#stopped) {
        const conn = this.#conn;
        const page = await conn.request<MsgsReply>({ op: 'sync', after: this.#seq!, limit: 1000 }, this.opts.requestTimeoutMs);
        if (conn !== this.#conn) break; // a new login replays from the cursor anyway
        for (const e of page.msgs) if (e.seq === this.#seq! + 1) this.#deliver(e);
        this.#drainAhead();
        if (!page.msgs.length && !page.more) {
          // Held pushes the timeline does not have yet (cannot happen with a well-behaved node):
          // drop them rather than loop; the next push or login brings them again.
          this.#ahead.clear();
        }
      }
    } catch {
      // the connection went: the next login replays from the cursor
    } finally {
      this.#repairing = false;
    }
  }

  #scheduleAck(): void {
    if (this.#ackTimer) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.ack();
    }, this.opts.ackDelayMs);
  }

  /** Acknowledges everything delivered so far (autoAck does this in batches). */
  ack(seq = this.#seq ?? 0): void {
    if (seq <= this.#acked || !this.#conn) return;
    if (this.#conn.post({ op: 'ack', seq })) {
      this.#acked = seq;
      this.#lastSent = Date.now();
    }
  }

  // ---------------------------------------------------------------- sending

  /** A fresh client message id, unique to this session. */
  newCid(): string {
    return `${this.#cidPrefix}-${(++this.#cidCounter).toString(36)}`;
  }

  /**
   * Sends a message; resolves once it is durable (the `sent` reply), across reconnects, resending
   * with the same cid. Rejects only for a refusal that a retry cannot change (bad_request,
   * forbidden, not_found, too_large) or when the session closes.
   */
  send(target: SendTarget, body: string, cid = this.newCid()): Promise<SentReply> {
    if (this.#info.state === 'closed') return Promise.reject(new Error('session closed'));
    if (this.#outbox.length >= this.opts.maxOutbox) {
      return Promise.reject(new ImError('rate_limited', `${this.#outbox.length} sends are waiting already`));
    }
    const p: PendingSend = { cid, ...target, body, state: 'queued', attempts: 0 };
    return new Promise<SentReply>((resolve, reject) => {
      this.#outbox.push({ p, resolve, reject, onWire: false, retryAt: 0 });
      this.emit('send', { ...p });
      this.#pump();
    });
  }
  sendTo(user: string, body: string, cid?: string): Promise<SentReply> {
    return this.send({ to: user }, body, cid);
  }
  sendGroup(group: string, body: string, cid?: string): Promise<SentReply> {
    return this.send({ group }, body, cid);
  }

  /** Puts sends in order on the wire: the earliest unconfirmed first, at most `window` at once. */
  #pump(): void {
    const conn = this.#conn;
    // A connection that is closing refuses at once: re-sending into it would spin (each refusal
    // pumping again) and starve the close event. The next welcome pumps.
    if (!conn || !conn.open || this.#stopped) return;
    let onWire = 0;
    for (const o of this.#outbox) {
      if (o.onWire) {
        onWire++;
        continue;
      }
      if (onWire >= this.opts.window) return;
      const wait = o.retryAt - Date.now();
      if (wait > 0) {
        // A refused send waits for its retry; later ones wait behind it to keep the order.
        if (!this.#pumpTimer) this.#pumpTimer = setTimeout(() => ((this.#pumpTimer = undefined), this.#pump()), wait);
        return;
      }
      onWire++;
      this.#transmit(conn, o);
    }
  }

  #transmit(conn: Connection, o: OutItem): void {
    o.onWire = true;
    o.p.attempts++;
    o.p.state = o.p.attempts > 1 ? 'resending' : 'sending';
    this.emit('send', { ...o.p });
    const frame = o.p.group !== undefined
      ? { op: 'send' as const, group: o.p.group, cid: o.p.cid, body: o.p.body }
      : { op: 'send' as const, to: o.p.to!, cid: o.p.cid, body: o.p.body };
    this.#lastSent = Date.now();
    conn.request<SentReply>(frame, this.opts.requestTimeoutMs).then(
      (sent) => {
        this.#settle(o);
        o.p.state = 'sent';
        o.p.sent = sent;
        this.emit('send', { ...o.p });
        o.resolve(sent);
      },
      (e: Error) => {
        o.onWire = false;
        if (e instanceof ImError && !RETRYABLE.has(e.code)) {
          this.#settle(o);
          o.p.state = 'failed';
          o.p.error = e;
          this.emit('send', { ...o.p });
          return o.reject(e);
        }
        if (e instanceof ConnectionClosedError && conn === this.#conn && conn.open) {
          conn.abort(); // no reply in time: this connection is not trustworthy any more
        }
        if (e instanceof ImError) o.retryAt = Date.now() + this.#retryDelay(e, o.p.attempts);
        o.p.state = 'resending';
        this.emit('send', { ...o.p });
        this.#pump();
      },
    );
  }

  #retryDelay(e: ImError, attempts: number): number {
    const m = /retry in (\d+) ?ms/.exec(e.message);
    if (m) return Number(m[1]) + 10;
    return this.#backoff(Math.min(attempts, 6)) + 50;
  }

  #settle(o: OutItem): void {
    const i = this.#outbox.indexOf(o);
    if (i >= 0) this.#outbox.splice(i, 1);
    this.#pump();
  }

  // ---------------------------------------------------------------- other requests

  /**
   * Sends any request of the protocol once logged in (waiting for a login if there is none) and
   * resolves with its reply. If the connection goes first, reads and other requests that are safe
   * to repeat go again on the next connection; a group change rejects with ConnectionClosedError
   * (it may have been applied: group_info says).
   */
  request<T extends Reply = Reply>(frame: Out): Promise<T> {
    if (this.#info.state === 'closed') return Promise.reject(new Error('session closed'));
    const retry = !frame.op.startsWith('group_') || frame.op === 'group_info';
    return new Promise<T>((resolve, reject) => {
      const q: Queued = { frame, resolve: resolve as (r: Reply) => void, reject, retry };
      if (this.#conn) return this.#issue(this.#conn, q);
      if (this.#queued.length >= MAX_QUEUED_REQUESTS) return reject(new ImError('rate_limited', 'too many requests waiting for a connection'));
      this.#queued.push(q);
    });
  }

  #issue(conn: Connection, q: Queued): void {
    this.#lastSent = Date.now();
    conn.request(q.frame, this.opts.requestTimeoutMs).then(q.resolve, (e: Error) => {
      if (e instanceof ConnectionClosedError && q.retry && !this.#stopped) {
        if (conn === this.#conn && conn.open) conn.abort();
        if (this.#conn && this.#conn !== conn) return this.#issue(this.#conn, q);
        if (this.#queued.length < MAX_QUEUED_REQUESTS) return void this.#queued.push(q);
      }
      q.reject(e);
    });
  }

  #flushQueued(): void {
    const q = this.#queued;
    this.#queued = [];
    for (const r of q) this.#issue(this.#conn!, r);
  }

  #requeueAfterLoss(): void {
    for (const o of this.#outbox) o.onWire = false;
  }

  history(conv: string, opts: { before?: number; limit?: number } = {}): Promise<MsgsReply> {
    return this.request<MsgsReply>({ op: 'history', conv, ...opts } as Out);
  }
  sync(after: number, limit?: number): Promise<MsgsReply> {
    return this.request<MsgsReply>({ op: 'sync', after, ...(limit ? { limit } : {}) } as Out);
  }
  read(conv: string, seq: number): Promise<OkReply> {
    return this.request<OkReply>({ op: 'read', conv, seq });
  }
  unread(): Promise<UnreadReply> {
    return this.request<UnreadReply>({ op: 'unread' });
  }
  receipts(conv: string): Promise<ReceiptsReply> {
    return this.request<ReceiptsReply>({ op: 'receipts', conv });
  }
  presence(users: string[]): Promise<PresenceReply> {
    return this.request<PresenceReply>({ op: 'presence', users });
  }
  /** Watches users' presence; the watch is renewed on every new connection. */
  async watch(users: string[]): Promise<OkReply> {
    const r = await this.request<OkReply>({ op: 'watch', users });
    for (const u of users) this.#watched.add(u);
    return r;
  }
  async unwatch(users: string[]): Promise<OkReply> {
    for (const u of users) this.#watched.delete(u);
    return this.request<OkReply>({ op: 'unwatch', users });
  }
  /** A typing notice: best effort, never queued for a later connection. */
  typing(target: SendTarget): void {
    if (this.#conn?.post({ op: 'typing', ...target })) this.#lastSent = Date.now();
  }
  groupCreate(group: string, members: string[] = []): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_create', group, members });
  }
  groupAdd(group: string, members: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_add', group, members });
  }
  groupRemove(group: string, members: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_remove', group, members });
  }
  groupLeave(group: string): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_leave', group });
  }
  groupInfo(group: string): Promise<GroupReply> {
    return this.request<GroupReply>({ op: 'group_info', group });
  }

  async #rewatch(conn: Connection): Promise<void> {
    const users = [...this.#watched];
    for (let i = 0; i < users.length; i += 500) {
      try {
        await conn.request({ op: 'watch', users: users.slice(i, i + 500) }, this.opts.requestTimeoutMs);
      } catch (e) {
        this.emit('error', e as Error);
        return;
      }
    }
  }

  // ---------------------------------------------------------------- liveness and closing

  #armPing(conn: Connection): void {
    const tick = () => {
      if (conn !== this.#conn || this.#stopped) return;
      if (Date.now() - this.#lastSent >= this.opts.pingEveryMs) {
        this.#lastSent = Date.now();
        // No pong within the request timeout: the connection is dead without having said so.
        conn.request({ op: 'ping' }, this.opts.requestTimeoutMs).catch(() => {
          if (conn === this.#conn) conn.abort();
        });
      }
      this.#timer = setTimeout(tick, Math.min(1000, this.opts.pingEveryMs));
    };
    this.#timer = setTimeout(tick, Math.min(1000, this.opts.pingEveryMs));
  }

  #stopTimers(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#pumpTimer);
    this.#ackTimer = this.#pumpTimer = undefined;
  }

  /** Drops the current connection as if the network failed (the session reconnects elsewhere). */
  drop(): void {
    this.#conn?.abort();
  }

  #close(reason: string): void {
    if (this.#info.state === 'closed') return;
    this.#stopped = true;
    this.#stopTimers();
    const err = new Error(`session closed: ${reason}`);
    for (const o of this.#outbox.splice(0)) o.reject(err);
    for (const q of this.#queued.splice(0)) q.reject(err);
    this.#setState({ state: 'closed', reason, attempt: 0 });
    this.#readyReject(err);
  }

  /** Acks what was delivered, closes the connection and stops; unconfirmed sends reject. */
  close(): void {
    if (this.opts.autoAck) this.ack();
    const conn = this.#conn;
    this.#close('closed by the app');
    conn?.close(1000);
  }
}
