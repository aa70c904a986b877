// Refused peer traffic: every refusal is counted (im_peer_refused_total), and warned about at most
// once per (type, reason) every REFUSED_LOG_MS with the count since, so a peer that keeps asking
// cannot flood the log.
import type { Logger } from 'pino';
import type { Clock } from '../clock/index.ts';
import type { PeerReply } from '../protocol/peer.ts';
import type { RefuseReason } from './peer-auth.ts';

/** One warning per (type, reason) this often, with the count since the last one. */
const REFUSED_LOG_MS = 10_000;

export class Refusals {
  #log: Logger;
  #clock: Clock;
  #nameOf: (peer: string) => string | undefined;
  #onRefused: ((type: string, reason: RefuseReason) => void) | undefined;
  #seen = new Map<string, { at: number; n: number }>();

  constructor(log: Logger, clock: Clock, nameOf: (peer: string) => string | undefined, onRefused?: (type: string, reason: RefuseReason) => void) {
    this.#log = log;
    this.#clock = clock;
    this.#nameOf = nameOf;
    this.#onRefused = onRefused;
  }

  /** Counts a refusal and warns about it at most once per REFUSED_LOG_MS per (type, reason). */
  refused(type: string, reason: RefuseReason, peer: string, message: string, what = 'peer request refused'): void {
    this.#onRefused?.(type, reason);
    const k = `${type}:${reason}`;
    const now = this.#clock.now();
    const r = this.#seen.get(k) ?? { at: 0, n: 0 };
    this.#seen.set(k, r);
    r.n++;
    if (now - r.at < REFUSED_LOG_MS) {
      this.#log.debug({ peer, type, reason, err: message }, what);
      return;
    }
    this.#log.warn({ peer, name: this.#nameOf(peer), type, reason, err: message, count: r.n }, `${what} (counted in im_peer_refused_total)`);
    r.at = now;
    r.n = 0;
  }
}

/** The reply to a refused request. */
export const refuse = (code: 'unavailable' | 'forbidden', message: string): PeerReply => ({ t: 'fail', code, message: `refused: ${message}` });
