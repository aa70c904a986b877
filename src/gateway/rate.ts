// Rate limits of a client connection: frames of any kind (a token bucket per connection; over it,
// frames are dropped with at most one error a second, and a connection that stays over it is
// closed), and typing notices (a smaller bucket of their own).
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';

/** A connection over its rate limit this long, without a second's pause, is closed (1008). */
const RATE_CLOSE_MS = 10_000;

/** Typing notices per connection: a burst of TYPING_BURST, then TYPING_PER_S per second. */
export const TYPING_BURST = 5;
export const TYPING_PER_S = 2;

/** A frame over the rate limit: dropped; one error a second at most; closed 1008 when the
 * connection stays over its limit (no second without a refused frame) for RATE_CLOSE_MS. */
export function refuse(g: Connections, cc: ClientConn, wait: number): void {
  const t = g.now();
  g.metrics.limits.inc({ limit: 'rate' });
  if (cc.overSince === undefined || t - cc.lastRefused > 1000) cc.overSince = t;
  cc.lastRefused = t;
  if (t - cc.overSince >= RATE_CLOSE_MS) {
    g.metrics.limits.inc({ limit: 'rate_close' });
    g.log.warn({ conn: cc.id, user: cc.session?.user }, 'client over its rate limit for 10 s, closing');
    g.close(cc, 1008, 'rate limit');
    return;
  }
  if (t - cc.lastLimitError < 1000) return;
  cc.lastLimitError = t;
  g.error(cc, null, 'rate_limited', `over ${g.config.rate} frames/s; frames are dropped; retry in ${wait} ms`);
}
