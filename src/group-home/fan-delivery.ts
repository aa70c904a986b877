// Group messages to the members' homes (fanout.ts is the surface): one request per home node,
// never one per member, of bounded size and in order; the copies a home did not take are tried
// again after a pause (or at once on a newer ring, for members whose home moved) until the
// deadline, while this node serves the group, and until the node stops. The requests to one home
// node go on the ordered channel: one in flight per node, carrying the copies of every group
// that fans out to it meanwhile.
import type { Clock } from '../clock/index.ts';
import type { Ring } from '../ring/index.ts';
import { isId } from '../protocol/frames.ts';
import { entryWireChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { FanItem } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { RETRY_MS } from '../channel/timing.ts';
import { OrderedChannel } from '../channel/ordered.ts';
import { pause } from './pause.ts';
import type { FanoutComponents } from './fanout.ts';

/** Member copies one fan-out request makes at most: a home takes a large group's message in
 * several commits, so that the other writes queued there (1:1 sends) wait for less. */
export const REQUEST_COPIES = 2500;
const itemChars = (it: FanItem) => entryWireChars(it.body) + it.users.reduce((n, u) => n + u.length + 3, 0);

/** An item of the fan-out (its index in the caller's list) with the users still to reach. */
type Part = { index: number; item: FanItem };
/** One round of one fan-out: its deadline, and the users a home refused in it. A refused user is
 * left out of the round's later requests, so that none of its copies overtakes the one to be
 * retried. */
type Round = { deadline: number; refused: Set<string> };
/** A part on the channel, answered with the users whose copy was not taken. */
type Copy = { part: Part; round: Round; done(notTaken: string[]): void };

export class FanDelivery {
  #c: FanoutComponents;
  #clock: Clock;
  #deadlineMs: number;
  #channel = new OrderedChannel<Copy>((owner, batch) => this.#send(owner, batch), {
    maxItems: REQUEST_COPIES,
    limits: [{ weigh: (x) => itemChars(x.part.item), budget: PEER_BUDGET_CHARS }, { weigh: (x) => x.part.item.users.length, budget: REQUEST_COPIES }],
    keepIdle: true,
  });

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
      const again = new Map<number, string[]>();
      for (const [index, users] of await this.#round(todo, deadline)) if (users.length) again.set(index, [...(again.get(index) ?? []), ...users]);
      todo = [...again].sort((a, b) => a[0] - b[0]).map(([index, users]) => ({ index, item: { ...items[index]!, users } }));
      if (todo.length === 0) return;
    }
  }

  /** Puts every part on the channel of its members' home node, a large one in pieces of at most
   * REQUEST_COPIES copies, in order; per piece, the users whose copy was not taken. */
  #round(todo: Part[], deadline: number): Promise<[number, string[]][]> {
    const round: Round = { deadline, refused: new Set() };
    const answers: Promise<[number, string[]]>[] = [];
    for (const [owner, parts] of byHomeNode(todo, this.#c.ring(), this.#c.self)) {
      const copies: Copy[] = [];
      for (const p of parts) {
        for (let i = 0; i < p.item.users.length; i += REQUEST_COPIES) {
          const part = { index: p.index, item: i === 0 && p.item.users.length <= REQUEST_COPIES ? p.item : { ...p.item, users: p.item.users.slice(i, i + REQUEST_COPIES) } };
          answers.push(new Promise((done) => copies.push({ part, round, done: (no) => done([p.index, no]) })));
        }
      }
      this.#channel.pushAll(owner, copies);
    }
    return Promise.all(answers);
  }

  /** One request to a home node: each copy is answered with the users it did not take (all of
   * them when the request failed). */
  async #send(owner: string, batch: Copy[]): Promise<void> {
    // Users refused earlier in the same round are not sent again (they count as not taken).
    const late = batch.map((x) => (x.round.refused.size ? x.part.item.users.filter((u) => x.round.refused.has(u)) : []));
    const sent: [Copy, FanItem, string[]][] = [];
    batch.forEach((x, k) => {
      const item = late[k]!.length ? { ...x.part.item, users: x.part.item.users.filter((u) => !x.round.refused.has(u)) } : x.part.item;
      if (item.users.length === 0) x.done(late[k]!);
      else sent.push([x, item, late[k]!]);
    });
    if (sent.length === 0) return;
    const deadline = Math.min(...sent.map(([x]) => x.round.deadline));
    const result = await this.#request(owner, sent.map(([, item]) => item), deadline);
    sent.forEach(([x, , before], k) => {
      const no = result[k]!;
      for (const u of no) x.round.refused.add(u);
      x.done(before.length ? [...before, ...no] : no);
    });
  }

  /** Per item, the users whose copy the home did not take (all of them when the request failed). */
  async #request(owner: string, items: FanItem[], deadline: number): Promise<string[][]> {
    const c = this.#c;
    try {
      if (owner === c.self) return await c.locals.local.deliverFan(items);
      const peer = c.peerOf(owner);
      if (!peer) throw new Error(`no address for ${owner}`);
      c.onRequest?.();
      const reply = parsePeerReply(await c.request(peer, { t: 'fanout', rv: c.ring().version, items },
        { timeoutMs: Math.max(100, Math.min(5000, deadline - this.#clock.now())) }));
      if (reply.t === 'fail') throw new Error(reply.message);
      const v = reply.value;
      if (!Array.isArray(v) || v.length !== items.length || !v.every((a) => Array.isArray(a) && a.every(isId))) throw new Error(`malformed fanout reply from ${owner}`);
      return v as string[][];
    } catch {
      return items.map((it) => it.users);
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
