// The one ordered channel: per destination (a node, a group, a user), one batch in flight at a
// time; items queued meanwhile wait and go together in the next batch, in the order they came,
// cut by count and by size so that a batch fits one peer frame. A later batch can never overtake
// an earlier one. What a batch does, and how a failed item is retried, is the sender's.

export type ChannelInit<T> = {
  /** Items per batch at most. */
  maxItems: number;
  /** With `budget`: a batch's items weigh at most `budget` together (always one item at least). */
  weigh?: (item: T) => number;
  budget?: number;
  /** Keep a destination's entry while it is idle (destinations are few: the cluster's nodes), so
   * that withdraw() meets them in the order they first appeared. Default: forget idle ones. */
  keepIdle?: boolean;
};

/** Sends one batch to `dest`; it must settle every item itself (it is never given them again). */
export type SendBatch<T> = (dest: string, batch: T[]) => Promise<void>;

type Lane<T> = { queue: T[]; busy: boolean };

export class OrderedChannel<T> {
  #send: SendBatch<T>;
  #init: ChannelInit<T>;
  #lanes = new Map<string, Lane<T>>();

  constructor(send: SendBatch<T>, init: ChannelInit<T>) {
    this.#send = send;
    this.#init = init;
  }

  push(dest: string, item: T): void {
    let lane = this.#lanes.get(dest);
    if (!lane) this.#lanes.set(dest, (lane = { queue: [], busy: false }));
    lane.queue.push(item);
    if (!lane.busy) void this.#drain(dest, lane);
  }

  /** Takes back the queued items (not those in flight) that `match`, destination by destination,
   * each in queue order. */
  withdraw(match: (item: T) => boolean): T[] {
    const out: T[] = [];
    for (const lane of this.#lanes.values()) {
      if (!lane.queue.some(match)) continue;
      out.push(...lane.queue.filter(match));
      lane.queue = lane.queue.filter((i) => !match(i));
    }
    return out;
  }

  /** Destinations with work queued or in flight. */
  get busy(): number {
    let n = 0;
    for (const lane of this.#lanes.values()) if (lane.busy) n++;
    return n;
  }

  #take(queue: T[]): T[] {
    const { maxItems, weigh, budget = Infinity } = this.#init;
    if (!weigh) return queue.splice(0, maxItems);
    let n = 0;
    let w = 0;
    while (n < queue.length && n < maxItems) {
      const x = weigh(queue[n]!);
      if (n > 0 && w + x > budget) break;
      w += x;
      n++;
    }
    return queue.splice(0, n);
  }

  async #drain(dest: string, lane: Lane<T>): Promise<void> {
    lane.busy = true;
    try {
      while (lane.queue.length) await this.#send(dest, this.#take(lane.queue));
    } finally {
      // A sender that threw (a bug: it must settle its items) leaves the rest for the next push.
      lane.busy = false;
      if (!this.#init.keepIdle && lane.queue.length === 0) this.#lanes.delete(dest);
    }
  }
}
