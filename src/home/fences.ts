// Fences keep a connection's sends in order across a refusal the gateway cannot call back. Sends
// of one connection reach its user's home in order and several at once; when the home refuses
// one (it does not serve the sender yet, or any more), the next ones may already be on their way,
// and the home may serve again by the time they arrive. Taking them would put them ahead of the
// refused send, which the gateway or the client then sends again. So a refusal fences the
// connection's lane at the send's epoch: later sends of that epoch are refused too. The lane
// moves to the next epoch once it learns of a refusal (gateway/lane.ts), so its retries, made in
// its order, pass. Bounded: past MAX_FENCES lanes the oldest fence goes (its lane has long retried).
//
// A send the link lost never reaches the home to be refused, while the next one, sent behind it,
// may arrive on a new stream. So the home also keeps, per lane, the latest attempt that arrived,
// and refuses (and fences) a send whose `after` it has not seen (arrives).
import type { LaneMark } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';

export const MAX_FENCES = 10_000;
/** Why a send whose `after` never arrived is refused. */
export const LOST = 'an earlier send of this connection did not arrive here; it goes again first';
/** Lanes whose latest arrival is kept; past it the least recent goes, and a send behind one of
 * its unanswered sends is refused once more (its retry, behind the earlier one, passes). */
export const MAX_SEEN = 50_000;

export class Fences {
  #fenced = new Map<string, number>(); // lane → the highest epoch refused
  #open = new Map<string, { to: string; n: number }>(); // lane → its sends this home holds, not yet answered
  #away = new Map<string, { to: string; n: number }>(); // lane → its sends passed on from here, not yet answered
  #seen = new Map<string, number>(); // lane → the highest attempt number that arrived here, least recent first

  /**
   * A send with mark `m` arrives at this node (to be taken here or passed on), in the order of its
   * link. Whether it must be refused because the attempt it was sent behind (`m.after`) never
   * arrived: the link lost that one, which its gateway retries behind this one. If so, its epoch
   * is fenced, so the rest of the epoch is refused too.
   */
  arrives(m: LaneMark | undefined): boolean {
    if (!m || m.n === undefined) return false;
    const seen = this.#seen.get(m.lane);
    this.#seen.delete(m.lane);
    this.#seen.set(m.lane, Math.max(seen ?? 0, m.n));
    if (this.#seen.size > MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value!);
    if (m.after === undefined || (seen !== undefined && seen >= m.after)) return false;
    this.refused(m);
    return true;
  }

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

  /** `p`, a send with mark `m`, is held in this home until it settles (answered). */
  during<T>(m: LaneMark | undefined, p: Promise<T>): Promise<T> {
    return m ? this.#track(this.#open, m.lane, '', p) : p;
  }

  /** `p`, a send with mark `m`, is on its way from this node to `to` (passed on: the ring names
   * another home) until it settles. */
  passing<T>(m: LaneMark | undefined, to: string, p: Promise<T>): Promise<T> {
    return m ? this.#track(this.#away, m.lane, to, p) : p;
  }

  /**
   * Whether this home must refuse a send with mark `m` rather than take it: an earlier one of its
   * epoch was refused here, or an earlier one of its lane is on its way from this node to another
   * (its ring moved the sender here meanwhile), whose answer may be a refusal the gateway retries
   * behind this one. In the second case the epoch is fenced now.
   */
  refuses(m: LaneMark | undefined): boolean {
    if (this.blocks(m)) return true;
    if (!m || !this.#away.has(m.lane)) return false;
    this.refused(m);
    return true;
  }

  /**
   * Whether a send with mark `m` that this node does not serve (any more) would overtake an earlier
   * send of its lane if passed on to `to`, the home its ring names: one this home refused (fenced)
   * or still holds, or one passed on to another node and not yet answered. The ring may move the
   * sender between two sends of one connection that reached this node; the first ones are refused
   * as they come up (their user is no longer this home's), the later one would be taken by the new
   * home first. If so, its epoch is fenced here: it is refused, like the rest of its epoch, and
   * comes back behind the earlier ones. Sends passed on to the same node keep their order (the
   * link to a node is FIFO).
   */
  overtakes(m: LaneMark | undefined, to: string): boolean {
    if (!m) return false;
    const away = this.#away.get(m.lane);
    if (!(this.blocks(m) || this.#open.has(m.lane) || (away && away.to !== to))) return false;
    this.refused(m);
    return true;
  }

  /** Bounded by the sends in flight, which the gateways bound per connection. */
  #track<T>(map: Map<string, { to: string; n: number }>, lane: string, to: string, p: Promise<T>): Promise<T> {
    const cur = map.get(lane);
    // Passed on to a new node while some are still on their way to another: overtakes refused it.
    map.set(lane, { to, n: (cur?.to === to ? cur.n : 0) + 1 });
    return p.finally(() => {
      const c = map.get(lane);
      if (!c || c.to !== to) return;
      if (c.n > 1) c.n--;
      else map.delete(lane);
    });
  }

  get size(): number {
    return this.#fenced.size;
  }
}
