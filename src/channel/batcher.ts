// Per key, one batch at a time: items added while a batch runs wait and go together in the next
// one, in the order they were added. Used where order per key matters across retries (group
// posts from a sender's home, a group home's log and fan-out), so that a later batch can never
// overtake an earlier one.

type Waiting<T, R> = { item: T; resolve(r: R): void; reject(e: Error): void };

/** `run` answers every item of the batch, in order: a value, or an Error for that item alone. */
export type BatchRun<T, R> = (key: string, items: T[]) => Promise<(R | Error)[]>;

export class KeyedBatcher<T, R> {
  #run: BatchRun<T, R>;
  #max: number;
  #weigh: ((item: T) => number) | undefined;
  #maxWeight: number;
  #keys = new Map<string, { queue: Waiting<T, R>[]; busy: boolean }>();

  /** A batch holds at most `maxBatch` items and, with `weigh`, items weighing at most
   * `maxWeight` together (always at least one item). */
  constructor(run: BatchRun<T, R>, maxBatch = 500, weigh?: (item: T) => number, maxWeight = Infinity) {
    this.#run = run;
    this.#max = maxBatch;
    this.#weigh = weigh;
    this.#maxWeight = maxWeight;
  }

  #take(queue: Waiting<T, R>[]): Waiting<T, R>[] {
    if (!this.#weigh) return queue.splice(0, this.#max);
    let n = 0;
    let w = 0;
    while (n < queue.length && n < this.#max) {
      const x = this.#weigh(queue[n]!.item);
      if (n > 0 && w + x > this.#maxWeight) break;
      w += x;
      n++;
    }
    return queue.splice(0, n);
  }

  add(key: string, item: T): Promise<R> {
    let k = this.#keys.get(key);
    if (!k) this.#keys.set(key, (k = { queue: [], busy: false }));
    const p = new Promise<R>((resolve, reject) => k.queue.push({ item, resolve, reject }));
    if (!k.busy) void this.#drain(key, k);
    return p;
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.#keys.size;
  }

  async #drain(key: string, k: { queue: Waiting<T, R>[]; busy: boolean }): Promise<void> {
    k.busy = true;
    while (k.queue.length) {
      const batch = this.#take(k.queue);
      try {
        const out = await this.#run(key, batch.map((w) => w.item));
        batch.forEach((w, i) => {
          const r = out[i];
          if (r instanceof Error) w.reject(r);
          else if (i >= out.length) w.reject(new Error('batch answered fewer items than it was given'));
          else w.resolve(r as R);
        });
      } catch (e) {
        for (const w of batch) w.reject(e as Error);
      }
    }
    k.busy = false;
    this.#keys.delete(key);
  }
}
