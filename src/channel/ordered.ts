// The one ordered channel: per destination (a node, a group, a user), one batch in flight at a
// time (a Drain, drain.ts); items queued meanwhile wait and go together in the next batch, in the
// order they came, cut by count and by weight (wire size, copies made) so that a batch fits one
// peer frame. A later batch can never overtake an earlier one. What a batch does, and how a
// failed item is retried, is the sender's.
import { Drain } from './drain.ts';

/** Items of a batch weigh at most `budget` together (a batch always takes one item at least). */
export type Limit<T> = { weigh: (item: T) => number; budget: number };

export type ChannelInit<T> = {
  /** Items per batch at most. */
  maxItems: number;
  /** Every limit holds for every batch (a single item over one goes alone). */
  limits?: Limit<T>[];
  /** Keep a destination's entry while it is idle (destinations are few: the cluster's nodes), so
   * that withdraw() meets them in the order they first appeared. Default: forget idle ones. */
  keepIdle?: boolean;
};

/** Sends one batch to `dest`; it must settle every item itself (it is never given them again). */
export type SendBatch<T> = (dest: string, batch: T[]) => Promise<void>;

type Dest<T> = { queue: T[]; drain: Drain };

export class OrderedChannel<T> {
  #send: SendBatch<T>;
  #init: ChannelInit<T>;
  #dests = new Map<string, Dest<T>>();

  constructor(send: SendBatch<T>, init: ChannelInit<T>) {
    this.#send = send;
    this.#init = init;
  }

  push(dest: string, item: T): void {
    this.pushAll(dest, [item]);
  }

  /** Queues the items together, so that they can go in one batch even when none is in flight. */
  pushAll(dest: string, items: T[]): void {
    let d = this.#dests.get(dest);
    if (!d) this.#dests.set(dest, (d = this.#dest(dest)));
    d.queue.push(...items);
    d.drain.kick();
  }

  /** Takes back the queued items (not those in flight) that `match`, destination by destination,
   * each in queue order. */
  withdraw(match: (item: T) => boolean): T[] {
    const out: T[] = [];
    for (const d of this.#dests.values()) {
      if (!d.queue.some(match)) continue;
      out.push(...d.queue.filter(match));
      d.queue = d.queue.filter((i) => !match(i));
    }
    return out;
  }

  /** Destinations with work queued or in flight. */
  get busy(): number {
    let n = 0;
    for (const d of this.#dests.values()) if (d.drain.busy) n++;
    return n;
  }

  #dest(name: string): Dest<T> {
    const d: Dest<T> = {
      queue: [],
      drain: new Drain({
        more: () => {
          if (d.queue.length) return true;
          if (!this.#init.keepIdle) this.#dests.delete(name);
          return false;
        },
        next: () => this.#send(name, this.#take(d.queue)),
        // A sender that threw (a bug: it must settle its items) leaves the rest for the next push.
        failed: () => {},
      }),
    };
    return d;
  }

  #take(queue: T[]): T[] {
    const { maxItems, limits = [] } = this.#init;
    if (limits.length === 0) return queue.splice(0, maxItems);
    // Each item is weighed once (a fan-out copy's weight walks its users).
    const used = limits.map(() => 0);
    const w = limits.map(() => 0);
    let n = 0;
    for (; n < queue.length && n < maxItems; n++) {
      let over = false;
      for (let i = 0; i < limits.length; i++) {
        w[i] = limits[i]!.weigh(queue[n]!);
        if (used[i]! + w[i]! > limits[i]!.budget) over = true;
      }
      if (n > 0 && over) break;
      for (let i = 0; i < limits.length; i++) used[i] = used[i]! + w[i]!;
    }
    return queue.splice(0, n);
  }
}
