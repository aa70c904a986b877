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
  #keys = new Map<string, { queue: Waiting<T, R>[]; busy: boolean }>();

  constructor(run: BatchRun<T, R>, maxBatch = 500) {
    this.#run = run;
    this.#max = maxBatch;
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
      const batch = k.queue.splice(0, this.#max);
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
