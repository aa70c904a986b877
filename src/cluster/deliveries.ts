// Copies handed to their recipients' homes. Deliveries to one destination node go out in order,
// one batch in flight at a time, so that messages from one connection land in each recipient's
// timeline in the order they were sent. A copy that has to be retried (its home died, moved, or
// paused it) holds back every later copy for the same recipient until it is routed again, so a
// newer copy cannot overtake it on the next ring. So does a copy still queued or in flight to the
// recipient's former home when the ring names another: a later copy waits until the earlier ones
// are answered (or retried, ahead of it). Private to src/cluster (see router.ts).
import { entryWireChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { Delivery } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { OrderedChannel } from '../channel/ordered.ts';
import type { RouterContext } from './router-context.ts';

const DELIVER_BATCH = 1000;

/** `out`: where the copy is queued or in flight (a node, this one included), until it is answered. */
type Pending = { d: Delivery; deadline: number; resolve(): void; reject(e: Error): void; out?: string };

const byMid = (a: Pending, b: Pending) => (a.d.mid < b.d.mid ? -1 : a.d.mid > b.d.mid ? 1 : 0);

export class Deliveries {
  #x: RouterContext;
  // Up to DELIVER_BATCH copies per request, and few enough large ones that it fits a peer frame.
  #channel = new OrderedChannel<Pending>((dest, batch) => this.#send(dest, batch), {
    maxItems: DELIVER_BATCH, limits: [{ weigh: (p) => entryWireChars(p.d.body), budget: PEER_BUDGET_CHARS }], keepIdle: true,
  });
  #held = new Map<string, Pending[]>();
  // Per recipient: where its copies queued or in flight go, and how many there are. Bounded by the
  // copies in flight, which the senders' homes bound.
  #out = new Map<string, { dest: string; n: number }>();
  // Recipients held only because earlier copies are still out to another node: released once
  // those are answered, not by a retry pause.
  #parked = new Set<string>();

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
    const dest = owner ?? '';
    const out = this.#out.get(p.d.user);
    if (out && out.dest !== dest) {
      // The ring moved the recipient while earlier copies for it are still on their way to its
      // former home: taken at the new one first, this copy would land ahead of them.
      this.#held.set(p.d.user, [p]);
      this.#parked.add(p.d.user);
      return;
    }
    this.#goesTo(p, dest);
    if (owner === self) {
      // Unavailable here means the recipient is being handed to a newcomer: retry on the new ring.
      this.#x.side.local.deliver([p.d]).then(() => {
        this.#back([p]);
        p.resolve();
      }, (e: Error) => {
        if (e.name === 'UnavailableError') return this.#retry([p], e.message);
        this.#back([p]);
        p.reject(e);
      });
      return;
    }
    this.#channel.push(dest, p);
  }

  /** `p` goes to `dest` (queued, then in flight) until it is answered. */
  #goesTo(p: Pending, dest: string): void {
    p.out = dest;
    const out = this.#out.get(p.d.user);
    if (out) out.n++;
    else this.#out.set(p.d.user, { dest, n: 1 });
  }

  /** `ps` are no longer out (answered, withdrawn, or to be retried); a recipient parked behind
   * them goes again once none is. */
  #back(ps: Pending[]): void {
    const free: string[] = [];
    for (const p of ps) {
      if (p.out === undefined) continue;
      delete p.out;
      const u = p.d.user;
      const out = this.#out.get(u);
      if (!out) continue;
      if (--out.n > 0) continue;
      this.#out.delete(u);
      if (this.#parked.delete(u)) free.push(u);
    }
    for (const u of free) {
      const wait = this.#held.get(u) ?? [];
      this.#held.delete(u);
      for (const p of wait) this.#route(p);
    }
  }

  /** Routes `ps` again on the next ring (or after RETRY_MS), ahead of every later copy for the
   * same recipients, which wait with them (also those already queued behind them). Once the
   * signal aborted they are given back as unavailable instead. */
  #retry(ps: Pending[], why: string): void {
    // Held (ahead of any later copy parked behind them) before they count as back.
    const users = this.#hold(this.#expire(ps, why));
    this.#back(ps);
    if (users.size === 0) return;
    this.#x.c.onForward?.('retry');
    void this.#x.pause().then((go) => {
      for (const u of users) {
        const wait = this.#held.get(u) ?? [];
        this.#held.delete(u);
        this.#parked.delete(u);
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
      this.#parked.delete(u);
    }
    const queued = this.#channel.withdraw((p) => expired.has(p.d.user));
    out.push(...queued);
    this.#back(queued);
    out.sort(byMid);
    for (const p of out) p.reject(new UnavailableError(`the home of ${p.d.user} is not reachable (${why})`));
    return ps.filter((p) => !expired.has(p.d.user));
  }

  /** Holds `ps`, and every copy queued for the same recipients, until they are routed again;
   * returns the recipients newly held (their wait ends with the next retry pause). */
  #hold(ps: Pending[]): Set<string> {
    const users = new Set<string>();
    const joined = new Set<string>();
    for (const p of ps) {
      let wait = this.#held.get(p.d.user);
      if (!wait) {
        this.#held.set(p.d.user, (wait = []));
        users.add(p.d.user);
      } else if (!users.has(p.d.user)) joined.add(p.d.user);
      wait.push(p);
    }
    // Joining a list already held (parked behind them, or waiting for a pause): these are earlier
    // than what waits there, and a sender's mids rise with its sends.
    for (const u of joined) this.#held.get(u)!.sort(byMid);
    if (users.size === 0) return users;
    const queued = this.#channel.withdraw((q) => users.has(q.d.user));
    for (const p of queued) this.#held.get(p.d.user)!.push(p);
    this.#back(queued);
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
    let results: unknown[];
    try {
      const reply = parsePeerReply(await c.link.request(peer, { t: 'deliver', rv: c.ring().version, items: batch.map((p) => p.d) }, { timeoutMs: this.#x.left(Math.min(...batch.map((p) => p.deadline))) }));
      if (reply.t === 'fail') throw new Error(reply.message);
      if (!Array.isArray(reply.value) || reply.value.length !== batch.length) throw new Error(`malformed deliver reply from ${dest}`);
      results = reply.value;
    } catch (e) {
      this.#retry(batch, `${dest}: ${(e as Error).message}`);
      return;
    }
    const again: Pending[] = [];
    const done: Pending[] = [];
    batch.forEach((p, i) => (results[i] === 'ok' ? done : again).push(p));
    // The ones to retry are held first, so that nothing parked behind them goes ahead.
    if (again.length) this.#retry(again, `${dest}: ${String(results[batch.indexOf(again[0]!)])}`);
    this.#back(done);
    for (const p of done) p.resolve();
  }
}
