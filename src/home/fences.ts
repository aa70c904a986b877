// Fences keep a connection's sends in order across a refusal the gateway cannot call back. Sends
// of one connection reach its user's home in order and several at once; when the home refuses
// one (it does not serve the sender yet, or any more), the next ones may already be on their way,
// and the home may serve again by the time they arrive. Taking them would put them ahead of the
// refused send, which the gateway or the client then sends again. So a refusal fences the
// connection's lane at the send's epoch: later sends of that epoch are refused too. The lane
// moves to the next epoch once it learns of a refusal (gateway/lane.ts), so its retries, made in
// its order, pass. Bounded: past MAX_FENCES lanes the oldest fence goes (its lane has long retried).
import type { LaneMark } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';

export const MAX_FENCES = 10_000;

export class Fences {
  #fenced = new Map<string, number>(); // lane → the highest epoch refused

  /** Whether a send with mark `m` must be refused because an earlier one of its epoch was. */
  blocks(m: LaneMark | undefined): boolean {
    if (!m) return false;
    const e = this.#fenced.get(m.lane);
    return e !== undefined && m.epoch <= e;
  }

  /** A send with mark `m` was refused: its epoch is fenced. */
  refused(m: LaneMark | undefined): void {
    if (!m) return;
    const e = this.#fenced.get(m.lane);
    if (e !== undefined && e >= m.epoch) return;
    this.#fenced.delete(m.lane);
    this.#fenced.set(m.lane, m.epoch);
    if (this.#fenced.size > MAX_FENCES) this.#fenced.delete(this.#fenced.keys().next().value!);
  }

  /** A send with mark `m` was taken: a fence below its epoch has done its work. */
  taken(m: LaneMark | undefined): void {
    if (m && this.#fenced.has(m.lane) && !this.blocks(m)) this.#fenced.delete(m.lane);
  }

  /** A recipient's gate (social/gate.ts) that cannot answer now refuses the send: the fence is
   * set as it fails, before the connection's later sends run, since they run behind this gate. */
  gate(gate: true | Promise<void>, m: LaneMark | undefined): true | Promise<void> {
    if (gate === true || !m) return gate;
    return gate.catch((e: Error) => {
      if (e instanceof UnavailableError) this.refused(m);
      throw e;
    });
  }

  get size(): number {
    return this.#fenced.size;
  }
}
