// The home's side of replication: commits become items queued per replica (replica-queue.ts), a
// write is confirmed once every replica has it (confirmations.ts), and a ring change sends every
// owned user's state to its replicas again. Private: createReplicator (replicator.ts) builds it.
import type { Changed, ExportedEntry, UserSnapshot } from '../store/index.ts';
import type { Page, PeerReply } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { COPY_DEADLINE_MS } from '../channel/timing.ts';
import { ReplicaQueue } from './replica-queue.ts';
import type { QueueEnv } from './replica-queue.ts';
import { Confirmations } from './confirmations.ts';
import { applyPage } from './replica-apply.ts';
import type { ReplicaProgress, Replicator, ReplicatorComponents } from './replicator.ts';

type Touched = { entries: ExportedEntry[]; convs: Set<string>; devices: Set<string>; outbox: NonNullable<UserSnapshot['outbox']>; cleared: NonNullable<UserSnapshot['cleared']> };

export class Replication implements Replicator {
  readonly #c: ReplicatorComponents;
  readonly #clock: Clock;
  readonly #lease: () => boolean;
  readonly #complete: (user: string) => boolean;
  readonly #queues = new Map<string, ReplicaQueue>();
  readonly #confirms: Confirmations;
  readonly #env: QueueEnv;
  #version = 0;

  constructor(c: ReplicatorComponents) {
    this.#c = c;
    this.#clock = c.clock ?? systemClock;
    this.#lease = c.lease ?? (() => true);
    this.#complete = c.complete ?? (() => true);
    const deadlineMs = c.deadlineMs ?? COPY_DEADLINE_MS;
    const replicasOf = (u: string) => this.#replicasOf(u);
    this.#confirms = new Confirmations({
      clock: this.#clock, deadlineMs, signal: c.signal, replicasOf,
      unconfirmable: (u) => this.#unconfirmable(u),
      acked: (r, u) => this.#queues.get(r)?.version.get(u) ?? 0,
    });
    this.#env = {
      c, clock: this.#clock, signal: c.signal, deadlineMs, replicasOf,
      nextVersion: () => ++this.#version,
      settle: (u) => this.#confirms.settle(u),
    };
  }

  committed(entries: ExportedEntry[], changed: Changed): void {
    const byUser = new Map<string, Touched>();
    const of = (u: string) => {
      let x = byUser.get(u);
      if (!x) byUser.set(u, (x = { entries: [], convs: new Set(), devices: new Set(), outbox: [], cleared: [] }));
      return x;
    };
    for (const e of entries) of(e.user).entries.push(e);
    for (const u of changed.users) of(u);
    for (const [u, conv] of changed.convs) of(u).convs.add(conv);
    for (const [u, dev] of changed.cursors) of(u).devices.add(dev);
    // Outbox rows travel with the sender's entry (same commit, same item), and so do their
    // clearings: the replica that becomes home hands over what the old home could not.
    for (const o of changed.outbox) of(o.user).outbox.push(o.row);
    for (const k of changed.cleared) of(k.user).cleared.push({ mid: k.mid, dest: k.dest });
    for (const [u, x] of byUser) {
      const to = this.#replicasOf(u);
      if (to.length === 0) continue;
      const snap = this.#c.store.snapshot(u, [...x.convs], [...x.devices]);
      if (snap && x.outbox.length) snap.outbox = x.outbox;
      if (snap && x.cleared.length) snap.cleared = x.cleared;
      for (const r of to) this.#queue(r).enqueue(u, x.entries, snap);
    }
  }

  wait(user: string): Promise<void> {
    // A node that stopped being the user's home while the write was in flight must not
    // confirm it: the new home may not have it. The client retries (same cid) there.
    const no = this.#unconfirmable(user);
    if (no) return Promise.reject(new UnavailableError(no));
    const to = this.#replicasOf(user);
    if (to.length === 0) return Promise.resolve();
    const required = new Map(to.map((r) => {
      const q = this.#queues.get(r);
      return [r, Math.max(q?.items.get(user)?.version ?? 0, q?.inflight.get(user) ?? 0)];
    }));
    if (to.every((r) => (this.#queues.get(r)?.version.get(user) ?? 0) >= required.get(r)!)) return Promise.resolve();
    for (const r of to) {
      const q = this.#queue(r);
      if (!q.urgent.has(user)) q.urgent.set(user, this.#clock.now());
    }
    return this.#confirms.wait(user, required);
  }

  apply(fromName: string | undefined, page: Page): Promise<PeerReply> {
    const { self, store, log, ring, joined, onFilled } = this.#c;
    return applyPage({ self, store, log, ring, joined, onFilled, lease: this.#lease, replaced: (u) => this.#confirms.replaced(u) }, fromName, page);
  }

  ringChanged(): void {
    const ring = this.#c.ring();
    for (const q of this.#queues.values()) q.prune();
    // Only complete copies: a partial one (the last holders of the user died) would pass for whole.
    for (const [u] of this.#c.store.userSeqs((x) => ring.owner(x) === this.#c.self && this.#complete(x))) {
      const to = this.#replicasOf(u);
      if (to.length === 0) continue;
      const snap = this.#c.store.snapshot(u);
      for (const r of to) {
        const q = this.#queue(r);
        q.behind.add(u);
        q.enqueue(u, [], snap);
      }
    }
    for (const u of this.#confirms.users()) this.#confirms.settle(u);
  }

  pending(): number {
    return [...this.#queues.values()].reduce((n, q) => n + q.pending(), 0);
  }

  behind(): number {
    return [...this.#queues.values()].reduce((n, q) => n + q.behind.size, 0);
  }

  progress(): Record<string, ReplicaProgress> {
    const out: Record<string, ReplicaProgress> = {};
    for (const [name, q] of this.#queues) {
      const p = q.progress();
      if (p) out[name] = p;
    }
    return out;
  }

  /** The replicas of `user` if this node is its home by the current ring, else none. */
  #replicasOf(user: string): string[] {
    if (!this.#c.joined()) return [];
    const ring = this.#c.ring();
    const owners = ring.owners(user, ring.replicas);
    return owners[0] === this.#c.self ? owners.slice(1) : [];
  }

  /** Why a home must not confirm a write of `user` now, if it must not. */
  #unconfirmable(user: string): string | undefined {
    if (!this.#c.joined() || this.#c.ring().owner(user) !== this.#c.self) return `${user} moved to another node while this write was in flight`;
    if (!this.#lease()) return 'this node cannot hear a majority of the cluster: the write is not confirmed';
    return undefined;
  }

  #queue(name: string): ReplicaQueue {
    let q = this.#queues.get(name);
    if (!q) this.#queues.set(name, (q = new ReplicaQueue(name, this.#env)));
    return q;
  }
}
