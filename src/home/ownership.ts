// Whether the home may write or read a user now: the ring (and lease, and custody) say it owns
// the user, and no handoff has paused the user's writes.
import { UnavailableError } from '../protocol/errors.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';

export class Ownership {
  // Users being handed to a newcomer: no writes until the ring moves them (answered unavailable,
  // which is safe to retry), so that the copy the newcomer takes is final.
  #freezes = new Set<(user: string) => boolean>();
  #ringOwns: (user: string) => boolean;
  #whyNot: ((user: string) => string) | undefined;
  #clock: Clock;

  constructor(ringOwns: ((user: string) => boolean) | undefined, whyNot: ((user: string) => string) | undefined, clock: Clock = systemClock) {
    this.#ringOwns = ringOwns ?? (() => true);
    this.#whyNot = whyNot;
    this.#clock = clock;
  }

  #frozen(user: string): boolean {
    for (const f of this.#freezes) if (f(user)) return true;
    return false;
  }

  /** May write: owned, and not paused by a handoff. */
  owns = (user: string): boolean => this.#ringOwns(user) && !(this.#freezes.size && this.#frozen(user));

  /** May read and log in: reads go on while a user's writes pause for a handoff (the data is final then). */
  serves = (user: string): boolean => this.#ringOwns(user);

  whyNot = (user: string): string => this.#whyNot?.(user) ?? `${user} is moving to another node`;

  // Ownership is checked again when a write is applied, not only when the call was routed: the
  // ring may have moved the user (or a handoff paused it) while the call waited in the queue,
  // and a write applied by a former home would be confirmed without reaching the new one.
  refuseUnowned(user: string): void {
    if (!this.owns(user)) throw new UnavailableError(this.whyNot(user));
  }

  refuseUnserved(user: string): void {
    if (!this.#ringOwns(user)) throw new UnavailableError(this.whyNot(user));
  }

  /** Stops writing to the selected users until `release` or `ms`. */
  freeze(select: (user: string) => boolean, ms: number): { release(): void } {
    this.#freezes.add(select);
    const released = new AbortController();
    this.#clock.sleep(ms, released.signal).then(() => this.#freezes.delete(select), () => undefined);
    return {
      release: () => {
        released.abort();
        this.#freezes.delete(select);
      },
    };
  }
}
