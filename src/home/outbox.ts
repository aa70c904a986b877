// Copies of a sender's messages on their way to other homes: each is kept in the sender's outbox
// (written with the sender's entry) until its home has it, handed over with retries while this
// node is the sender's home, and replayed after a crash.
import type { Logger } from 'pino';
import type { Store, StoredEntry } from '../store/index.ts';
import type { Delivery } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import type { Clock } from '../clock/index.ts';
import { persist } from './order.ts';
import { RETRY_MS } from '../channel/timing.ts';
import { CopyGate } from './copy-gate.ts';
import type { Ticket } from './copy-gate.ts';

/** The copy of entry `e` for `user`. */
export function delivery(e: StoredEntry, user: string): Delivery {
  const d: Delivery = { user, mid: e.mid, conv: e.conv, from: e.from, body: e.body, ts: e.ts };
  if (e.to !== undefined) d.to = e.to;
  if (e.group !== undefined) d.group = e.group;
  return d;
}

export type OutboxDeps = {
  store: Store;
  /** Whether this node is the sender's home by the ring. Not whether its writes are paused for a
   * handoff: a copy that failed during a pause would be given up to the replay timer, and a later
   * copy, made before the pause, could reach the recipient first. Handing a copy over writes
   * nothing of the sender's but the clearing of its outbox row; should the newcomer have copied
   * the row first, it only hands over again a copy the recipient has (idempotent by mid). */
  owns: (user: string) => boolean;
  deliverRemote: ((d: Delivery) => Promise<void>) | undefined;
  /** Resolves once every replica of the user has everything committed for it so far, and this
   * node may confirm its writes (it is the home and holds the write lease). */
  replicated: (user: string) => Promise<void>;
  clock: Clock;
  signal: AbortSignal | undefined;
  log: Logger;
};

/** Copies whose sender's replicas did not confirm at first, waiting for them again (see `#ready`). */
export const MAX_REWAITING = 10_000;

export class Outbox {
  #c: OutboxDeps;
  #inFlight = new Map<string, Promise<void>>();
  #gate = new CopyGate();
  #rewaiting = 0;

  constructor(c: OutboxDeps) {
    this.#c = c;
  }

