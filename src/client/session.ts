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
// - watches are renewed on the new connection;
// - with `roster`, the contacts are reloaded at every login and kept up to date from events;
// - with `idleAwayMs`, the user's status goes 'away' while the app reports no activity.
// Every buffer the node can grow is bounded (out-of-order pushes, queued requests, the outbox,
// the contacts).
// This file runs the connections; nodes.ts picks the next node and the backoff, events.ts routes
// pushed frames, watches.ts keeps the watches, timeline.ts delivers and acks, outbox.ts sends,
// requests.ts holds the other ops, roster.ts the contacts, away.ts auto-away, types.ts the public types.
import { Requests } from './requests.ts';
import { Connection, ImError } from './connection.ts';
import { Outbox } from './outbox.ts';
import { Timeline } from './timeline.ts';
import { Roster } from './roster.ts';
import { Away } from './away.ts';
import { NodeList } from './nodes.ts';
import { WatchList } from './watches.ts';
import { routeEvent } from './events.ts';
import type { EventSink } from './events.ts';
import type { PendingSend, SendTarget, SessionEvents, SessionOptions, SessionState, StateInfo } from './types.ts';
import type {
  Contact, Entry, GoawayEvent, MsgsReply, OkReply, PresenceReply, SentReply, ServerFrame, StatusValue, WelcomeReply,
} from '../protocol/frames.ts';

export type { PendingSend, SendTarget, SessionEvents, SessionOptions, SessionState, StateInfo } from './types.ts';

const LATEST = Number.MAX_SAFE_INTEGER; // a since past the newest seq: the node replays nothing

