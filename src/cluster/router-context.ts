// What the router's parts share: its components, its clock and signal, its timeouts, and the
// pause before a retry. Private to src/cluster (see router.ts).
import type { Logger } from 'pino';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { CALL_DEADLINE_MS, RETRY_MS } from '../channel/timing.ts';
import type { RouterComponents } from './router.ts';
import type { HomeSide } from './home-calls.ts';

/** A peer request's timeout when the components name none. */
const REQUEST_TIMEOUT_MS = 5000;

export class RouterContext {
  readonly c: RouterComponents;
  readonly self: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly signal: AbortSignal | undefined;
  readonly side: HomeSide;
  /** How long a call or a delivery keeps retrying before the client is told `unavailable`. */
  readonly deadlineMs: number;
  readonly timeoutMs: number;

  constructor(c: RouterComponents) {
    this.c = c;
    this.self = c.self;
    this.log = c.log;
    this.clock = c.clock ?? systemClock;
    this.signal = c.signal;
    this.side = c.locals;
    this.deadlineMs = c.deadlineMs ?? CALL_DEADLINE_MS;
    this.timeoutMs = c.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  }

  /** The request timeout left before a deadline (at least 100 ms). */
  left(deadline: number): number {
    return Math.max(100, Math.min(this.timeoutMs, deadline - this.clock.now()));
  }

  /** Whether this node is the home of `key` by its ring (and joined at all). */
  owned(key: string): boolean {
    return this.c.joined() && this.c.ring().owner(key) === this.self;
  }

  /** Waits for the next ring, or RETRY_MS, before a retry; false (at once) once the signal aborted:
   * the caller stops retrying. */
  async pause(): Promise<boolean> {
    const signal = this.signal;
    if (!signal) {
      await this.c.ringChange(RETRY_MS);
      return true;
    }
    if (signal.aborted) return false;
    let stop!: () => void;
    const aborted = new Promise<void>((resolve) => (stop = resolve));
    signal.addEventListener('abort', stop, { once: true });
    try {
      await Promise.race([this.c.ringChange(RETRY_MS, signal), aborted]);
    } finally {
      signal.removeEventListener('abort', stop);
    }
    return !signal.aborted;
  }
}
