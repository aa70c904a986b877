// Writes waiting for their replicas: a home confirms a write of a user only once every current
// replica of the user has everything committed for it up to the write, and only while it is still
// the user's home with the lease. Otherwise the write is not confirmed (unavailable): the client
// retries the same cid, and that is what makes "nothing acknowledged is lost" true.
import { UnavailableError } from '../protocol/errors.ts';
import type { Clock } from '../clock/index.ts';

export type ConfirmEnv = {
  clock: Clock;
  deadlineMs: number;
  replicasOf(user: string): string[];
  /** Why a home must not confirm a write of `user` now, if it must not. */
  unconfirmable(user: string): string | undefined;
  /** The version of `user`'s items that `replica` acknowledged (0: none). */
  acked(replica: string, user: string): number;
  signal: AbortSignal | undefined;
};

// `required`: per replica, the version of the user's items it must acknowledge.
type Waiter = { user: string; required: Map<string, number>; resolve(): void; reject(e: Error): void; cancel(): void };

const STOPPING = 'this node is stopping: the write is not confirmed';

export class Confirmations {
  readonly #waiters = new Map<string, Set<Waiter>>(); // by user, each set in arrival order
  readonly #env: ConfirmEnv;

  constructor(env: ConfirmEnv) {
    this.#env = env;
    env.signal?.addEventListener('abort', () => this.#stopped(), { once: true });
  }

  /** Resolves once every replica in `required` acknowledged its version, within the deadline.
   * The deadline is a timer per write, cleared as soon as it is confirmed (not a pause to retry). */
  wait(user: string, required: Map<string, number>): Promise<void> {
    if (this.#env.signal?.aborted) return Promise.reject(new UnavailableError(STOPPING));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        user, required, resolve, reject,
        cancel: this.#env.clock.after(this.#env.deadlineMs, () => {
          this.#forget(w);
          reject(new UnavailableError(`the replicas of ${user} did not confirm in time`));
        }),
      };
      let ws = this.#waiters.get(user);
      if (!ws) this.#waiters.set(user, (ws = new Set()));
      ws.add(w);
    });
  }

  /** Answers the writes of `user` that can be answered now. */
  settle(user: string): void {
    const { unconfirmable, replicasOf, acked } = this.#env;
    for (const w of this.#waiters.get(user) ?? []) {
      const no = unconfirmable(user);
      if (no) {
        // No longer the home (a ring change, or this node was declared dead), or cut off from the
        // majority: the replicas it waited for may never have the write, or the others may have
        // given the user to another home. Not confirmed; the client retries the same cid.
        this.#fail(w, no);
        continue;
      }
      if (replicasOf(user).every((r) => acked(r, user) >= (w.required.get(r) ?? 1))) {
        this.#forget(w);
        w.cancel();
        w.resolve();
      }
    }
  }

  /** Every user with writes waiting (after a ring change, each is settled again). */
  users(): string[] {
    return [...this.#waiters.keys()];
  }

  /** Writes this node made as the user's home and never confirmed are gone with a stale copy that
   * was replaced: they must not be confirmed later, when its seqs hold other messages. */
  replaced(user: string): void {
    for (const w of [...(this.#waiters.get(user) ?? [])]) this.#fail(w, `${user}: this write was replaced by the home's copy`);
  }

  #fail(w: Waiter, message: string): void {
    this.#forget(w);
    w.cancel();
    w.reject(new UnavailableError(message));
  }

  #forget(w: Waiter): void {
    const ws = this.#waiters.get(w.user);
    ws?.delete(w);
    if (ws?.size === 0) this.#waiters.delete(w.user);
  }

  /** The node stops: no replica will acknowledge anything now, every waiting write hears so. */
  #stopped(): void {
    for (const ws of [...this.#waiters.values()]) for (const w of [...ws]) this.#fail(w, STOPPING);
  }
}
