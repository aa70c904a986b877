// Time, injected: every role takes a Clock instead of calling Date.now() and setTimeout itself,
// so that unit tests drive time by hand and stop() can cut every wait short through its signal.

export type Clock = {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Runs `fn` after `ms` unless cancelled first: a deadline. Cheaper than a sleep with a signal
   * (no AbortController, no event), for the deadlines set once per message or request. */
  after(ms: number, fn: () => void): () => void;
};

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  }),
  after: (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
};

/** A clock that moves only when told: `advance(ms)` runs every sleep that falls due, in order. */
export class ManualClock implements Clock {
  #t: number;
  #sleepers: { at: number; resolve(): void }[] = [];

  constructor(start = 0) {
    this.#t = start;
  }

  now(): number {
    return this.#t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const s = { at: this.#t + Math.max(0, ms), resolve };
      this.#sleepers.push(s);
      signal?.addEventListener('abort', () => {
        this.#sleepers = this.#sleepers.filter((x) => x !== s);
        reject(signal.reason);
      }, { once: true });
    });
  }

  after(ms: number, fn: () => void): () => void {
    const s = { at: this.#t + Math.max(0, ms), resolve: fn };
    this.#sleepers.push(s);
    return () => {
      this.#sleepers = this.#sleepers.filter((x) => x !== s);
    };
  }

  /** Moves time on by `ms`, waking sleepers due on the way (each after the microtasks it starts). */
  async advance(ms: number): Promise<void> {
    const end = this.#t + ms;
    for (;;) {
      const due = this.#sleepers.filter((s) => s.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#sleepers = this.#sleepers.filter((s) => s !== due);
      this.#t = Math.max(this.#t, due.at);
      due.resolve();
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
    this.#t = end;
  }

  /** How many sleeps are waiting (a test's way to see that a loop is parked, or has stopped). */
  get waiting(): number {
    return this.#sleepers.length;
  }
}
