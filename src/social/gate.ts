// Admission on the sender's home: the recipient's home decides (`admitAt`), and the yeses it
// gave for direct messages and typing are kept here for a while, so that a conversation costs
// one `admit` per GATE_TTL_MS rather than one per message. A stricter rule revokes them.
import type { Logger } from 'pino';
import type { Refusal } from '../contacts/index.ts';
import { errorOf } from '../protocol/errors.ts';
import type { Clock } from '../clock/index.ts';
import type { AdmitKind } from './types.ts';

export const GATE_TTL_MS = 10_000;
/** How long an older yes still admits (while it is asked again): the outage of a recipient's home. */
export const GATE_STALE_MS = 3_600_000;
const GATE_MAX = 100_000;
export const REVOKE_WAIT_MS = 2000;

export type GateDeps = {
  admitAt: (to: string, from: string, kind: AdmitKind) => Promise<Refusal | undefined>;
  revokeEverywhere: (users: string[]) => Promise<void>;
  now: () => number;
  clock: Clock;
  signal: AbortSignal | undefined;
  log: Logger;
};

export class Gates {
  #d: GateDeps;
  // Sender side: recent yeses of `to` for `from` (to -> from -> until).
  #gates = new Map<string, Map<string, number>>();
  #count = 0;
  #asking = new Map<string, Promise<void>>();

  constructor(d: GateDeps) {
    this.#d = d;
  }

  gate(from: string, to: string, kind: AdmitKind): true | Promise<void> {
    if (to === from) return true;
    const until = this.#gates.get(to)?.get(from);
    // Typing follows the direct-message rule, so one cached yes serves both.
    const cacheable = kind === 'dm' || kind === 'typing';
    if (cacheable && until !== undefined) {
      if (until > this.#d.now()) return true;
      // An older yes (no revocation came since) admits now and is asked again meanwhile: a
      // conversation goes on while the recipient's home is unreachable (the copy waits in the
      // outbox), and a refusal the revocation missed stops the next message.
      if (until + GATE_STALE_MS > this.#d.now()) {
        this.#ask(from, to, kind, cacheable).catch(() => undefined);
        return true;
      }
    }
    return this.#ask(from, to, kind, cacheable);
  }

  /** One question at a time per sender, recipient and kind; a refusal drops the cached yes. */
  #ask(from: string, to: string, kind: AdmitKind, cacheable: boolean): Promise<void> {
    const k = `${kind}\0${to}\0${from}`;
    const going = this.#asking.get(k);
    if (going) return going;
    const p = this.#d.admitAt(to, from, kind).then((no) => {
      if (no) {
        this.#gates.get(to)?.delete(from);
        throw errorOf(no.code, no.message);
      }
      if (cacheable) this.#yes(to, from);
    });
    this.#asking.set(k, p);
    const done = () => this.#asking.delete(k);
    p.then(done, done);
    return p;
  }

  #yes(to: string, from: string): void {
    if (this.#count >= GATE_MAX) {
      this.#gates.clear();
      this.#count = 0;
    }
    let m = this.#gates.get(to);
    if (!m) this.#gates.set(to, (m = new Map()));
    if (!m.has(from)) this.#count++;
    m.set(from, this.#d.now() + GATE_TTL_MS);
  }

  /** Forgets the yeses these users gave (here only). */
  revoke(users: string[]): void {
    for (const u of users) {
      const m = this.#gates.get(u);
      if (m) {
        this.#count -= m.size;
        this.#gates.delete(u);
      }
    }
  }

  /** Forgets them here and on every other node, waiting at most REVOKE_WAIT_MS for the others
   * (no longer once the node stops). */
  async revokeAll(users: string[]): Promise<void> {
    this.revoke(users);
    const { clock, signal, log } = this.#d;
    const done = new AbortController();
    const stop = () => done.abort();
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted) done.abort();
    const late = clock.sleep(REVOKE_WAIT_MS, done.signal).catch(() => undefined);
    try {
      await Promise.race([this.#d.revokeEverywhere(users).catch((e: Error) => log.warn({ users, err: e.message }, 'revocation not confirmed by every node')), late]);
    } finally {
      done.abort();
      signal?.removeEventListener('abort', stop);
    }
  }
}
