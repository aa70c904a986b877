// A lane keeps the calls of one client connection in the order they were made when they have to
// be retried or the ring changes under them: a call goes to its home only while every earlier
// call of the lane still unanswered is on its way to the same home (the link to a home is FIFO,
// and a home handles its calls in arrival order), and not while an earlier one waits to retry.
// Without it a send retried after its home died could land after a later send of the same
// connection that went straight to the new home (docs/PROTOCOL.md, send: order per connection).
//
// The lane cannot call back what is already on its way: when a home refuses a send (it is not
// serving the sender yet, or any more) and takes the next one of the same connection a moment
// later, the refused one, retried, would land behind it. So sends carry the lane's id and epoch
// (a LaneMark); a home that refuses a send of a lane refuses that lane's later sends of the same
// epoch too (home/fences.ts), and the lane moves to the next epoch whenever one of its sends is
// refused, so its retries, in lane order, are taken again.
//
// Nor can it tell whether a send the link lost ever reached its home: the link keeps order, not
// delivery, so across a closed stream or a failed dial a send can be lost while the next one,
// already queued behind it, arrives on a new stream. So each send also carries its attempt's
// number and the number of the attempt it was sent behind; a home that has not seen that one
// refuses it, and fences its epoch (home/fences.ts, Fences.arrives).
import { randomBytes } from 'node:crypto';
import type { LaneMark } from '../protocol/peer.ts';

type Turn = {
  owner: string | undefined;
  state: 'waiting' | 'sent' | 'retry';
  /** A send: it gets a mark each time it is let go. */
  send: boolean;
  /** The mark of its latest attempt, set as it is let go. */
  mark?: LaneMark;
  admit?: () => void;
  refuse?: (e: Error) => void;
};

export class LaneClosedError extends Error {
  override name = 'LaneClosedError';
}

export class Lane {
  #turns: Turn[] = [];
  #shut = false;
  /** Unique to this connection (a restarted gateway reuses connection ids; this it does not). */
  readonly id = randomBytes(9).toString('base64url');
  #epoch = 0;
  /** The number of the last attempt let go. */
  #n = 0;

  /** What a send of this lane outside its turns carries now (no attempt number). */
  mark(): LaneMark {
    return { lane: this.id, epoch: this.#epoch };
  }

  /** What send `t` carries on the attempt it was last let go for. */
  markOf(t: Turn): LaneMark {
    return t.mark ?? this.mark();
  }

  /** A send carrying `m` was refused: later attempts go in the next epoch. */
  refused(m: LaneMark): void {
    this.#epoch = Math.max(this.#epoch, m.epoch + 1);
  }

  /** A new call, behind every earlier one of this lane; `send`: it carries a mark. */
  open(send = false): Turn {
    const t: Turn = { owner: undefined, state: 'waiting', send };
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

  // The mark is fixed as a send is let go, with the epoch of that moment: one taken later, after
  // an earlier send's refusal moved the epoch on, would pass the home's fence ahead of it.
  #pump(): void {
    let owner: string | undefined;
    let after: number | undefined;
    for (const t of this.#turns) {
      if (t.state === 'retry') return;
      if (t.state === 'waiting') {
        if (!t.admit || (owner !== undefined && t.owner !== owner)) return;
        t.state = 'sent';
        if (t.send) t.mark = { lane: this.id, epoch: this.#epoch, n: ++this.#n, ...(after === undefined ? {} : { after }) };
        const go = t.admit;
        delete t.admit;
        delete t.refuse;
        go();
      }
      owner = t.owner;
      if (t.mark) after = t.mark.n;
    }
  }
}

export type { Turn as LaneTurn };
