// One destination's drain: while there is work, take a batch and send it, one batch at a time.
// The rule every ordered sender between nodes shares (OrderedChannel's queues of items, a
// replica's queue of users): a later batch is taken only once the earlier one is answered, so it
// can never overtake it. What a batch holds and how it is sent is the owner's.

export type DrainWork = {
  /** Whether there is something to send now. */
  more(): boolean;
  /** Takes one batch and sends it; resolves once it is answered (or given up). */
  next(): Promise<void>;
  /** A `next` that threw: the drain stops; the next kick() starts it again. */
  failed?(e: Error): void;
};

export class Drain {
  #work: DrainWork;
  #busy = false;

  constructor(work: DrainWork) {
    this.#work = work;
  }

  /** A batch is in flight. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Starts draining unless a batch is already in flight (that drain takes what came meanwhile). */
  kick(): void {
    if (!this.#busy) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#work.more()) await this.#work.next();
    } catch (e) {
      this.#work.failed?.(e as Error);
    } finally {
      this.#busy = false;
    }
  }
}
