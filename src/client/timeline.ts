// The timeline as the app sees it: entries delivered in seq order with no gap and no repeat,
// across connections. A push that skips seqs is held (a bounded number of them) while the gap is
// fetched with `sync`; delivered seqs are acknowledged in batches.
import type { Entry, MsgsReply, WelcomeReply } from '../protocol/frames.ts';

export type TimelineHooks = {
  /** An entry in order: the next seq after the last one delivered. */
  deliver(e: Entry): void;
  /** The entries after a seq on the current connection (rejects when it goes). */
  sync(after: number): Promise<MsgsReply>;
  /** Posts an ack on the current connection; false when there is none. */
  postAck(seq: number): boolean;
};

export type TimelineOptions = { maxAhead: number; autoAck: boolean; ackDelayMs: number };

export class Timeline {
  #opts: TimelineOptions;
  #hooks: TimelineHooks;
  /** The last seq delivered with nothing missing below it (undefined before the first login). */
  #seq: number | undefined;
  #ahead = new Map<number, Entry>();
  /** The highest seq pushed: the repair fetches up to it, held or not (held ones are bounded). */
  #wanted = 0;
  #repairing = false;
  /** Bumped at every login: a sync answered on an older connection is not trusted to continue. */
  #login = 0;
  #acked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: TimelineOptions, hooks: TimelineHooks) {
    this.#opts = opts;
    this.#hooks = hooks;
  }

  get seq(): number | undefined {
    return this.#seq;
  }

  /** Where a login should ask the replay to start: the cursor once there is one. */
  since(first: number | undefined): number | undefined {
    return this.#seq ?? first;
  }

  /** A login's welcome: the first one sets the cursor (the `since` asked, or the device's acked cursor). */
  loggedIn(since: number | undefined, w: WelcomeReply): void {
    this.#login++;
    if (this.#seq === undefined) this.#seq = since === undefined ? w.acked : Math.min(since, w.seq);
    this.#acked = Math.max(this.#acked, w.acked);
  }

  push(e: Entry): void {
    if (this.#seq === undefined) {
      // A push raced ahead of the first welcome: keep it until the cursor is known.
      if (this.#ahead.size < this.#opts.maxAhead) this.#ahead.set(e.seq, e);
      return;
    }
    if (e.seq <= this.#seq) return;
    if (e.seq !== this.#seq + 1) {
      if (this.#ahead.size < this.#opts.maxAhead) this.#ahead.set(e.seq, e);
      this.#wanted = Math.max(this.#wanted, e.seq);
      void this.#repair();
      return;
    }
    this.#deliver(e);
    this.#drainAhead();
  }

  #deliver(e: Entry): void {
    this.#seq = e.seq;
    this.#hooks.deliver(e);
    if (this.#opts.autoAck) this.#scheduleAck();
  }

  #drainAhead(): void {
    for (const k of this.#ahead.keys()) if (k <= this.#seq!) this.#ahead.delete(k);
    for (let next = this.#ahead.get(this.#seq! + 1); next; next = this.#ahead.get(this.#seq! + 1)) {
      this.#ahead.delete(next.seq);
      this.#deliver(next);
    }
  }

  /** Fills the gap up to the highest seq pushed with `sync`, page by page. */
  async #repair(): Promise<void> {
    if (this.#repairing) return;
    this.#repairing = true;
    try {
      while (this.#seq! < this.#wanted) {
        const login = this.#login;
        const page = await this.#hooks.sync(this.#seq!);
        if (login !== this.#login) break; // a new login replays from the cursor anyway
        for (const e of page.msgs) if (e.seq === this.#seq! + 1) this.#deliver(e);
        this.#drainAhead();
        if (!page.msgs.length && !page.more) {
          // Pushes the timeline does not have (cannot happen with a well-behaved node): drop
          // them rather than loop; the next push or login brings them again.
          this.#ahead.clear();
          this.#wanted = this.#seq!;
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
    }, this.#opts.ackDelayMs);
  }

  /** Acknowledges everything delivered so far, or up to seq. */
  ack(seq = this.#seq ?? 0): void {
    if (seq > this.#acked && this.#hooks.postAck(seq)) this.#acked = seq;
  }

  stop(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }
}
