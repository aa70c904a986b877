// One batch of a group's ops and posts, worked against the group's state with nothing awaited
// in between: the entries to append (events, messages, a member snapshot when one is due), and
// per op or post its answer and the seq the answer waits for (0: none; a post is answered once
// the pump is past its entry).
import { apply, change, check, eventBody, parseEvent, snapshotBodies, snapshotDue } from '../groups/index.ts';
import type { GroupEvent, GroupEventOp, GroupState } from '../groups/index.ts';
import { admitPost, copyBytes } from '../groups/limits.ts';
import type { GroupLimits, Refusal } from '../groups/limits.ts';
import type { NewEntry, Store, StoredEntry } from '../store/index.ts';
import type { GroupOp, GroupPost, PostResult } from '../protocol/peer.ts';
import { GROUP_EVENT_MEMBERS } from '../protocol/peer.ts';
import { ClientError } from '../protocol/errors.ts';
import { FANOUT, genPrefix, groupKey, postKey } from './group-keys.ts';
import type { Budget } from './group-state.ts';
import type { GroupInfo } from './groups.ts';

export type Work =
  | { kind: 'op'; actor: string; op: GroupOp; members: string[] }
  | { kind: 'post'; post: GroupPost };
/** A post's answer is a promise: it settles once the pump is past the post's entry, while the
 * next batch is already being appended. */
export type Done = GroupInfo | undefined | PostResult | Promise<PostResult>;

export type BatchComponents = {
  store: Store;
  nextMid: () => string;
  midTime: (mid: string) => number;
  maxMembers: number;
  limits: GroupLimits;
  onLimited?: ((reason: Refusal['reason']) => void) | undefined;
};

export const groupInfo = (group: string, s: GroupState): GroupInfo => ({ group, owner: s.owner!, members: [...s.members.keys()], joined: Object.fromEntries(s.members) });

export class LogBatch {
  /** The entries to append, in order. */
  readonly items: NewEntry[] = [];
  /** Per work, its answer and the seq the answer waits for. */
  readonly out: (Done | Error)[] = [];
  readonly waitFor: number[] = [];
  /** The seq of the member snapshot's first part this batch writes (0: none). */
  snapshot = 0;
  #c: BatchComponents;
  #group: string;
  #key: string;
  #s: GroupState;
  #b: Budget;
  #found: Map<string, StoredEntry>;
  #t: number;
  #backlog: { entries: number; bytes: number };

  /** `found`: the posts' dedup entries already in the store (see Store.findDedup). */
  constructor(c: BatchComponents, group: string, s: GroupState, b: Budget, found: Map<string, StoredEntry>, t: number) {
    this.#c = c;
    this.#group = group;
    this.#key = groupKey(group);
    this.#s = s;
    this.#b = b;
    this.#found = found;
    this.#t = t;
    const cursor = c.store.acked(this.#key, FANOUT);
    this.#backlog = b.backlog.measure(c.store.lastSeq(this.#key), cursor, s.members.size);
  }

  add(w: Work): void {
    if (w.kind === 'op') this.#op(w);
    else this.#post(w.post);
  }

  #answer(r: Done | Error, seq = 0): void {
    this.out.push(r);
    this.waitFor.push(seq);
  }

  /** Appends an entry of the log (its seq as `apply` is told) and counts it in the backlog. */
  #push(e: Pick<NewEntry, 'mid' | 'from' | 'body' | 'ts' | 'dkey'>, bytes: number): number {
    this.items.push({ conv: this.#key, group: this.#group, user: this.#key, ...e });
    const seq = this.#c.store.lastSeq(this.#key) + this.items.length;
    this.#b.backlog.add(seq, bytes);
    this.#backlog.entries++;
    this.#backlog.bytes += bytes;
    return seq;
  }

  /** The dedup key of a new event: in the generation of the state's latest snapshot. */
  #eventKey(mid: string): string {
    const first = this.#s.events[0];
    return first?.op === 'snapshot' ? `${genPrefix(first.seq)}${mid}` : `e:${mid}`;
  }

  #op(w: Extract<Work, { kind: 'op' }>): void {
    const { maxMembers } = this.#c;
    const s = this.#s;
    if (w.op === 'info' || w.op === 'members') {
      const no = check(s, this.#group, w.actor, 'info', [], maxMembers);
      return this.#answer(no ? new ClientError(no.code, no.message) : groupInfo(this.#group, s));
    }
    const no = check(s, this.#group, w.actor, w.op, w.members, maxMembers);
    if (no) return this.#answer(new ClientError(no.code, no.message));
    const ev = change(s, w.actor, w.op, w.members);
    if (ev) {
      // Long member lists go as one event and then adds of at most GROUP_EVENT_MEMBERS each.
      const parts: Omit<GroupEvent, 'seq' | 'ts'>[] = [];
      for (let i = 0; i === 0 || i < ev.members.length; i += GROUP_EVENT_MEMBERS) {
        parts.push({ ...ev, op: i === 0 ? ev.op : 'add', members: ev.members.slice(i, i + GROUP_EVENT_MEMBERS) });
      }
      for (const p of parts) {
        const mid = this.#c.nextMid();
        const ts = this.#c.midTime(mid);
        const seq = this.#push({ mid, from: p.actor, body: eventBody(p.op as GroupEventOp, p.members), ts, dkey: this.#eventKey(mid) }, 0);
        apply(s, { ...p, seq, ts });
      }
    }
    this.#answer(undefined);
  }

  #post(p: GroupPost): void {
    const { store } = this.#c;
    const key = this.#key;
    const dkey = postKey(p.from, p.cid);
    const existing = this.#found.get(`${key}\0${dkey}`) ?? store.peekDedup(key, dkey) ?? this.items.find((i) => i.dkey === dkey);
    if (existing) {
      // Posted before (a resend after a failure): answered once the pump is past it.
      const seq = 'seq' in existing ? (existing as StoredEntry).seq : store.lastSeq(key) + this.items.indexOf(existing) + 1;
      return this.#answer({ mid: existing.mid }, seq);
    }
    const no = check(this.#s, this.#group, p.from, 'post', [], this.#c.maxMembers);
    if (no) return this.#answer({ code: no.code as 'not_found' | 'forbidden', message: no.message });
    // Past the group's rate or backlog: refused, nothing appended (the cid stays free).
    const b = this.#b;
    const over = admitPost(this.#group, this.#c.limits, b.posts, this.#backlog, (e, by) => b.backlog.eta(e, by), this.#t);
    if (over) {
      this.#c.onLimited?.(over.reason);
      return this.#answer({ code: 'rate_limited', message: over.message });
    }
    const mid = p.mid;
    this.#answer({ mid }, this.#push({ mid, from: p.from, body: p.body, ts: p.ts, dkey }, copyBytes(Buffer.byteLength(p.body)) * this.#s.members.size));
  }

  /** Every so many events, the members as they now are: a load then starts there. */
  snapshotIfDue(every: number): void {
    const s = this.#s;
    if (!snapshotDue(s, every, GROUP_EVENT_MEMBERS)) return;
    const bodies = snapshotBodies(s, GROUP_EVENT_MEMBERS);
    const first = this.#c.store.lastSeq(this.#key) + this.items.length + 1;
    for (const body of bodies) {
      const mid = this.#c.nextMid();
      const ts = this.#c.midTime(mid);
      const seq = this.#push({ mid, from: s.owner ?? 'group', body, ts, dkey: `${genPrefix(first)}${mid}` }, 0);
      apply(s, parseEvent(seq, ts, s.owner ?? 'group', body)!);
    }
    this.snapshot = first;
  }
}
