// One replica's queue at a home: what the home still has to send to that replica, by user in
// queue order, sent with one batch in flight (a Drain, as every ordered sender between nodes; the
// queue is its own because a user's newer writes merge into the item already queued for it).
// A failed batch goes back in front and waits for the ring to change (a dead replica is
// replaced) or a short pause; a refused user is asked again after RETRY_MS; a replica that misses
// earlier data gets a backfill; a clean acknowledgement lets the writes waiting for that user be
// confirmed.
import type { ExportedEntry, UserSnapshot } from '../store/index.ts';
import { packPage, parsePeerReply } from '../protocol/peer.ts';
import type { Clock } from '../clock/index.ts';
import { RETRY_MS } from '../channel/timing.ts';
import { Drain } from '../channel/drain.ts';
import { mergeSnap, normalize } from './replication-items.ts';
import type { Item } from './replication-items.ts';
import { takeBatch } from './replication-batch.ts';
import type { Batch } from './replication-batch.ts';
import type { ReplicaProgress, ReplicatorComponents } from './replicator.ts';

/** What every replica's queue of a home shares. */
export type QueueEnv = {
  c: ReplicatorComponents;
  clock: Clock;
  signal: AbortSignal | undefined;
  deadlineMs: number;
  /** The replicas of `user` if this node is its home by the current ring, else none. */
  replicasOf(user: string): string[];
  /** Item versions increase over all queues: a write waits for the versions queued when it asks. */
  nextVersion(): number;
  /** A replica acknowledged some of `user`'s items: writes waiting for them may be confirmed. */
  settle(user: string): void;
};

/** What a replica answers to a batch: users to backfill from a seq, users its ring refuses. */
type Acks = { gaps?: Record<string, number>; refused?: string[] };

const WARN_EVERY_MS = 5000;
/** How long a batch may take on the wire before it counts as failed. */
const BATCH_TIMEOUT_MS = 5000;

