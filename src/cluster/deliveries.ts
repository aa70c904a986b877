// Copies handed to their recipients' homes. Deliveries to one destination node go out in order,
// one batch in flight at a time, so that messages from one connection land in each recipient's
// timeline in the order they were sent. A copy that has to be retried (its home died, moved, or
// paused it) holds back every later copy for the same recipient until it is routed again, so a
// newer copy cannot overtake it on the next ring. Private to src/cluster (see router.ts).
import { entryWireChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { Delivery } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { OrderedChannel } from '../channel/ordered.ts';
import type { RouterContext } from './router-context.ts';

const DELIVER_BATCH = 1000;

type Pending = { d: Delivery; deadline: number; resolve(): void; reject(e: Error): void };

export class Deliveries {
  #x: RouterContext;
  // Up to DELIVER_BATCH copies per request, and few enough large ones that it fits a peer frame.
  #channel = new OrderedChannel<Pending>((dest, batch) => this.#send(dest, batch), {
    maxItems: DELIVER_BATCH, limits: [{ weigh: (p) => entryWireChars(p.d.body), budget: PEER_BUDGET_CHARS }], keepIdle: true,
  });
  #held = new Map<string, Pending[]>();

  constructor(x: RouterContext) {
    this.#x = x;
  }

  /** Hands a copy to the recipient's home; resolves when durable there. */
  deliver(d: Delivery): Promise<void> {
    return new Promise((resolve, reject) => this.#route({ d, deadline: this.#x.clock.now() + this.#x.deadlineMs, resolve, reject }));
  }

  #route(p: Pending): void {
    const wait = this.#held.get(p.d.user);
    if (wait) {
      wait.push(p);
      return;
    }
    const { c, self } = this.#x;
    const owner = c.joined() ? c.ring().owner(p.d.user) : undefined;
    if (owner === self) {
      // Unavailable here means the recipient is being handed to a newcomer: retry on the new ring.
      this.#x.side.local.deliver([p.d]).then(p.resolve, (e: Error) => (e.name === 'UnavailableError' ? this.#retry([p], e.message) : p.reject(e)));
      return;
    }
    this.#channel.push(owner ?? '', p);
  }

  /** Routes `ps` again on the next ring (or after RETRY_MS), ahead of every later copy for the
   * same recipients, which wait with them (also those already queued behind them). Once the
   * signal aborted they are given back as unavailable instead. */
  #retry(ps: Pending[], why: string): void {
    const users = this.#hold(this.#expire(ps, why));
    if (users.size === 0) return;
    this.#x.c.onForward?.('retry');
    void this.#x.pause().then((go) => {
      for (const u of users) {
        const wait = this.#held.get(u) ?? [];
        this.#held.delete(u);
        for (const p of wait) {
          if (go) this.#route(p);
          else p.reject(new UnavailableError(`the home of ${p.d.user} is not reachable (${why}; this node is stopping)`));
        }
      }
    });
  }

  /** Gives back the copies past their deadline; returns the others. */
  #expire(ps: Pending[], why: string): Pending[] {
    // A recipient with a copy past its deadline: every copy for it is given back, in mid order (a
    // sender's mids rise with its sends), so that the senders' retries route them again in that
    // order. Were only the late one given back, its retry would queue behind the later copies
    // still held here, and land after them (seen when a recipient's home was cut off).
    const now = this.#x.clock.now();
    const expired = new Set(ps.filter((p) => now >= p.deadline).map((p) => p.d.user));
    if (expired.size === 0) return ps;
    const out = ps.filter((p) => expired.has(p.d.user));
    for (const u of expired) {
      out.push(...(this.#held.get(u) ?? []));
      this.#held.delete(u);
    }
    out.push(...this.#channel.withdraw((p) => expired.has(p.d.user)));
    out.sort((a, b) => (a.d.mid < b.d.mid ? -1 : a.d.mid > b.d.mid ? 1 : 0));
    for (const p of out) p.reject(new UnavailableError(`the home of ${p.d.user} is not reachable (${why})`));
    return ps.filter((p) => !expired.has(p.d.user));
  }

  /** Holds `ps`, and every copy queued for the same recipients, until they are routed again;
   * returns the recipients newly held (their wait ends with the next retry pause). */
  #hold(ps: Pending[]): Set<string> {
    const users = new Set<string>();
    for (const p of ps) {
      let wait = this.#held.get(p.d.user);
      if (!wait) {
        this.#held.set(p.d.user, (wait = []));
        users.add(p.d.user);
      }
      wait.push(p);
    }
    if (users.size === 0) return users;
    for (const p of this.#channel.withdraw((q) => users.has(q.d.user))) this.#held.get(p.d.user)!.push(p);
    return users;
  }

  /** One request to `dest`'s node; copies it did not take are routed again (see #retry). */
  async #send(dest: string, batch: Pending[]): Promise<void> {
    const c = this.#x.c;
    const peer = dest ? c.peerOf(dest) : undefined;
    if (!peer) {
      this.#retry(batch, `no address for ${dest || 'the owner'}`);
      return;
    }
    c.onForward?.('forward');
    try {
      const reply = parsePeerReply(await c.link.request(peer, { t: 'deliver', rv: c.ring().version, items: batch.map((p) => p.d) }, { timeoutMs: this.#x.left(Math.min(...batch.map((p) => p.deadline))) }));
      if (reply.t === 'fail') throw new Error(reply.message);
      const results = reply.value;
      if (!Array.isArray(results) || results.length !== batch.length) throw new Error(`malformed deliver reply from ${dest}`);
      const again: Pending[] = [];
      batch.forEach((p, i) => (results[i] === 'ok' ? p.resolve() : again.push(p)));
      if (again.length) this.#retry(again, `${dest}: ${String(results[batch.indexOf(again[0]!)])}`);
    } catch (e) {
      this.#retry(batch, `${dest}: ${(e as Error).message}`);
    }
  }
}
