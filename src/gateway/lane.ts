// A lane keeps the calls of one client connection in the order they were made when they have to
// be retried or the ring changes under them: a call goes to its home only while every earlier
// call of the lane still unanswered is on its way to the same home (the link to a home is FIFO,
// and a home handles its calls in arrival order), and not while an earlier one waits to retry.
// Without it a send retried after its home died could land after a later send of the same
// connection that went straight to the new home (docs/PROTOCOL.md, send: order per connection).

type Turn = { owner: string | undefined; state: 'waiting' | 'sent' | 'retry'; admit?: () => void; refuse?: (e: Error) => void };

export class LaneClosedError extends Error {
  override name = 'LaneClosedError';
}

export class Lane {
  #turns: Turn[] = [];
  #shut = false;

  /** A new call, behind every earlier one of this lane. */
  open(): Turn {
    const t: Turn = { owner: undefined, state: 'waiting' };
    this.#turns.push(t);
    return t;
  }

  /** Resolves once `t` may go to `owner`; rejects once the lane is shut. */
  admit(t: Turn, owner: string): Promise<void> {
    if (this.#shut) return Promise.reject(new LaneClosedError('the connection closed'));
    t.owner = owner;
    t.state = 'waiting';
    const p = new Promise<void>((resolve, reject) => {
      t.admit = resolve;
      t.refuse = reject;
    });
    // On a microtask, once the caller awaits: calls admitted together continue in lane order.
    queueMicrotask(() => this.#pump());
    return p;
  }

  /** The call went wrong in a way that will be retried: later calls wait for it. */
  retrying(t: Turn): void {
    t.state = 'retry';
  }

  /** Answered (or given up): later calls may go. */
  close(t: Turn): void {
    const i = this.#turns.indexOf(t);
    if (i >= 0) this.#turns.splice(i, 1);
    this.#pump();
  }

  /** The connection closed: calls not yet on their way are dropped (their answer would reach
   * nobody, and a retry of an old call must not land after the resends the client makes on its
   * next connection). */
  shut(): void {
    this.#shut = true;
    for (const t of this.#turns) {
      if (t.state !== 'sent' && t.refuse) {
        const no = t.refuse;
        delete t.admit;
        delete t.refuse;
        no(new LaneClosedError('the connection closed'));
      }
    }
  }

  get size(): number {
    return this.#turns.length;
  }

  #pump(): void {
    let owner: string | undefined;
    for (const t of this.#turns) {
      if (t.state === 'retry') return;
      if (t.state === 'waiting') {
        if (!t.admit || (owner !== undefined && t.owner !== owner)) return;
        t.state = 'sent';
        const go = t.admit;
        delete t.admit;
        delete t.refuse;
        go();
      }
      owner = t.owner;
    }
  }
}

export type { Turn as LaneTurn };
