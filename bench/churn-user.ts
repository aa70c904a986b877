// One user of the churn benchmark: the SDK's session (src/client/session.ts) keeping W sends to
// its partner awaiting 'sent'. The session does what the bench exercises (reconnects on a goaway
// or a drop, to a node the goaway named or the next live one; logs in again with `since`; resends
// unconfirmed sends with the same cid); this class only makes the sends and counts what the report
// shows, from the session's public events.
import { ImError, ImSession } from '../src/client/index.ts';
import type { Entry, GoawayEvent, PendingSend, SentReply, StateInfo, WelcomeReply } from '../src/client/index.ts';
import { token } from '../test/helpers/node.ts';
import { now } from './churn-common.ts';
import type { Phase } from './churn-common.ts';

/** As the bench's own client waited before: 50 ms doubling to 1 s (jittered here). */
const BACKOFF_MS = { min: 50, max: 1000 };
const CONNECT_TIMEOUT_MS = 2000;

/** What a user needs of the bench: its settings, the phase to count in, and where to report. */
export type UserHost = {
  readonly o: { window: number; body: number };
  readonly phase: Phase;
  readonly sending: boolean;
  readonly closing: boolean;
  readonly failures: string[];
  anomaly(text: string): void;
  confirm(u: User, t: number, latency: number): void;
};

/** A send awaiting 'sent': when it was made, and the connection and place on it of its last attempt. */
type Out = { t0: number; attempts: number; conn: number; idx: number };
type Confirmation = { mid: string; seq: number; at: number; node: string };

export class User {
  readonly name: string;
  partner!: User;
  /** Unconfirmed sends by counter (the message's cid is `<name>-<counter>`, its body starts with the counter). */
  readonly out = new Map<number, Out>();
  readonly confirmed = new Map<number, Confirmation>();
  /** counter → [connection, index of the send on it] of the attempt that stored it (a 'sent' without dup). */
  readonly storedBy = new Map<number, [number, number]>();
  readonly received = new Set<number>();
  lastProgress = 0;
  failed = 0;
  #host: UserHost;
  #session: ImSession | undefined;
  #next = 0;
  /** Logins so far: the number of the current connection; #idx counts the sends put on it. */
  #conn = 0;
  #idx = 0;
  #state: StateInfo['state'] = 'connecting';

  constructor(name: string, host: UserHost) {
    this.name = name;
    this.#host = host;
  }

  /** The node the session is logged in to (its last welcome's). */
  get node(): string {
    return this.#session?.welcome?.node ?? '';
  }

  /** Starts the session on `first`, with `urls` (the bench's live nodes) to go on to; resolves once logged in. */
  start(first: string, urls: string[]): Promise<void> {
    const s = new ImSession({
      urls: [first, ...urls.filter((u) => u !== first)], start: 'first', token: () => token(this.name), device: 'bench',
      since: 0, autoAck: false, window: this.#host.o.window, connectTimeoutMs: CONNECT_TIMEOUT_MS, backoffMs: BACKOFF_MS,
    });
    s.on('state', (st) => this.#stateChanged(st));
    s.on('welcome', (w) => this.#welcome(w));
    s.on('goaway', (f) => this.#goaway(f));
    s.on('error', () => this.#host.phase.connectFailures++); // a failed connection attempt or login
    s.on('message', (e) => this.#message(e));
    s.on('send', (p) => this.#sendChanged(p));
    this.#session = s;
    return s.ready();
  }

  /** The live nodes changed: a reconnect picks among these. */
  setUrls(urls: string[]): void {
    if (urls.length) this.#session?.setUrls(urls);
  }

  close(): void {
    this.#session?.close();
  }

  #stateChanged(st: StateInfo): void {
    if (st.state === 'reconnecting' && (this.#state === 'live' || this.#state === 'replaying')) this.#host.phase.reconnects++;
    if (st.state === 'closed' && !this.#host.closing) this.#host.failures.push(`${this.name}: the session closed: ${st.reason}`);
    this.#state = st.state;
  }

  #welcome(w: WelcomeReply): void {
    this.#conn++;
    this.#idx = 0;
    // The session still holds the last seq it delivered: a welcome below it means seqs given again.
    const seen = this.#session?.seq ?? 0;
    if (w.seq < seen) this.#host.anomaly(`${this.name}: welcome at ${w.node} says seq ${w.seq}, but seq ${seen} was pushed before`);
  }

  #goaway(f: GoawayEvent): void {
    this.#host.phase.goaways++;
    if (f.reason !== 'shutdown') this.#host.anomaly(`${this.name}: goaway '${f.reason}' from ${this.node}`);
  }

  /** A timeline entry, delivered once in seq order by the session: counted at the first of each partner message. */
  #message(e: Entry): void {
    if (e.from !== this.partner.name) return; // the echo of our own send
    const k = Number(e.body.slice(0, e.body.indexOf(' ')));
    if (this.received.has(k)) return;
    this.received.add(k);
    this.#host.phase.delivered++;
  }

  /** Tops the window up with new sends while the bench is sending; the session queues them while it reconnects. */
  pump(): void {
    const s = this.#session;
    const h = this.#host;
    while (s && h.sending && !h.closing && this.out.size < h.o.window) {
      if (this.out.size === 0) this.lastProgress = now();
      const k = this.#next++;
      this.out.set(k, { t0: now(), attempts: 0, conn: 0, idx: 0 }); // before the session's first 'send' event
      s.sendTo(this.partner.name, `${k} `.padEnd(h.o.body, 'x'), `${this.name}-${k}`).then(
        (r) => this.#sent(k, r),
        (e: unknown) => this.#failed(k, e),
      );
    }
  }

  /** Each attempt goes on the current connection (its attempts count grows); a retryable refusal carries its error. */
  #sendChanged(p: PendingSend): void {
    const a = this.out.get(Number(p.cid.slice(this.name.length + 1)));
    if (!a) return;
    if (p.attempts > a.attempts) {
      a.attempts = p.attempts;
      a.conn = this.#conn;
      a.idx = this.#idx++;
    } else if (p.state === 'resending' && p.error) {
      const ph = this.#host.phase;
      if (p.error.code === 'unavailable') ph.unavailable++;
      else ph.errors[p.error.code] = (ph.errors[p.error.code] ?? 0) + 1;
    }
  }

  #sent(k: number, r: SentReply): void {
    const a = this.out.get(k);
    if (!a) return;
    if (!r.dup) this.storedBy.set(k, [a.conn, a.idx]); // the reply is to the last attempt
    const t = now();
    this.out.delete(k);
    this.confirmed.set(k, { mid: r.mid, seq: r.seq, at: t, node: this.node });
    this.#host.confirm(this, t, t - a.t0);
    this.pump();
  }

  /** A refusal a retry cannot change (counted, not confirmed), or the session closed. */
  #failed(k: number, e: unknown): void {
    if (this.#host.closing || !this.out.delete(k)) return; // the bench closed the session at the end
    this.failed++;
    const code = e instanceof ImError ? e.code : 'session closed';
    const ph = this.#host.phase;
    ph.errors[code] = (ph.errors[code] ?? 0) + 1;
    this.pump();
  }
}
