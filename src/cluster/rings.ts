// The ring this node routes by, the one it replaced (still good for authorization a while), and
// the waits for the next change. Rings are immutable: a change builds a new one and swaps it in.
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { Clock } from '../clock/index.ts';

/** How long the ring before the current one still names who may deliver, fan out or absorb: a
 * sender's ring may be a change behind (or ahead of) ours while a change spreads. One ring back
 * only: older ones (a cluster forming: one member, then two) would name a node for many keys. */
const RING_GRACE_MS = 30_000;
const MAX_OLD_RINGS = 1;

export class RingHistory {
  current: Ring;
  #opts: { vnodes?: number | undefined; replicas?: number | undefined };
  #clock: Clock;
  // Rings replaced within RING_GRACE_MS, newest first: authorization accepts their homes too.
  #old: { ring: Ring; until: number }[] = [];
  #waiters: (() => void)[] = [];

  constructor(members: string[], opts: { vnodes?: number | undefined; replicas?: number | undefined }, clock: Clock) {
    this.#opts = opts;
    this.#clock = clock;
    this.current = createRing(members, opts);
  }

  /** Builds the ring of `members` and makes it current; returns the one it replaced. */
  swap(members: string[]): Ring {
    const prev = this.current;
    this.current = createRing(members, this.#opts);
    const now = this.#clock.now();
    this.#old = [{ ring: prev, until: now + RING_GRACE_MS }, ...this.#old].filter((o) => o.until > now).slice(0, MAX_OLD_RINGS);
    return prev;
  }

  /** The current ring first, then the ones it replaced within the grace period (newest first). */
  recent(): Ring[] {
    const now = this.#clock.now();
    return [this.current, ...this.#old.filter((o) => o.until > now).map((o) => o.ring)];
  }

  /** Resolves on the next ring change (see wake), after `ms`, or once `signal` aborts. */
  change(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise<void>((ok) => {
      // Ends the sleep too when the ring changes first, so no timer is left behind.
      const timer = new AbortController();
      const end = () => {
        signal?.removeEventListener('abort', end);
        timer.abort();
        ok();
      };
      this.#waiters.push(end);
      signal?.addEventListener('abort', end, { once: true });
      this.#clock.sleep(ms, timer.signal).then(end, () => undefined);
    });
  }

  /** Ends every wait for a ring change (the ring changed, or the cluster stops). */
  wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const ok of w) ok();
  }
}
