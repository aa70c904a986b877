// The send pipeline: sends and deliveries in batches (one dedup lookup per batch, then seqs in
// arrival order, synchronously, so order per connection holds with any number in flight), each
// appended durably with its copies and answered once it is on every copy the design promises.
import type { Logger } from 'pino';
import { DEDUP_KEY } from '../store/index.ts';
import type { NewEntry, Store, StoredEntry } from '../store/index.ts';
import { dmConv } from '../protocol/frames.ts';
import type { Delivery, LaneMark } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import type { Clock } from '../clock/index.ts';
import { Fences } from './fences.ts';
import { answer, settled } from './order.ts';
import type { SenderOrder } from './order.ts';
import { delivery } from './outbox.ts';
import type { Outbox } from './outbox.ts';
import type { GroupSends } from './group-send.ts';
import type { SendResult } from './types.ts';

export type Work =
  | { kind: 'send'; from: string; to: string; cid: string; body: string; at?: LaneMark; resolve(r: SendResult): void; reject(e: Error): void }
  | { kind: 'gsend'; from: string; group: string; cid: string; body: string; at?: LaneMark; resolve(r: SendResult): void; reject(e: Error): void }
  /** `dkey`: the sender's own copy of a group message is its send-dedup entry (c:<cid>). */
  | { kind: 'deliver'; d: Delivery; dkey?: string; resolve(): void; reject(e: Error): void };

type SendWork = Extract<Work, { kind: 'send' | 'gsend' }>;

const keyOf = (w: Work) => (w.kind === 'deliver' ? { user: w.d.user, dkey: w.dkey ?? DEDUP_KEY.mid(w.d.mid) } : { user: w.from, dkey: DEDUP_KEY.cid(w.cid) });

export type PipelineDeps = {
  store: Store;
  owns: (user: string) => boolean;
  whyNot: (user: string) => string;
  nextMid: () => string;
  midTime: (mid: string) => number;
  /** Durable here and on the user's replicas. */
  everywhere: (durable: Promise<void>, user: string) => Promise<void>;
  /** Whether copies go to other homes at all (the cluster router is there). */
  remote: boolean;
  replicating: (() => boolean) | undefined;
  onSent: ((dup: boolean) => void) | undefined;
  order: SenderOrder;
  outbox: Outbox;
  groups: GroupSends;
  clock: Clock;
  log: Logger;
};

export class SendPipeline {
  #c: PipelineDeps;
  #queue: Work[] = [];
  #scheduled = false;
  /** Sends refused per connection lane, so that the lane's later sends wait for their retry. */
  readonly fences = new Fences();

  constructor(c: PipelineDeps) {
    this.#c = c;
  }

