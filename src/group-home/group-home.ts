// The group home itself (groups.ts is its surface): per group, one batch of ops and posts at a
// time is appended to the log and made durable on every copy; then the pump takes over, and a
// post is answered once the pump is past it. Typing notices and receipts are relayed from here.
import type { Logger } from 'pino';
import { admitTyping } from '../groups/limits.ts';
import type { GroupLimits } from '../groups/limits.ts';
import type { Store } from '../store/index.ts';
import type { CastFrame, GroupOp, GroupPost, PostResult } from '../protocol/peer.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { KeyedBatcher } from '../channel/batcher.ts';
import { check } from '../groups/index.ts';
import { ClientError, errorOf, UnavailableError } from '../protocol/errors.ts';
import type { Clock } from '../clock/index.ts';
import { createPump } from './group-pump.ts';
import type { Pump } from './group-pump.ts';
import { FANOUT, groupKey, postKey, SNAPSHOT } from './group-keys.ts';
import { Budgets, GroupCache } from './group-state.ts';
import { LogBatch } from './log-batch.ts';
import type { Done, Work } from './log-batch.ts';
import type { GroupInfo, Groups, GroupsComponents } from './groups.ts';

export class GroupHome implements Groups {
  #c: GroupsComponents;
  #store: Store;
  #now: () => number;
  #limits: GroupLimits;
  #snapshotEvery: number;
  #cache: GroupCache;
  #budgets: Budgets;
  #pump: Pump;
  #batcher = new KeyedBatcher<Work, Done>((group, works) => this.#runBatch(group, works), 1000);

  constructor(c: GroupsComponents, clock: Clock, limits: GroupLimits, snapshotEvery: number) {
    const log: Logger = c.log;
    this.#c = c;
    this.#store = c.store;
    this.#now = c.now ?? (() => clock.now());
    this.#limits = limits;
    this.#snapshotEvery = snapshotEvery;
    this.#cache = new GroupCache(c.store, c.owns, log);
    this.#budgets = new Budgets(limits, this.#now);
    this.#pump = createPump({
      store: c.store, owns: c.owns, ...(c.readable ? { readable: c.readable } : {}), fanout: c.fanout, ringChange: c.ringChange,
      ...(c.deadlineMs !== undefined ? { deadlineMs: c.deadlineMs } : {}), log, clock, ...(c.signal ? { signal: c.signal } : {}),
      advanced: (group, cursor, work) => this.#budgets.peek(group)?.backlog.advance(cursor, work),
    });
  }

  async op(actor: string, op: GroupOp, group: string, members: string[]): Promise<GroupInfo | undefined> {
    return (await this.#batcher.add(group, { kind: 'op', actor, op, members })) as GroupInfo | undefined;
  }

  post(group: string, posts: GroupPost[]): Promise<PostResult[]> {
    // A post's answer adopts the promise its batch gave it (see Done).
    return Promise.all(posts.map((post) => this.#batcher.add(group, { kind: 'post', post }) as Promise<PostResult>));
  }

  async cast(group: string, from: string, frame: CastFrame): Promise<void> {
    const key = groupKey(group);
    if (!this.#c.owns(key)) throw new UnavailableError(`${key} is moving to another node`);
    const s = await this.#cache.load(group);
    const no = check(s, group, from, 'info', [], this.#c.maxMembers);
    if (no) throw errorOf(no.code, no.message);
    if (frame.kind === 'typing') {
      // A notice costs one frame per other member: a large group gets few notices a second.
      const over = admitTyping(group, this.#limits, this.#budgets.get(group).typing, s.members.size - 1, this.#now());
      if (over) {
        this.#c.onLimited?.(over.reason);
        throw new ClientError('rate_limited', over.message);
      }
    }
    const others = [...s.members.keys()].filter((m) => m !== from);
    const f: ServerFrame = frame.kind === 'typing' ? { op: 'typing', from, conv: key } : { op: 'receipt', conv: key, by: from, mid: frame.mid };
    await this.#c.relay(others, f);
  }

  ringChanged(): void {
    const store = this.#store;
    this.#cache.clear();
    this.#budgets.clear();
    this.#pump.ringChanged();
    for (const key of store.knownUsers()) {
      if (key.startsWith('g:') && this.#c.owns(key) && store.acked(key, FANOUT) < store.committedSeq(key)) this.#pump.kick(key.slice(2));
    }
  }

  progress(): { owned: number; fanoutBehind: number; pumping: number } {
    const store = this.#store;
    let owned = 0;
    let fanoutBehind = 0;
    for (const key of store.knownUsers()) {
      if (!key.startsWith('g:') || !this.#c.owns(key)) continue;
      owned++;
      fanoutBehind += Math.max(0, store.committedSeq(key) - store.acked(key, FANOUT));
    }
    return { owned, fanoutBehind, pumping: this.#pump.running };
  }

  async #runBatch(group: string, works: Work[]): Promise<(Done | Error)[]> {
    const c = this.#c;
    const key = groupKey(group);
    const moving = () => works.map(() => new UnavailableError(`${key} is moving to another node`));
    if (!c.owns(key)) return moving();
    const s = await this.#cache.load(group);
    const postKeys = works.flatMap((w) => (w.kind === 'post' ? [{ user: key, dkey: postKey(w.post.from, w.post.cid) }] : []));
    const found = await this.#store.findDedup(postKeys);
    // From here to the append nothing awaits: the state and the log move together.
    if (!c.owns(key)) return moving();
    const batch = new LogBatch(
      { store: this.#store, nextMid: c.nextMid, midTime: c.midTime, maxMembers: c.maxMembers, limits: this.#limits, onLimited: c.onLimited },
      group, s, this.#budgets.get(group), found, this.#now(),
    );
    for (const w of works) batch.add(w);
    batch.snapshotIfDue(this.#snapshotEvery);
    const failed = await this.#commit(group, batch);
    if (failed) return works.map(() => failed);
    // Also after events alone: the cursor moves past them, so that nothing shows as behind.
    if (batch.items.length > 0 || batch.waitFor.some((w) => w > 0)) this.#pump.kick(group);
    // A post whose fan-out outlasts the deadline is answered unavailable alone (it stays in the
    // log and keeps going out; a resend of its cid answers it once every member has it).
    const late: PostResult = { code: 'unavailable', message: `group ${group}: the members' homes did not all take the message in time` };
    const { out, waitFor } = batch;
    return out.map((r, i) => (waitFor[i]! > 0 ? this.#pump.reached(group, waitFor[i]!).then((ok) => (ok ? r as PostResult : late)) : r));
  }

  /** Appends the batch and waits until every copy of the log holds it; the error to answer every
   * work of the batch with when that fails. */
  async #commit(group: string, batch: LogBatch): Promise<Error | undefined> {
    const store = this.#store;
    const key = groupKey(group);
    try {
      // Seqs are handed out in call order, so the events got the seqs `apply` was given in LogBatch.
      if (batch.items.length > 0) store.append(batch.items);
      // In the same commit as its parts: loads start from the snapshot only once it is whole.
      if (batch.snapshot) {
        store.ack(key, SNAPSHOT, batch.snapshot);
        this.#c.onSnapshot?.();
      }
      await store.flush();
      await this.#c.replicated(key);
    } catch (e) {
      // Not confirmed: the state may hold events that another home will not have. Reload later.
      this.#cache.drop(group);
      return (e as Error).name === 'UnavailableError' ? e as Error : new UnavailableError(`group ${group}: ${(e as Error).message}`);
    }
    return undefined;
  }
}
