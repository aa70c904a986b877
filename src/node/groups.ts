// The group home: for the groups the ring gives this node (key `g:<group>`), it keeps the
// group's log — membership events and messages in one seq order, stored as the timeline of the
// key `g:<group>`, so replication, handoff and fencing treat it like any user's timeline. Per
// group, one batch at a time: ops and posts are appended in arrival order, made durable on every
// copy, and the batch's messages are then fanned out to the members' homes (one request per home
// node) before the next batch starts, so every member gets the group's messages in log order.
import type { Logger } from 'pino';
import { apply, change, check, emptyGroup, eventBody, membersAt, parseEvent } from '../groups/index.ts';
import type { GroupEvent, GroupEventOp, GroupState } from '../groups/index.ts';
import type { NewEntry, Store, StoredEntry } from '../store/index.ts';
import type { CastFrame, FanItem, GroupOp, GroupPost, PostResult } from '../protocol/peer.ts';
import { GROUP_EVENT_MEMBERS } from '../protocol/peer.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { KeyedBatcher } from './batcher.ts';
import { ClientError, ForbiddenError, UnavailableError } from './errors.ts';

export type GroupInfo = { group: string; owner: string; members: string[] };

export type GroupsComponents = {
  store: Store;
  /** Whether this node serves the key now (ring owner, not paused by a handoff). */
  owns: (key: string) => boolean;
  /** Resolves once the key's replicas hold everything committed for it so far. */
  replicated: (key: string) => Promise<void>;
  nextMid: () => string;
  midTime: (mid: string) => number;
  maxMembers: number;
  /** Hands group messages to the members' homes; resolves once every copy is durable there. */
  fanout: (items: FanItem[]) => Promise<void>;
  /** Pushes a frame to the online devices of these users (at their homes). */
  relay: (users: string[], frame: ServerFrame) => Promise<void>;
  log: Logger;
};

