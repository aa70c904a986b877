// Per key, one batch at a time, with an answer per item: the ordered channel (ordered.ts) for
// work whose items each wait for a result. Used where order per key matters across retries
// (group posts from a sender's home, a group home's log, a user's contact changes), so that a
// later batch can never overtake an earlier one.
import { OrderedChannel } from './ordered.ts';

type Waiting<T, R> = { item: T; resolve(r: R): void; reject(e: Error): void };

/** `run` answers every item of the batch, in order: a value, or an Error for that item alone. */
export type BatchRun<T, R> = (key: string, items: T[]) => Promise<(R | Error)[]>;

export class KeyedBatcher<T, R> {
  #channel: OrderedChannel<Waiting<T, R>>;
  #keys = new Map<string, number>();

  /** A batch holds at most `maxBatch` items and, with `weigh`, items weighing at most
   * `maxWeight` together (always at least one item). */
  constructor(run: BatchRun<T, R>, maxBatch = 500, weigh?: (item: T) => number, maxWeight = Infinity) {
    this.#channel = new OrderedChannel<Waiting<T, R>>((key, batch) => this.#run(run, key, batch), {
      maxItems: maxBatch, limits: weigh ? [{ weigh: (w: Waiting<T, R>) => weigh(w.item), budget: maxWeight }] : [],
    });
  }

  add(key: string, item: T): Promise<R> {
    this.#keys.set(key, (this.#keys.get(key) ?? 0) + 1);
    const p = new Promise<R>((resolve, reject) => this.#channel.push(key, { item, resolve, reject }));
    const done = () => {
      const n = this.#keys.get(key)! - 1;
      if (n === 0) this.#keys.delete(key);
      else this.#keys.set(key, n);
    };
    p.then(done, done);
    return p;
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.#keys.size;
  }

  async #run(run: BatchRun<T, R>, key: string, batch: Waiting<T, R>[]): Promise<void> {
    try {
      const out = await run(key, batch.map((w) => w.item));
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
}