export class ReplicaQueue {
  readonly to: string;
  /** Queued, by user in queue order. */
  readonly items = new Map<string, Item>();
  /** The version of each user's batch on the wire. */
  readonly inflight = new Map<string, number>();
  /** Acknowledged: the version of each user's latest item the replica has. */
  readonly version = new Map<string, number>();
  /** Users not known to be in sync with the replica (see Replicator.behind). */
  readonly behind = new Set<string>();
  /** Users a client write waits for, with since when: their items go first (a backfill after a
   * crash can be long), for at most the write deadline, so that one user whose data cannot get
   * through does not hold back every other user of the replica. */
  readonly urgent = new Map<string, number>();
  /** Users waiting to be asked again after a refusal or a backfill that could not be read. */
  deferred = 0;
  readonly #drain = new Drain({
    more: () => this.items.size > 0 && !this.#env.signal?.aborted,
    next: () => this.#next(),
    failed: (e) => this.#env.c.log.error({ to: this.to, err: e.message }, 'replication flush failed'),
  });
  /** When a failed batch was last logged (the first failure always is). */
  #warned = -Infinity;
  readonly #env: QueueEnv;

  constructor(to: string, env: QueueEnv) {
    this.to = to;
    this.#env = env;
  }

  /** `older`: `snap` is from before what is queued for the user (the rest of an item sent in
   * parts, or one put back), so what is queued wins where they differ. */
  enqueue(user: string, entries: ExportedEntry[], snap: UserSnapshot | undefined, backfill?: number, older = false): void {
    const v = this.#env.nextVersion();
    const it = this.items.get(user);
    if (it) {
      if (it.backfill === undefined) it.entries.push(...entries);
      it.snap = older ? mergeSnap(snap, it.snap) : mergeSnap(it.snap, snap);
      it.version = v;
      if (backfill !== undefined) it.backfill = Math.min(it.backfill ?? backfill, backfill);
      normalize(it);
    } else {
      const fresh: Item = { entries: [...entries], snap, version: v, ...(backfill !== undefined ? { backfill } : {}) };
      normalize(fresh);
      this.items.set(user, fresh);
    }
    // Stopped: what is queued stays queued (and counted in pending), nothing more goes out.
    if (!this.#env.signal?.aborted) this.#drain.kick();
  }

  /** Queues the user's item again after a short while, if this replica still replicates it
   * then (a refusal: the rings disagree for now; a backfill that could not be read). */
  later(u: string, entries: ExportedEntry[], snap: UserSnapshot | undefined, backfill: number | undefined): void {
    const { replicasOf, clock, signal } = this.#env;
    if (!replicasOf(u).includes(this.to)) return;
    this.behind.add(u);
    this.deferred++;
    clock.sleep(RETRY_MS, signal).then(() => {
      this.deferred--;
      if (replicasOf(u).includes(this.to)) this.enqueue(u, entries, snap, backfill, true);
      else this.behind.delete(u);
    }, () => {
      // Stopped: the user stays behind, nothing asks again.
      this.deferred--;
    });
  }

  /** Forgets queued work and sync state of users whose replica this no longer is. */
  prune(): void {
    const { replicasOf } = this.#env;
    for (const [u] of [...this.items]) if (!replicasOf(u).includes(this.to)) this.items.delete(u);
    for (const u of [...this.behind]) if (!replicasOf(u).includes(this.to)) this.behind.delete(u);
    for (const u of [...this.urgent.keys()]) if (!replicasOf(u).includes(this.to)) this.urgent.delete(u);
  }

  /** Users queued, on the wire or waiting to be asked again. */
  pending(): number {
    return this.items.size + this.inflight.size + this.deferred;
  }

  progress(): ReplicaProgress | undefined {
    if (this.pending() + this.behind.size === 0) return undefined;
    return { queued: this.items.size, inflight: this.inflight.size, deferred: this.deferred, behind: this.behind.size };
  }

  async #next(): Promise<void> {
    const b = await takeBatch(this, this.#env);
    const acks = await this.#send(b);
    if (acks) this.#acked(b, acks);
  }

  /** The batch on the wire: the replica's answer, or undefined when it failed (the batch is then
   * queued again, after the pause). */
  async #send(b: Batch): Promise<Acks | undefined> {
    const { c } = this.#env;
    const peer = c.peerOf(this.to);
    c.log.debug({ to: this.to, users: b.sent.length, entries: b.page.entries.length, snaps: b.page.users.length, chars: b.chars, partial: b.sent.filter((s) => s.partial !== undefined).length }, 'replication batch');
    try {
      if (!peer) throw new Error(`no address for ${this.to}`);
      const reply = parsePeerReply(await c.request(peer, { t: 'replicate', page: packPage(b.page) }, { timeoutMs: BATCH_TIMEOUT_MS }));
      if (reply.t !== 'done') throw new Error(`replica ${this.to} failed: ${JSON.stringify(reply).slice(0, 200)}`);
      return (reply.value ?? {}) as Acks;
    } catch (e) {
      await this.#failed(b, e as Error);
      return undefined;
    }
  }

  /** Puts the batch back (newer items for the same users merge in) and waits for the ring to
   * change (a dead replica is replaced) or a short while. */
  async #failed(b: Batch, e: Error): Promise<void> {
    const { c, clock, signal, replicasOf } = this.#env;
    for (const { user: u, item: it } of b.sent) {
      this.inflight.delete(u);
      if (!replicasOf(u).includes(this.to)) {
        this.behind.delete(u);
        continue;
      }
      this.behind.add(u);
      const cur = this.items.get(u);
      if (cur) {
        if (cur.backfill === undefined) cur.entries.unshift(...it.entries);
        cur.snap = mergeSnap(it.snap, cur.snap);
        if (it.backfill !== undefined) cur.backfill = Math.min(cur.backfill ?? it.backfill, it.backfill);
        normalize(cur);
      } else {
        this.items.set(u, it);
      }
    }
    // A dead replica fails every batch until the ring drops it: say so once a while.
    const now = clock.now();
    if (now - this.#warned > WARN_EVERY_MS) {
      this.#warned = now;
      c.log.warn({ to: this.to, users: b.sent.length, entries: b.page.entries.length, err: e.message }, 'replication batch failed; retrying');
    }
    try {
      await Promise.race([c.ringChange(RETRY_MS), clock.sleep(RETRY_MS, signal)]);
    } catch (err) {
      if (signal?.aborted) return; // stopped: the flush loop ends
      throw err;
    }
    this.prune();
  }

  /** The replica answered: each user of the batch is in, refused, or needs more. */
  #acked(b: Batch, acks: Acks): void {
    const { c, settle } = this.#env;
    const gaps = acks.gaps ?? {};
    const refused = new Set(acks.refused ?? []);
    c.onBatch?.(this.to, b.page.entries.length, b.page.users.length);
    for (const { user: u, item: it, partial, rest } of b.sent) {
      this.inflight.delete(u);
      if (gaps[u] !== undefined) {
        this.behind.add(u);
        this.enqueue(u, [], c.store.snapshot(u), gaps[u]);
        continue;
      }
      if (refused.has(u)) {
        // Our rings disagree on who is home or replica: try again once they settle.
        this.later(u, it.entries, it.snap, it.backfill);
        continue;
      }
      if (partial !== undefined) {
        // The replica now has everything up to `partial`: the rest of the backfill next.
        this.enqueue(u, [], it.snap, partial, true);
        continue;
      }
      if (rest) {
        // The first part of a large snapshot is in: the next part goes in the next batch.
        this.enqueue(u, [], rest, undefined, true);
        continue;
      }
      this.behind.delete(u);
      this.urgent.delete(u);
      this.version.set(u, Math.max(this.version.get(u) ?? 0, it.version));
      settle(u);
    }
  }
}