export class ImSession extends Requests<SessionEvents> {
  readonly opts: Required<Omit<SessionOptions, 'token' | 'user' | 'WebSocket'>> & Pick<SessionOptions, 'token' | 'user' | 'WebSocket'>;
  #nodes: NodeList;
  #conn: Connection | undefined;
  #info: StateInfo = { state: 'connecting', attempt: 0 };
  #welcome: WelcomeReply | undefined;
  #timeline: Timeline;
  #outbox: Outbox;
  /** The connection being logged in, and the frames it pushed before its welcome was handled. */
  #loggingIn: Connection | undefined;
  #early: ServerFrame[] = [];
  #roster: Roster;
  #sink: EventSink;
  #away: Away | undefined;
  #watched = new WatchList();
  #cidCounter = 0;
  #cidPrefix: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastSent = 0;
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
      random: Math.random, start: 'random', roster: false, maxContacts: 20_000, idleAwayMs: 0, ...opts,
    };
    this.#nodes = new NodeList(opts.urls, this.opts);
    this.#cidPrefix = `${this.opts.device.slice(0, 16)}-${Date.now().toString(36)}${Math.floor(this.opts.random() * 36 ** 4).toString(36)}`;
    this.#ready = new Promise((ok, ko) => {
      this.#readyResolve = ok;
      this.#readyReject = ko;
    });
    this.#ready.catch(() => undefined); // nobody may be waiting for it
    this.#timeline = new Timeline(this.opts, {
      deliver: (e) => this.#delivered(e),
      sync: (after) => this.#conn ? this.#conn.request<MsgsReply>({ op: 'sync', after, limit: 1000 }, this.opts.requestTimeoutMs) : Promise.reject(new Error('no connection')),
      postAck: (seq) => !!this.#conn?.post({ op: 'ack', seq }) && (this.wrote(), true),
    });
    this.#outbox = new Outbox(this.opts, {
      connection: () => this.#conn,
      changed: (p) => this.emit('send', p),
      backoff: (n) => this.#nodes.backoff(n),
      wrote: () => this.wrote(),
    });
    this.#roster = new Roster(this.opts.maxContacts);
    this.#sink = { timeline: this.#timeline, roster: this.#roster, emit: (event, ...args) => this.emit(event, ...args) };
    if (this.opts.idleAwayMs > 0) {
      this.#away = new Away(this.opts.idleAwayMs, {
        current: () => this.#ownStatus(),
        set: (status, text) => this.request<OkReply>({ op: 'status', status, ...(text !== undefined ? { text } : {}) }),
        changed: (status, text) => this.emit('status', { status, ...(text !== undefined ? { text } : {}), auto: true }),
      });
    }
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
    return this.#timeline.seq ?? 0;
  }
  /** Sends not yet confirmed, in the order they were made. */
  get pending(): PendingSend[] {
    return this.#outbox.pending;
  }
  /** The user's contacts by user id (login with `roster: true`): the last whole roster, kept up to
   * date by contact and presence events. Empty until the first roster is in (`rosterLoaded`). */
  get roster(): ReadonlyMap<string, Contact> {
    return this.#roster.contacts;
  }
  get rosterLoaded(): boolean {
    return this.#roster.loaded;
  }
  /** The node URLs the session knows. */
  get urls(): string[] {
    return this.#nodes.urls;
  }

  /** Adds node URLs (for example from a node's GET /nodes): a reconnect may pick any of them. */
  addUrls(urls: string[]): void {
    this.#nodes.add(urls);
  }
  /** Replaces the node URLs (at least one), for an app that knows some nodes are gone: reconnects
   * pick only among these. The current connection stays until it goes. */
  setUrls(urls: string[]): void {
    this.#nodes.set(urls);
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
      const url = this.#nodes.next();
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
        const since = this.#timeline.since(this.opts.since === 'acked' ? undefined : this.opts.since === 'latest' ? LATEST : this.opts.since);
        const welcome = await conn.request<WelcomeReply>(
          {
            op: 'login', ...(await this.#token()), device: this.opts.device, ...(since !== undefined ? { since } : {}),
            ...(this.opts.roster ? { roster: true } : {}),
          },
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
        delay = goaway?.nodes?.length ? this.#nodes.backoff(0) : this.#nodes.backoff(1);
        this.#outbox.lost();
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
        this.#outbox.lost();
        delay = this.#nodes.backoff(this.#info.attempt);
      }
    }
  }

  #onWelcome(conn: Connection, w: WelcomeReply, since: number | undefined): void {
    this.#conn = conn;
    this.#loggingIn = undefined;
    this.#welcome = w;
    this.#timeline.loggedIn(since, w);
    if (this.opts.roster) this.#roster.loggingIn();
    this.#info.attempt = 0;
    this.emit('welcome', w);
    if (this.seq < w.seq) this.#setState({ state: 'replaying', url: conn.url, node: w.node, replayTo: w.seq });
    else this.#setState({ state: 'live', url: conn.url, node: w.node });
    this.wrote();
    this.#armPing(conn);
    if (this.#watched.size) void this.#watched.renew(conn, this.opts.requestTimeoutMs, (e) => this.emit('error', e));
    // Frames that came in the same read as the welcome, before this ran: the roster, the replay.
    const early = this.#early;
    this.#early = [];
    for (const f of early) this.#onEvent(conn, f);
    this.flushRequests();
    this.#outbox.pump();
  }

  #onEvent(conn: Connection, f: ServerFrame): void {
    if (conn !== this.#conn) {
      // Frames read together with the welcome can reach us before its reply is handled. The roster
      // comes before the replay, so the bound only ever drops replayed entries (gap repair refetches them).
      if (conn === this.#loggingIn && f.op !== 'goaway' && this.#early.length < this.opts.maxAhead) this.#early.push(f);
      if (f.op !== 'goaway') return;
    }
    if (f.op === 'goaway') {
      this.#nodes.goaway(f.nodes ?? [], conn.url);
      return this.emit('goaway', f);
    }
    routeEvent(f, this.#sink);
  }

  // ---------------------------------------------------------------- delivery and acks

  #delivered(e: Entry): void {
    this.emit('message', e);
    if (this.#info.state === 'replaying' && e.seq >= (this.#info.replayTo ?? 0)) {
      this.#setState({ state: 'live', url: this.#info.url, node: this.#info.node });
    }
  }

  /** Acknowledges everything delivered so far, or up to seq (autoAck does this in batches). */
  ack(seq?: number): void {
    this.#timeline.ack(seq);
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
    return this.#outbox.add({ cid, ...target, body, state: 'queued', attempts: 0 });
  }
  sendTo(user: string, body: string, cid?: string): Promise<SentReply> {
    return this.send({ to: user }, body, cid);
  }
  sendGroup(group: string, body: string, cid?: string): Promise<SentReply> {
    return this.send({ group }, body, cid);
  }

  // ---------------------------------------------------------------- other requests (requests.ts)

  protected connection(): Connection | undefined {
    return this.#conn;
  }
  protected closedReason(): string | undefined {
    return this.#info.state === 'closed' ? this.#info.reason ?? 'closed' : undefined;
  }
  protected get requestTimeoutMs(): number {
    return this.opts.requestTimeoutMs;
  }
  protected wrote(): void {
    this.#lastSent = Date.now();
  }

  /** Watches users' presence; the watch is renewed on every new connection. */
  async watch(users: string[]): Promise<OkReply> {
    const r = await this.request<OkReply>({ op: 'watch', users });
    this.#watched.add(users);
    return r;
  }
  async unwatch(users: string[]): Promise<OkReply> {
    this.#watched.delete(users);
    return this.request<OkReply>({ op: 'unwatch', users });
  }
  /** Sets the user's status (all devices': it belongs to the user), for everyone who may see it. */
  override async status(status: StatusValue, text?: string): Promise<OkReply> {
    this.#away?.statusSet();
    const r = await super.status(status, text);
    this.emit('status', { status, ...(text !== undefined ? { text } : {}), auto: false });
    return r;
  }

  /** The user did something (a key, a click): auto-away's idle clock starts again, and an away it
   * set goes back to 'available'. Cheap enough to call on every input event. */
  activity(): void {
    this.#away?.activity();
  }
  /** Whether the status now is an 'away' that auto-away set. */
  get autoAway(): boolean {
    return this.#away?.away ?? false;
  }

  /** The user's own status as the node reports it (auto-away leaves anything but 'available' alone). */
  async #ownStatus(): Promise<{ status: StatusValue; text?: string } | undefined> {
    const me = this.#welcome?.user;
    if (!me) return undefined;
    const p = (await this.request<PresenceReply>({ op: 'presence', users: [me] })).users[me];
    if (!p?.online) return undefined; // invisible, or the node does not say
    return { status: p.status ?? 'available', ...(p.text ? { text: p.text } : {}) };
  }

  /** A typing notice: best effort, never queued for a later connection. */
  typing(target: SendTarget): void {
    if (this.#conn?.post({ op: 'typing', ...target })) this.#lastSent = Date.now();
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
    this.#timeline.stop();
  }

  /** Drops the current connection as if the network failed (the session reconnects elsewhere). */
  drop(): void {
    this.#conn?.abort();
  }

  #close(reason: string): void {
    if (this.#info.state === 'closed') return;
    this.#stopped = true;
    this.#away?.stop();
    this.#stopTimers();
    const err = new Error(`session closed: ${reason}`);
    this.#outbox.fail(err);
    this.failRequests(err);
    this.#setState({ state: 'closed', reason, attempt: 0 });
    this.#readyReject(err);
  }

  /** Acks what was delivered, closes the connection and stops; unconfirmed sends reject. */
  close(): void {
    if (this.opts.autoAck) this.ack();
    // An away set by auto-away would outlive the session (a status survives logouts): undo it.
    const away = this.#away?.stop();
    if (away) this.#conn?.post({ op: 'status', status: 'available', ...(away.text !== undefined ? { text: away.text } : {}) });
    const conn = this.#conn;
    this.#close('closed by the app');
    conn?.close(1000);
  }
}
