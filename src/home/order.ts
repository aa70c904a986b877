// Order per sender across the two ways a message leaves its home (straight to a recipient's home,
// or through a group's home), how long a send waits for its answer, and how copies and posts are
// retried: the rules that keep a connection's messages in order whatever fails.
import { UnavailableError } from '../protocol/errors.ts';
import { COPY_DEADLINE_MS, RETRY_MS } from '../channel/timing.ts';
import type { Clock } from '../clock/index.ts';
import type { SendResult } from './types.ts';

/** A send not answered within this long is answered `unavailable`; its work goes on. */
export const ANSWER_MS = COPY_DEADLINE_MS;

export type Answerable = { resolve(r: SendResult): void; reject(e: Error): void };

/** Answers a send once `p` settles, or `unavailable` after ANSWER_MS: the work goes on (a copy
 * or post is never given up while it may still land), and a resend with the cid joins it. */
export function answer(w: Answerable, p: Promise<SendResult>, clock: Clock): void {
  let answered = false;
  const once = <A>(f: (a: A) => void) => (a: A) => {
    if (answered) return;
    answered = true;
    cancel();
    f(a);
  };
  const cancel = clock.after(ANSWER_MS, () => once(w.reject)(new UnavailableError('the message is still being handed over')));
  p.then(once(w.resolve), once(w.reject));
}

/** Runs `attempt` again while it fails with UnavailableError and `valid()` holds (this node is
 * still the home of every sender), until `signal` aborts. A sender's copies and group posts wait
 * for the ones made before them (see SenderOrder); were one given up after a timeout, the later
 * ones would go ahead and the given-up one, resent by the client or the outbox, would land behind
 * them: order per connection broken (seen under CPU load, when a group's fan-out outlasted the
 * router's deadline). */
export async function persist<T>(attempt: () => Promise<T>, valid: () => boolean, clock: Clock, signal?: AbortSignal): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      if ((e as Error).name !== 'UnavailableError' || !valid() || signal?.aborted) throw e;
      await clock.sleep(RETRY_MS, signal).catch(() => {
        throw e;
      });
    }
  }
}

export const settled = (p: Promise<unknown> | undefined): Promise<void> | undefined => p?.then(() => undefined, () => undefined);

export class SenderOrder {
  // Per sender, the newest 1:1 copy being handed over and the newest group post in flight: a
  // group post waits for the copies sent before it, and a copy for the posts before it, so that
  // a connection mixing 1:1 and group messages keeps its order at a recipient of both (the two
  // go different ways: straight to the recipient's home, or through the group's home).
  readonly lastCopy = new Map<string, Promise<unknown>>();
  readonly lastPost = new Map<string, Promise<unknown>>();
  // Per sender, the newest send still waiting for its recipient's admission: later sends of the
  // sender (direct or group) wait behind it, so that sends keep their order whatever each
  // admission takes (invariant 3).
  #admitting = new Map<string, Promise<void>>();

  /** `p` is now the newest of its kind for `from` (until it settles). */
  after(m: Map<string, Promise<unknown>>, from: string, p: Promise<unknown>): void {
    m.set(from, p);
    const clear = () => {
      if (m.get(from) === p) m.delete(from);
    };
    p.then(clear, clear);
  }

  /** Runs `run` once `gate` (the recipient's admission) and every earlier gated send of `from` are through. */
  inOrder(from: string, gate: true | Promise<void>, run: () => Promise<SendResult>): Promise<SendResult> {
    const prev = this.#admitting.get(from);
    if (gate === true && !prev) return run();
    const ready = Promise.all([prev, gate]);
    const out = ready.then(run);
    const entered = ready.then(() => undefined, () => undefined);
    this.#admitting.set(from, entered);
    void entered.then(() => {
      if (this.#admitting.get(from) === entered) this.#admitting.delete(from);
    });
    return out;
  }
}