  /** Hands a copy to its home once `ready` (retried while this node is the sender's home, see
   * `persist`) and, once it is there, clears the sender's outbox row. A copy already on its way
   * is joined. It counts as on its way from the start, while it waits for `ready` too: the
   * outbox replay must not hand over a copy that waits for the sender's earlier messages (it
   * did, under load, when a send outlasted the replay timer, and the copy overtook them).
   * A copy is handed over only while the sender's data it came from is still held: were it
   * dropped for another copy (this node rejoined after a partition and its unconfirmed writes
   * lost to the other side's), the message is not in the sender's timeline any more, and its
   * copy must not reach the recipient.
   *
   * A sender's copies enter the router in mid order (see CopyGate): from there on the router keeps
   * each recipient's copies in order (src/cluster/deliveries.ts), and a copy that comes back out
   * to be tried again holds back the sender's newer copies not yet inside. When `ready` fails
   * (the replicas did not confirm in time, or this node briefly lost its lease), the copy is not
   * left to the replay timer: a later copy of the same sender, whose `ready` passed, would reach
   * the recipient first. It waits for the sender's replicas again (and for `after`, the sender's
   * group post made before it, which `ready` also waits for), while this node is still the
   * sender's home, and the later copies wait behind it. */
  handOver(sender: string, d: Delivery, ready: Promise<unknown> = Promise.resolve(), after?: Promise<unknown>): Promise<void> {
    const { store } = this.#c;
    const key = `${sender}\0${d.mid}\0${d.user}`;
    const going = this.#inFlight.get(key);
    if (going) {
      // Joined: this call's own `ready` is not waited for, and must not reject unhandled (it
      // did, and killed a node, when a resend joined a copy and the node then lost the user).
      ready.catch(() => undefined);
      return going;
    }
    const held = store.holding(sender);
    const valid = () => held !== undefined && store.holding(sender) === held;
    const stillHome = () => this.#c.owns(sender) && valid();
    const t = this.#gate.join(sender, d.mid);
    const p = this.#ready(sender, ready, after, stillHome)
      .then(() => this.#deliver(t, d, stillHome, valid))
      .then(() => store.outboxDone([{ user: sender, mid: d.mid, dest: d.user }]));
    this.#inFlight.set(key, p);
    const gone = () => {
      this.#gate.leave(t);
      this.#inFlight.delete(key);
    };
    p.then(gone, gone);
    return p;
  }

  /** Hands `d` to the router in its turn (see CopyGate), again after RETRY_MS while it fails with
   * unavailable and this node is still the sender's home (see `persist`, whose rule this is). */
  async #deliver(t: Ticket, d: Delivery, stillHome: () => boolean, valid: () => boolean): Promise<void> {
    const { clock, signal } = this.#c;
    for (;;) {
      try {
        // Entered in its turn, synchronously (see CopyGate.enter): the router queues it there.
        return await new Promise<void>((ok, ko) => this.#gate.enter(t, () => {
          if (!valid()) ko(new UnavailableError(`${t.key}'s copy of ${d.mid} was replaced by another node's: not handed over`));
          else {
            try {
              this.#c.deliverRemote!(d).then(ok, ko);
            } catch (e) {
              ko(e as Error);
            }
          }
        }));
      } catch (e) {
        if ((e as Error).name !== 'UnavailableError' || !stillHome() || signal?.aborted) throw e;
        this.#gate.rejoin(t); // out of the router: the sender's newer copies wait for it again
        await clock.sleep(RETRY_MS, signal).catch(() => {
          throw e;
        });
      }
    }
  }

  /** `ready`, or, should it fail with unavailable, the sender's replicas confirming everything
   * again (then `after`), tried every RETRY_MS while this node is still the sender's home. At most
   * MAX_REWAITING copies wait so (a home cut off from the majority keeps taking sends it cannot
   * confirm); past that a copy is left to the replay timer, as every one was before. */
  async #ready(sender: string, ready: Promise<unknown>, after: Promise<unknown> | undefined, stillHome: () => boolean): Promise<void> {
    try {
      await ready;
      return;
    } catch (e) {
      if ((e as Error).name !== 'UnavailableError' || !stillHome() || this.#rewaiting >= MAX_REWAITING) throw e;
      this.#rewaiting++;
      try {
        await persist(() => this.#c.replicated(sender), stillHome, this.#c.clock, this.#c.signal).catch(() => {
          throw e;
        });
      } finally {
        this.#rewaiting--;
      }
      await after?.then(() => undefined, () => undefined);
    }
  }

  /** Hands over every outbox copy not already in flight (at start, and now and then). */
  async replay(): Promise<{ delivered: number; failed: number }> {
    let delivered = 0;
    let failed = 0;
    if (!this.#c.deliverRemote) return { delivered, failed };
    // Every row joins its sender's line (see CopyGate) before any enters: they go in mid order.
    const rows = await this.#c.store.outbox();
    await Promise.all(rows.map(async (row) => {
      if (this.#inFlight.has(`${row.user}\0${row.mid}\0${row.dest}`)) return;
      // Only the sender's home hands copies over: elsewhere its timeline may be a stale copy.
      if (!this.#c.owns(row.user)) return;
      try {
        // And only once the sender's entry is confirmed, as for a first send: the row may be of
        // a write this node made while cut off, never confirmed, whose cid the client has since
        // sent again to the other side's home. That one's copy reached the recipient; were this
        // one handed over as well, when the network heals and before this node learns that its
        // copy lost, the recipient would hold the message twice (seen in CI: an isolated home's
        // replay timer delivered such a copy after the heal).
        await this.handOver(row.user, row.item as Delivery, this.#c.replicated(row.user));
        delivered++;
      } catch (e) {
        failed++;
        this.#c.log.warn({ mid: row.mid, to: row.dest, err: (e as Error).message }, 'outbox copy not delivered yet; will retry');
      }
    }));
    return { delivered, failed };
  }
}
