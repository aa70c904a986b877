// The sends a session owes: each goes on the wire in the order it was made, at most `window` at
// once, and again with the same cid after a lost connection or a retryable refusal, until the
// node confirms it (`sent`) or refuses it for good. A refused send waits for its retry, and the
// later ones wait behind it, so that the order holds.
import { ConnectionClosedError, ImError } from './connection.ts';
import type { Connection } from './connection.ts';
import type { PendingSend } from './types.ts';
import type { SentReply } from '../protocol/frames.ts';

/** Errors that mean "try again, maybe elsewhere": the send keeps its cid and goes again. */
const RETRYABLE = new Set(['unavailable', 'rate_limited']);

type Item = { p: PendingSend; resolve(r: SentReply): void; reject(e: Error): void; onWire: boolean; retryAt: number };

export type OutboxHooks = {
  /** The logged-in connection, if any. */
  connection(): Connection | undefined;
  /** A send changed state. */
  changed(p: PendingSend): void;
  /** A delay before attempt n again (jittered backoff). */
  backoff(attempt: number): number;
  /** Something was written to the connection (for the idle ping). */
  wrote(): void;
};

export type OutboxOptions = { window: number; maxOutbox: number; requestTimeoutMs: number };

export class Outbox {
  #opts: OutboxOptions;
  #hooks: OutboxHooks;
  #items: Item[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: OutboxOptions, hooks: OutboxHooks) {
    this.#opts = opts;
    this.#hooks = hooks;
  }

  /** Sends not yet confirmed, in the order they were made. */
  get pending(): PendingSend[] {
    return this.#items.map((o) => ({ ...o.p }));
  }

  add(p: PendingSend): Promise<SentReply> {
    if (this.#items.length >= this.#opts.maxOutbox) {
      return Promise.reject(new ImError('rate_limited', `${this.#items.length} sends are waiting already`));
    }
    return new Promise<SentReply>((resolve, reject) => {
      this.#items.push({ p, resolve, reject, onWire: false, retryAt: 0 });
      this.#hooks.changed({ ...p });
      this.pump();
    });
  }

  /** Puts sends on the wire: the earliest unconfirmed first, at most `window` at once. */
  pump(): void {
    const conn = this.#hooks.connection();
    // A connection that is closing refuses at once: sending into it again would spin (each
    // refusal pumping again) and starve its close event. The next login pumps.
    if (!conn || !conn.open) return;
    let onWire = 0;
    for (const o of this.#items) {
      if (o.onWire) {
        onWire++;
        continue;
      }
      if (onWire >= this.#opts.window) return;
      const wait = o.retryAt - Date.now();
      if (wait > 0) {
        if (!this.#timer) this.#timer = setTimeout(() => ((this.#timer = undefined), this.pump()), wait);
        return;
      }
      onWire++;
      this.#transmit(conn, o);
    }
  }

  #transmit(conn: Connection, o: Item): void {
    o.onWire = true;
    o.p.attempts++;
    o.p.state = o.p.attempts > 1 ? 'resending' : 'sending';
    delete o.p.error; // the refusal it waited out, if any
    this.#hooks.changed({ ...o.p });
    const frame = o.p.group !== undefined
      ? { op: 'send' as const, group: o.p.group, cid: o.p.cid, body: o.p.body }
      : { op: 'send' as const, to: o.p.to!, cid: o.p.cid, body: o.p.body };
    this.#hooks.wrote();
    conn.request<SentReply>(frame, this.#opts.requestTimeoutMs).then(
      (sent) => {
        this.#settle(o);
        o.p.state = 'sent';
        o.p.sent = sent;
        this.#hooks.changed({ ...o.p });
        o.resolve(sent);
      },
      (e: Error) => {
        o.onWire = false;
        if (e instanceof ImError && !RETRYABLE.has(e.code)) {
          this.#settle(o);
          o.p.state = 'failed';
          o.p.error = e;
          this.#hooks.changed({ ...o.p });
          return o.reject(e);
        }
        if (e instanceof ConnectionClosedError && conn === this.#hooks.connection() && conn.open) {
          conn.abort(); // no reply in time: this connection is not trustworthy any more
        }
        if (e instanceof ImError) {
          o.retryAt = Date.now() + this.#retryDelay(e, o.p.attempts);
          o.p.error = e; // why it waits: an app may count or show it
        }
        o.p.state = 'resending';
        this.#hooks.changed({ ...o.p });
        this.pump();
      },
    );
  }

  #retryDelay(e: ImError, attempts: number): number {
    const m = /retry in (\d+) ?ms/.exec(e.message);
    if (m) return Number(m[1]) + 10;
    return this.#hooks.backoff(Math.min(attempts, 6)) + 50;
  }

  #settle(o: Item): void {
    const i = this.#items.indexOf(o);
    if (i >= 0) this.#items.splice(i, 1);
    this.pump();
  }

  /** The connection went: whatever was on the wire goes again on the next one. */
  lost(): void {
    for (const o of this.#items) o.onWire = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The session is over: every send still owed rejects. */
  fail(err: Error): void {
    this.lost();
    for (const o of this.#items.splice(0)) o.reject(err);
  }
}
