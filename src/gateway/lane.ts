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
import { randomBytes } from 'node:crypto';
import type { LaneMark } from '../protocol/peer.ts';

type Turn = { owner: string | undefined; state: 'waiting' | 'sent' | 'retry'; admit?: () => void; refuse?: (e: Error) => void };

export class LaneClosedError extends Error {
  override name = 'LaneClosedError';
}

export class Lane {
  #turns: Turn[] = [];
  #shut = false;
  /** Unique to this connection (a restarted gateway reuses connection ids; this it does not). */
  readonly id = randomBytes(9).toString('base64url');
  #epoch = 0;

  /** What a send of this lane carries now. */
  mark(): LaneMark {
    return { lane: this.id, epoch: this.#epoch };
  }

  /** A send carrying `m` was refused: later attempts go in the next epoch. */
  refused(m: LaneMark): void {
    this.#epoch = Math.max(this.#epoch, m.epoch + 1);
  }

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
