// The posts of the groups this node pumps that wait for the fan-out cursor to pass their entry.
// Each gets an answer: true once the cursor is there, false after the deadline (the pump goes
// on), or UnavailableError once this node stops serving the group, or stops altogether.
import type { Clock } from '../clock/index.ts';
import { UnavailableError } from '../protocol/errors.ts';

type Waiter = { seq: number; resolve(): void; reject(e: Error): void };

export class PumpWaiters {
  #clock: Clock;
  #deadlineMs: number;
  #byGroup = new Map<string, Waiter[]>();

  constructor(clock: Clock, deadlineMs: number, signal?: AbortSignal) {
    this.#clock = clock;
    this.#deadlineMs = deadlineMs;
    // A stopping node answers every waiting post, so that no sender waits out the deadline.
    signal?.addEventListener('abort', () => {
      for (const group of this.groups()) this.abandon(group, `group ${group}: this node is stopping`);
    }, { once: true });
  }

  /** Resolves true once `advanced` passes `seq`, false after the deadline. */
  wait(group: string, seq: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let l = this.#byGroup.get(group);
      if (!l) this.#byGroup.set(group, (l = []));
      // The deadline is cancelled once the waiter has its answer otherwise.
      const w: Waiter = {
        seq,
        resolve: () => {
          cancel();
          resolve(true);
        },
        reject: (e: Error) => {
          cancel();
          reject(e);
        },
      };
      l.push(w);
      const cancel = this.#clock.after(this.#deadlineMs, () => {
        const now = this.#byGroup.get(group);
        if (now) {
          const i = now.indexOf(w);
          if (i >= 0) now.splice(i, 1);
        }
        resolve(false);
      });
    });
  }

  /** The groups with posts waiting. */
  groups(): string[] {
    return [...this.#byGroup.keys()];
  }

  /** This node stopped serving the group: its waiting posts are answered unavailable now (the
   * sender's retry reaches the next home, which resumes the fan-out from the cursor). */
  abandon(group: string, why = `group ${group} moved to another node while its message was fanned out`): void {
    const l = this.#byGroup.get(group);
    this.#byGroup.delete(group);
    for (const w of l ?? []) w.reject(new UnavailableError(why));
  }

  /** The group's fan-out cursor moved to `cursor`: the posts up to it are answered. */
  advanced(group: string, cursor: number): void {
    const l = this.#byGroup.get(group);
    if (!l) return;
    const keep = l.filter((w) => w.seq > cursor);
    for (const w of l) if (w.seq <= cursor) w.resolve();
    if (keep.length) this.#byGroup.set(group, keep);
    else this.#byGroup.delete(group);
  }
}
