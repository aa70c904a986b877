// A sender's group messages, from its home to the group's home: dedup by cid while one is in
// flight, one batch per group at a time (so a later post cannot overtake an earlier one), and the
// answer once every member's copy, the sender's own among them, is durable.
import type { Store, StoredEntry } from '../store/index.ts';
import { DEDUP_KEY } from '../store/index.ts';
import { entryWireChars, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { GroupPost, PostResult } from '../protocol/peer.ts';
import { errorOf, UnavailableError } from '../protocol/errors.ts';
import { KeyedBatcher } from '../channel/batcher.ts';
import type { Clock } from '../clock/index.ts';
import { answer, persist, settled } from './order.ts';
import type { Answerable, SenderOrder } from './order.ts';
import type { SendResult } from './types.ts';

export type GroupSendDeps = {
  store: Store;
  /** Whether this node is the sender's home by the ring. Not whether a handoff pauses the
   * sender's writes: a batch refused during a pause would be given up, and the group's next batch,
   * with later posts of the same senders, would reach the group first (see Outbox's `owns`). */
  owns: (user: string) => boolean;
  nextMid: () => string;
  midTime: (mid: string) => number;
  postGroup: ((group: string, posts: GroupPost[]) => Promise<PostResult[]>) | undefined;
  replicated: (user: string) => Promise<void>;
  onSent: ((dup: boolean) => void) | undefined;
  order: SenderOrder;
  clock: Clock;
  signal: AbortSignal | undefined;
};

export type GroupSendWork = Answerable & { from: string; cid: string; body: string; group?: string };

export class GroupSends {
  #c: GroupSendDeps;
  // Group sends of this node's senders, per group in the order they were made: one batch in
  // flight to the group's home at a time, so a later post cannot overtake an earlier one.
  // A batch stays well under the peer frame limit whatever the bodies.
  // A batch that fails with `unavailable` is sent again in its place (see `persist`), so that no
  // later batch of the group overtakes it.
  #posting: KeyedBatcher<GroupPost, PostResult>;
  // Group sends handed to the group's home and not answered yet, by sender and cid: a resend
  // meanwhile waits for the first (the sender's entry exists only once the copy is back).
  #sending = new Map<string, Promise<SendResult>>();

  constructor(c: GroupSendDeps) {
    this.#c = c;
    this.#posting = new KeyedBatcher<GroupPost, PostResult>(
      (group, posts) => persist(() => c.postGroup!(group, posts), () => posts.every((p) => c.owns(p.from)), c.clock, c.signal),
      500, (p) => entryWireChars(p.body), PEER_BUDGET_CHARS);
  }

  /** Whether a group send of this cid is in flight (a 1:1 send reusing it gets its answer). */
  sending(from: string, cid: string): boolean {
    return this.#sending.has(`${from}\0${cid}`);
  }

  /** A group send, or a resend of a cid whose entry is a group message. `existing`: the
   * sender's entry for the cid, if any (then it is posted again: the group's home recognises it
   * by sender and cid, and answers once its fan-out to every member is complete). */
  send(w: GroupSendWork, existing: StoredEntry | undefined, pending: boolean): void {
    const c = this.#c;
    const flight = `${w.from}\0${w.cid}`;
    const running = this.#sending.get(flight);
    if (running) {
      answer(w, running.then((r) => ({ ...r, dup: true as const })), c.clock);
      return;
    }
    if (!c.postGroup) {
      w.reject(new UnavailableError('groups need the cluster router'));
      return;
    }
    const group = (existing?.group ?? w.group)!;
    const mid = existing?.mid ?? c.nextMid();
    const post: GroupPost = { from: w.from, cid: w.cid, mid, body: existing?.body ?? w.body, ts: existing?.ts ?? c.midTime(mid) };
    c.onSent?.(existing !== undefined);
    const run = this.#run(group, post, existing !== undefined, pending, c.order.lastCopy.get(w.from));
    this.#sending.set(flight, run);
    c.order.after(c.order.lastPost, w.from, run);
    const forget = () => {
      if (this.#sending.get(flight) === run) this.#sending.delete(flight);
    };
    run.then(forget, forget);
    answer(w, run, c.clock);
  }

  async #run(group: string, post: GroupPost, dup: boolean, pending: boolean, copiesBefore: Promise<unknown> | undefined): Promise<SendResult> {
    const { store } = this.#c;
    if (pending) await store.flush();
    await settled(copiesBefore);
    const r = await this.#posting.add(group, post);
    // `unavailable`: its fan-out outlasted the deadline; in the group's log, still going out (safe to resend).
    if ('code' in r) throw errorOf(r.code, r.message);
    // The group's home answers once every member's copy is durable, the sender's own copy
    // (its send-dedup entry) among them.
    const dkey = DEDUP_KEY.cid(post.cid);
    const own = store.peekDedup(post.from, dkey) ?? (await store.findDedup([{ user: post.from, dkey }])).get(`${post.from}\0${dkey}`);
    if (!own) throw new UnavailableError(`${post.from} moved to another node while the group message was sent`);
    await this.#c.replicated(post.from);
    return { mid: own.mid, seq: own.seq, ts: own.ts, ...(dup ? { dup: true as const } : {}) };
  }
}