export type Groups = {
  /** A membership op or a query by `actor`; info and members answer the group. */
  op(actor: string, op: GroupOp, group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Orders posts into the log and fans them out; per post its mid or its refusal. */
  post(group: string, posts: GroupPost[]): Promise<PostResult[]>;
  /** Relays a typing notice or a receipt of a member to the other members. */
  cast(group: string, from: string, frame: CastFrame): Promise<void>;
  /** The ring changed: cached group state may be stale (the group moved away and back). */
  ringChanged(): void;
  /** Groups with work queued or running here. */
  busy(): number;
};

export const groupKey = (group: string): string => `g:${group}`;
const postKey = (from: string, cid: string): string => `c:${from}:${cid}`;

type Work =
  | { kind: 'op'; actor: string; op: GroupOp; members: string[] }
  | { kind: 'post'; post: GroupPost };
type Done = GroupInfo | undefined | PostResult;

export function createGroups(c: GroupsComponents): Groups {
  const { store, log } = c;
  // State of groups this node serves, loaded from the log on first use after a ring change.
  let cache = new Map<string, GroupState>();

  async function load(group: string): Promise<GroupState> {
    const have = cache.get(group);
    if (have) return have;
    const key = groupKey(group);
    await store.flush();
    const rows = await store.entriesByKey(key, 'e:');
    const s = emptyGroup();
    for (const r of rows) {
      const e = parseEvent(r.seq, r.from, r.body);
      if (e) apply(s, e);
      else log.warn({ group, seq: r.seq }, 'group log: an event this version does not know; skipped');
    }
    // Only kept while this node serves the group: another ring change may have come meanwhile.
    const now = cache.get(group);
    if (now) return now;
    if (c.owns(key)) cache.set(group, s);
    return s;
  }

  const info = (group: string, s: GroupState): GroupInfo => ({ group, owner: s.owner!, members: [...s.members] });

  const batcher = new KeyedBatcher<Work, Done>((group, works) => runBatch(group, works), 1000);

  async function runBatch(group: string, works: Work[]): Promise<(Done | Error)[]> {
    const key = groupKey(group);
    if (!c.owns(key)) return works.map(() => new UnavailableError(`${key} is moving to another node`));
    const s = await load(group);
    const postKeys = works.flatMap((w) => (w.kind === 'post' ? [{ user: key, dkey: postKey(w.post.from, w.post.cid) }] : []));
    const found = await store.findDedup(postKeys);
    // From here to the append nothing awaits: the state and the log move together.
    if (!c.owns(key)) return works.map(() => new UnavailableError(`${key} is moving to another node`));
    const out: (Done | Error)[] = [];
    const items: NewEntry[] = [];
    const fans: FanItem[] = [];
    const base = { conv: key, group };
    for (const w of works) {
      if (w.kind === 'op') {
        if (w.op === 'info' || w.op === 'members') {
          const no = check(s, group, w.actor, 'info', [], c.maxMembers);
          out.push(no ? new ClientError(no.code, no.message) : info(group, s));
          continue;
        }
        const no = check(s, group, w.actor, w.op, w.members, c.maxMembers);
        if (no) {
          out.push(new ClientError(no.code, no.message));
          continue;
        }
        const ev = change(s, w.actor, w.op, w.members);
        if (ev) {
          // Long member lists go as one event and then adds of at most GROUP_EVENT_MEMBERS each.
          const parts: Omit<GroupEvent, 'seq'>[] = [];
          for (let i = 0; i === 0 || i < ev.members.length; i += GROUP_EVENT_MEMBERS) {
            parts.push({ ...ev, op: i === 0 ? ev.op : 'add', members: ev.members.slice(i, i + GROUP_EVENT_MEMBERS) });
          }
          for (const p of parts) {
            const mid = c.nextMid();
            const seq = store.lastSeq(key) + items.length + 1;
            items.push({ ...base, user: key, mid, from: p.actor, body: eventBody(p.op as GroupEventOp, p.members), ts: c.midTime(mid), dkey: `e:${mid}` });
            apply(s, { ...p, seq });
          }
        }
        out.push(undefined);
        continue;
      }
      const p = w.post;
      const dkey = postKey(p.from, p.cid);
      const existing = found.get(`${key}\0${dkey}`) ?? store.peekDedup(key, dkey) ?? items.find((i) => i.dkey === dkey);
      if (existing) {
        // Posted before (a resend after a failure): its copies go again to the members of then,
        // idempotent by mid at their homes, so an interrupted fan-out is completed.
        const seq = 'seq' in existing ? (existing as StoredEntry).seq : store.lastSeq(key) + items.indexOf(existing) + 1;
        fans.push({ ...base, mid: existing.mid, from: p.from, body: existing.body, ts: existing.ts, users: [...membersAt(s, seq)], cid: p.cid });
        out.push({ mid: existing.mid });
        continue;
      }
      const no = check(s, group, p.from, 'post', [], c.maxMembers);
      if (no) {
        out.push({ code: no.code as 'not_found' | 'forbidden', message: no.message });
        continue;
      }
      items.push({ ...base, user: key, mid: p.mid, from: p.from, body: p.body, ts: p.ts, dkey });
      fans.push({ ...base, mid: p.mid, from: p.from, body: p.body, ts: p.ts, users: [...s.members], cid: p.cid });
      out.push({ mid: p.mid });
    }
    // Seqs are handed out in call order, so the events got the seqs `apply` was given above.
    if (items.length > 0) store.append(items);
    try {
      await store.flush();
      await c.replicated(key);
      if (fans.length) await c.fanout(fans);
    } catch (e) {
      // Not confirmed: the state may hold events that another home will not have. Reload later.
      cache.delete(group);
      const err = (e as Error).name === 'UnavailableError' || (e as Error).name === 'ClientError' ? e as Error
        : new UnavailableError(`group ${group}: ${(e as Error).message}`);
      return works.map(() => err);
    }
    return out;
  }

  return {
    async op(actor, op, group, members) {
      return (await batcher.add(group, { kind: 'op', actor, op, members })) as GroupInfo | undefined;
    },

    post(group, posts) {
      return Promise.all(posts.map((post) => batcher.add(group, { kind: 'post', post }) as Promise<PostResult>));
    },

    async cast(group, from, frame) {
      const key = groupKey(group);
      if (!c.owns(key)) throw new UnavailableError(`${key} is moving to another node`);
      const s = await load(group);
      const no = check(s, group, from, 'info', [], c.maxMembers);
      if (no) {
        if (no.code === 'forbidden') throw new ForbiddenError(no.message);
        throw new ClientError(no.code, no.message);
      }
      const others = [...s.members].filter((m) => m !== from);
      const f: ServerFrame = frame.kind === 'typing' ? { op: 'typing', from, conv: key } : { op: 'receipt', conv: key, by: from, mid: frame.mid };
      await c.relay(others, f);
    },

    ringChanged() {
      cache = new Map();
    },

    busy: () => batcher.size,
  };
}