  enqueue(w: Work): void {
    this.#queue.push(w);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => void this.#drain());
    }
  }

  /** Appends a copy (idempotent by mid); resolves once it is on every copy. */
  deliver(d: Delivery, dkey?: string): Promise<void> {
    return new Promise<void>((resolve, reject) => this.enqueue({ kind: 'deliver', d, ...(dkey ? { dkey } : {}), resolve, reject }));
  }

  async #drain(): Promise<void> {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    let found: Map<string, StoredEntry>;
    try {
      found = await this.#c.store.findDedup(batch.map(keyOf));
    } catch (e) {
      for (const w of batch) w.reject(e as Error);
      return;
    }
    // From here to the end of the loop nothing awaits: see Store.findDedup.
    for (const w of batch) {
      try {
        this.#take(w, found);
      } catch (e) {
        // A write the store refuses (its user is being imported) fails alone, not the batch, and
        // may be retried.
        this.#c.log.warn({ user: keyOf(w).user, err: (e as Error).message }, 'write refused by the store');
        if (w.kind !== 'deliver') this.fences.refused(w.at);
        w.reject(new UnavailableError(`${keyOf(w).user}: ${(e as Error).message}`));
      }
    }
  }

  /** One send or delivery of a batch, in order; synchronous (see Store.findDedup). */
  #take(w: Work, found: Map<string, StoredEntry>): void {
    const { store, everywhere } = this.#c;
    const { user, dkey } = keyOf(w);
    if (w.kind !== 'deliver' && this.fences.refuses(w.at)) {
      w.reject(new UnavailableError(`an earlier send of this connection was refused or is on its way to another node; it goes again first`));
      return;
    }
    if (!this.#c.owns(user)) {
      if (w.kind !== 'deliver') this.fences.refused(w.at);
      w.reject(new UnavailableError(this.#c.whyNot(user)));
      return;
    }
    if (w.kind !== 'deliver') this.fences.taken(w.at);
    const pending = store.peekDedup(user, dkey);
    const existing = pending ?? found.get(`${user}\0${dkey}`);
    if (w.kind === 'deliver') {
      if (existing) everywhere(pending ? store.flush() : Promise.resolve(), user).then(w.resolve, w.reject);
      else everywhere(store.append([{ ...w.d, dkey }]).durable, user).then(w.resolve, w.reject);
      return;
    }
    if (existing?.group !== undefined) this.#c.groups.send(w, existing, pending !== undefined);
    else if (existing) this.#resend(w, existing, pending !== undefined);
    // A new group send, or a 1:1 send reusing the cid of a group send still in flight (it gets
    // that one's answer).
    else if (w.kind === 'gsend' || this.#c.groups.sending(w.from, w.cid)) this.#c.groups.send(w, undefined, false);
    else this.#sendNew(w, dkey);
  }

  /** A resend of a cid that made a 1:1 message: answered as a duplicate. */
  #resend(w: SendWork, existing: StoredEntry, pending: boolean): void {
    const { store, everywhere, order, owns } = this.#c;
    const user = w.from;
    this.#c.onSent?.(true);
    const r: SendResult = { mid: existing.mid, seq: existing.seq, ts: existing.ts, dup: true };
    // The recipient's copy may be missing: the entry may have been made by a home that died
    // (this node holds it as that home's replica) before the copy was handed over. Hand it
    // over again, idempotent by mid, here or at the recipient's home, before answering; and,
    // as for a new send, only once the sender's entry is on every copy (a resend can arrive
    // while the first attempt's entry is still being replicated).
    // The copy keeps its place behind the sender's group posts made before this resend, like a
    // first send's copy, and joins a hand-over of the same copy still under way.
    const to = existing.to;
    const mine = everywhere(pending ? store.flush() : Promise.resolve(), user);
    const postBefore = order.lastPost.get(user);
    const ready = mine.then(() => settled(postBefore));
    ready.catch(() => undefined); // unused when there is no copy to hand over
    const copy = to === undefined || to === user ? undefined
      : owns(to) ? ready.then(() => this.deliver(delivery(existing, to)))
      : this.#c.remote ? this.#c.outbox.handOver(user, delivery(existing, to), ready, postBefore) : undefined;
    if (copy && this.#c.remote && !owns(to!)) order.after(order.lastCopy, user, copy);
    answer(w, Promise.all([mine, copy]).then(() => r), this.#c.clock);
  }

  /** A new 1:1 message: the sender's entry, and the recipient's copy with it or after it. */
  #sendNew(w: Extract<Work, { kind: 'send' }>, dkey: string): void {
    const { store, everywhere, order } = this.#c;
    const mid = this.#c.nextMid();
    const ts = this.#c.midTime(mid);
    const base = { mid, conv: dmConv(w.from, w.to), from: w.from, to: w.to, body: w.body, ts };
    const items: NewEntry[] = [{ ...base, user: w.from, dkey }];
    // The recipient's copy is handed over only once the sender's entry (with its dedup key) is
    // on every copy: were the home to die between the two, a resend of the cid to the next
    // home would make a second message, and the recipient would have both. Without replicas a
    // local recipient's copy goes in the same transaction instead.
    // A group post of the sender still in flight goes first (see SenderOrder): then the copy too
    // is handed over separately, behind it.
    const postBefore = order.lastPost.get(w.from);
    const separate = w.to !== w.from && this.#c.remote && (!this.#c.owns(w.to) || (this.#c.replicating?.() ?? false) || postBefore !== undefined);
    if (w.to !== w.from && !separate) items.push({ ...base, user: w.to, dkey: DEDUP_KEY.mid(mid) });
    // A copy handed over separately is kept in the outbox, in the same transaction as the
    // sender's entry, until its home has it: a crash in between cannot lose it.
    const copyOf: Delivery = { ...base, user: w.to };
    const ob = separate ? [{ user: w.from, mid, dest: w.to, item: copyOf }] : [];
    const { entries, durable } = store.append(items, ob);
    const r: SendResult = { mid, seq: entries[0]!.seq, ts };
    this.#c.onSent?.(false);
    const mine = everywhere(durable, w.from);
    const copy = separate ? this.#c.outbox.handOver(w.from, copyOf, mine.then(() => settled(postBefore)), postBefore) : undefined;
    if (copy) order.after(order.lastCopy, w.from, copy);
    const local = w.to !== w.from && !separate ? everywhere(durable, w.to) : undefined;
    answer(w, Promise.all([mine, local, copy]).then(() => r), this.#c.clock);
  }
}
