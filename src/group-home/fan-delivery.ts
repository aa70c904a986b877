// Group messages to the members' homes (fanout.ts is the surface): one request per home node,
// never one per member, of bounded size and in order; the copies a home did not take are tried
// again after a pause (or at once on a newer ring, for members whose home moved) until the
// deadline, while this node serves the group, and until the node stops.
import type { Clock } from '../clock/index.ts';
import type { Ring } from '../ring/index.ts';
import { isId } from '../protocol/frames.ts';
import { entryWireChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { FanItem } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { RETRY_MS } from '../channel/timing.ts';
import { pause } from './pause.ts';
import type { FanoutComponents } from './fanout.ts';

/** Member copies one fan-out request makes at most: a home takes a large group's message in
 * several commits, so that the other writes queued there (1:1 sends) wait for less. */
export const REQUEST_COPIES = 2500;
const itemChars = (it: FanItem) => entryWireChars(it.body) + it.users.reduce((n, u) => n + u.length + 3, 0);

/** An item of the fan-out (its index in the caller's list) with the users still to reach. */
type Part = { index: number; item: FanItem };

export class FanDelivery {
  #c: FanoutComponents;
  #clock: Clock;
  #deadlineMs: number;

  constructor(c: FanoutComponents, clock: Clock, deadlineMs: number) {
    this.#c = c;
    this.#clock = clock;
    this.#deadlineMs = deadlineMs;
  }

  /** Resolves once every member's copy of every item is durable at the member's home. */
  async fanout(items: FanItem[], still: () => boolean = () => true): Promise<void> {
    const c = this.#c;
    const deadline = this.#clock.now() + this.#deadlineMs;
    let todo: Part[] = items.map((item, index) => ({ index, item }));
    for (let round = 0; ; round++) {
      if (!still()) throw new UnavailableError('this node no longer serves the group');
      if (c.signal?.aborted) throw new UnavailableError('this node is stopping');
      if (round > 0) {
        if (this.#clock.now() >= deadline) {
          const left = todo.reduce((n, p) => n + p.item.users.length, 0);
          throw new UnavailableError(`${left} member copies could not be delivered (their homes are not reachable)`);
        }
        await pause({ ringChange: c.ringChange, clock: this.#clock, signal: c.signal }, RETRY_MS).catch(() => {
          throw new UnavailableError('this node is stopping');
        });
      }
      if (!c.joined()) continue;
      const byOwner = byHomeNode(todo, c.ring(), c.self);
      const failed = await Promise.all([...byOwner].map(([o, parts]) => this.#toNode(o, parts, deadline)));
      const again = new Map<number, string[]>();
      for (const f of failed) for (const [i, us] of f) again.set(i, [...(again.get(i) ?? []), ...us]);
      todo = [...again].sort((a, b) => a[0] - b[0]).map(([index, users]) => ({ index, item: { ...items[index]!, users } }));
      if (todo.length === 0) return;
    }
  }

  /** Sends the parts for one home node, in order, in requests of bounded size; the users whose
   * copy was not taken, per item index. */
  async #toNode(owner: string, parts: Part[], deadline: number): Promise<Map<number, string[]>> {
    const q = new NodeQueue(parts);
    while (!q.done) {
      const chunk = q.next();
      if (chunk.length === 0) continue;
      q.answered(chunk, await this.#send(owner, chunk, deadline));
    }
    return q.failed;
  }

  /** One request: per part, the users whose copy the home did not take (all of them when the
   * request failed). */
  async #send(owner: string, chunk: Part[], deadline: number): Promise<string[][]> {
    const c = this.#c;
    try {
      if (owner === c.self) return await c.locals.local.deliverFan(chunk.map((p) => p.item));
      const peer = c.peerOf(owner);
      if (!peer) throw new Error(`no address for ${owner}`);
      c.onRequest?.();
      const reply = parsePeerReply(await c.request(peer, { t: 'fanout', rv: c.ring().version, items: chunk.map((p) => p.item) },
        { timeoutMs: Math.max(100, Math.min(5000, deadline - this.#clock.now())) }));
      if (reply.t === 'fail') throw new Error(reply.message);
      const v = reply.value;
      if (!Array.isArray(v) || v.length !== chunk.length || !v.every((a) => Array.isArray(a) && a.every(isId))) throw new Error(`malformed fanout reply from ${owner}`);
      return v as string[][];
    } catch {
      return chunk.map((p) => p.item.users);
    }
  }
}

/** The parts split by the home node of each user (this node when the ring has no owner). */
function byHomeNode(todo: Part[], ring: Ring, self: string): Map<string, Part[]> {
  const byOwner = new Map<string, Part[]>();
  for (const p of todo) {
    const per = new Map<string, string[]>();
    for (const u of p.item.users) {
      const o = ring.owner(u) ?? self;
      let l = per.get(o);
      if (!l) per.set(o, (l = []));
      l.push(u);
    }
    for (const [o, users] of per) {
      let l = byOwner.get(o);
      if (!l) byOwner.set(o, (l = []));
      l.push({ index: p.index, item: { ...p.item, users } });
    }
  }
  return byOwner;
}

/** The parts for one home node, cut into requests in order. A user refused in one request is
 * left out of the later ones, so that none of its copies overtakes the one to be retried. */
class NodeQueue {
  /** The users whose copy was not taken, per item index. */
  readonly failed = new Map<number, string[]>();
  #parts: Part[];
  #i = 0;
  #refused = new Set<string>();

  constructor(parts: Part[]) {
    this.#parts = parts;
  }

  get done(): boolean {
    return this.#i >= this.#parts.length;
  }

  /** The next request's parts: at most PEER_BUDGET_CHARS (one part at least) and REQUEST_COPIES. */
  next(): Part[] {
    const parts = this.#parts;
    const chunk: Part[] = [];
    let chars = 0;
    let copies = 0;
    while (this.#i < parts.length) {
      const p = parts[this.#i]!;
      if (this.#refused.size) {
        const late = p.item.users.filter((u) => this.#refused.has(u));
        this.#fail(p.index, late);
        if (late.length) p.item = { ...p.item, users: p.item.users.filter((u) => !this.#refused.has(u)) };
      }
      const item = p.item;
      if (item.users.length === 0) {
        this.#i++;
        continue;
      }
      if (chunk.length > 0 && (chars + itemChars(item) > PEER_BUDGET_CHARS || copies >= REQUEST_COPIES)) break;
      const room = REQUEST_COPIES - copies;
      if (item.users.length > room) {
        // A large group's message goes in several requests, in order: each takes a share of
        // the members, so that no one request makes more than REQUEST_COPIES copies.
        chunk.push({ index: p.index, item: { ...item, users: item.users.slice(0, room) } });
        p.item = { ...item, users: item.users.slice(room) };
        break;
      }
      chunk.push({ index: p.index, item });
      chars += itemChars(item);
      copies += item.users.length;
      this.#i++;
    }
    return chunk;
  }

  /** The home's answer to a request: per part, the users whose copy it did not take. */
  answered(chunk: Part[], result: string[][]): void {
    chunk.forEach((p, k) => {
      const no = result[k]!;
      this.#fail(p.index, no);
      for (const u of no) this.#refused.add(u);
    });
  }

  #fail(index: number, users: string[]): void {
    if (users.length) this.failed.set(index, [...(this.failed.get(index) ?? []), ...users]);
  }
}
