// The group home: for the groups the ring gives this node (key `g:<group>`), it keeps the
// group's log — membership events and messages in one seq order, stored as the timeline of the
// key `g:<group>`, so replication, handoff and fencing treat it like any user's timeline. Per
// group, one batch at a time: ops and posts are appended in arrival order and made durable on
// every copy of the log; the pump (group-pump.ts) hands the messages to the members' homes, and
// a post is answered once the pump is past it. What a group may cost is bounded here: posts per
// second, the fan-out backlog, typing frames per second, and the events a load reads (a member
// snapshot every so many events; loading reads the latest snapshot and the events after it).
import type { Logger } from 'pino';
import { apply, change, check, emptyGroup, eventBody, parseEvent, snapshotBodies, snapshotDue } from '../groups/index.ts';
import type { GroupEvent, GroupEventOp, GroupState } from '../groups/index.ts';
import { admitPost, admitTyping, Backlog, copyBytes, TokenBucket } from '../groups/limits.ts';
import type { GroupLimits, Refusal } from '../groups/limits.ts';
import type { NewEntry, Store, StoredEntry } from '../store/index.ts';
import type { CastFrame, FanItem, GroupOp, GroupPost, PostResult } from '../protocol/peer.ts';
import { GROUP_EVENT_MEMBERS } from '../protocol/peer.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { KeyedBatcher } from '../channel/batcher.ts';
import { ClientError, ForbiddenError, UnavailableError } from '../protocol/errors.ts';
import { createPump, FANOUT, genPrefix, SNAPSHOT } from './group-pump.ts';

/** `joined`: when each member joined (ms), an extension of the group reply. */
export type GroupInfo = { group: string; owner: string; members: string[]; joined: Record<string, number> };

export type GroupsComponents = {
  store: Store;
  /** Whether this node serves the key now (ring owner, not paused by a handoff). */
  owns: (key: string) => boolean;
  /** Resolves once the key's replicas hold everything committed for it so far. */
  replicated: (key: string) => Promise<void>;
  /** The highest seq of the key on every copy (the pump hands out nothing a crash could undo). */
  readable?: (key: string) => number;
  nextMid: () => string;
  midTime: (mid: string) => number;
  maxMembers: number;
  /** Hands group messages to the members' homes; resolves once every copy is durable there.
   * Gives up once `still()` turns false (this node no longer serves the group). */
  fanout: (items: FanItem[], still: () => boolean) => Promise<void>;
  /** Resolves when the ring changes or after `ms`. */
  ringChange: (ms: number) => Promise<void>;
  /** How long a post waits for its fan-out before it is answered unavailable (the pump goes on). */
  deadlineMs?: number;
  /** Pushes a frame to the online devices of these users (at their homes). */
  relay: (users: string[], frame: ServerFrame) => Promise<void>;
  /** Posts per second, fan-out backlog and typing frames per group (defaults: GROUP_LIMITS). */
  limits?: Partial<GroupLimits>;
  /** Membership events between two member snapshots of a group's log. */
  snapshotEvery?: number;
  /** A post or typing notice was refused by a group limit. */
  onLimited?: (reason: Refusal['reason']) => void;
  /** A member snapshot was written to a group's log. */
  onSnapshot?: () => void;
  now?: () => number;
  log: Logger;
};

export type Groups = {
  /** A membership op or a query by `actor`; info and members answer the group. */
  op(actor: string, op: GroupOp, group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Orders posts into the log and fans them out; per post its mid or its refusal. */
  post(group: string, posts: GroupPost[]): Promise<PostResult[]>;
  /** Relays a typing notice or a receipt of a member to the other members. */
  cast(group: string, from: string, frame: CastFrame): Promise<void>;
  /** The ring changed: cached group state may be stale (the group moved away and back), and
   * groups this node now serves may have messages the previous home did not fan out. */
  ringChanged(): void;
  /** The groups this node is home of, and how many of their log entries the pumps have still
   * to hand out (0 when every member has every message). */
  progress(): { owned: number; fanoutBehind: number; pumping: number };
};

export const groupKey = (group: string): string => `g:${group}`;
const postKey = (from: string, cid: string): string => `c:${from}:${cid}`;

export const GROUP_LIMITS: GroupLimits = { rate: 200, burst: 400, backlog: 1000, backlogBytes: 8 << 20, typingFrames: 10_000 };
export const SNAPSHOT_EVERY = 256;

type Work =
  | { kind: 'op'; actor: string; op: GroupOp; members: string[] }
  | { kind: 'post'; post: GroupPost };
/** A post's answer is a promise: it settles once the pump is past the post's entry, while the
 * next batch is already being appended. */
type Done = GroupInfo | undefined | PostResult | Promise<PostResult>;

export function createGroups(c: GroupsComponents): Groups {
  const { store, log } = c;
  const now = c.now ?? Date.now;
  const limits: GroupLimits = { ...GROUP_LIMITS, ...c.limits };
  const snapshotEvery = c.snapshotEvery ?? SNAPSHOT_EVERY;
  // State of groups this node serves, loaded from the log on first use after a ring change.
  let cache = new Map<string, GroupState>();
  // Per group served here: its post and typing buckets and its fan-out backlog.
  type Budget = { posts: TokenBucket; typing: TokenBucket; backlog: Backlog };
  let budgets = new Map<string, Budget>();
  function budget(group: string): Budget {
    let b = budgets.get(group);
    if (!b) {
      const t = now();
      if (budgets.size >= 10_000) {
        for (const [g, x] of budgets) if (x.backlog.empty && x.posts.full(t) && x.typing.full(t)) budgets.delete(g);
      }
      b = { posts: new TokenBucket(limits.rate, limits.burst, t), typing: new TokenBucket(limits.typingFrames, 2 * limits.typingFrames, t), backlog: new Backlog() };
      budgets.set(group, b);
    }
    return b;
  }
  const refused = (r: Refusal): PostResult => {
    c.onLimited?.(r.reason);
    return { code: 'rate_limited', message: r.message };
  };

  const pump = createPump({
    store, owns: c.owns, ...(c.readable ? { readable: c.readable } : {}), fanout: c.fanout, ringChange: c.ringChange,
    ...(c.deadlineMs !== undefined ? { deadlineMs: c.deadlineMs } : {}), log,
    advanced: (group, cursor, work) => budgets.get(group)?.backlog.advance(cursor, work),
  });

  async function load(group: string): Promise<GroupState> {
    const have = cache.get(group);
    if (have) return have;
    const key = groupKey(group);
    let rows: StoredEntry[];
    for (;;) {
      await store.flush();
      const seq = store.lastSeq(key);
      // The latest snapshot and the events after it: a bounded read however long the log.
      rows = await store.entriesByKey(key, genPrefix(store.acked(key, SNAPSHOT)));
      // A batch that began before a ring change cleared the cache may have appended meanwhile.
      if (store.lastSeq(key) === seq) break;
    }
    const s = emptyGroup();
    for (const r of rows) {
      const e = parseEvent(r.seq, r.ts, r.from, r.body);
      if (e) apply(s, e);
      else log.warn({ group, seq: r.seq }, 'group log: an event this version does not know; skipped');
    }
    // Only kept while this node serves the group: another ring change may have come meanwhile.
    const now = cache.get(group);
    if (now) return now;
    if (c.owns(key)) cache.set(group, s);
    return s;
  }

  const info = (group: string, s: GroupState): GroupInfo => ({ group, owner: s.owner!, members: [...s.members.keys()], joined: Object.fromEntries(s.members) });
  /** The dedup key of a new event: in the generation of the state's latest snapshot. */
  const eventKey = (s: GroupState, mid: string): string => {
    const first = s.events[0];
    return first?.op === 'snapshot' ? `${genPrefix(first.seq)}${mid}` : `e:${mid}`;
  };

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
    // Each post is answered once the pump has fanned out up to its entry.
    const waitFor: number[] = [];
    const base = { conv: key, group };
    const b = budget(group);
    const t = now();
    const cursor = store.acked(key, FANOUT);
    const backlog = b.backlog.measure(store.lastSeq(key), cursor, s.members.size);
    /** Appends an entry of the log (its seq as `apply` is told) and counts it in the backlog. */
    const push = (e: NewEntry, bytes: number): number => {
      items.push(e);
      const seq = store.lastSeq(key) + items.length;
      b.backlog.add(seq, bytes);
      backlog.entries++;
      backlog.bytes += bytes;
      return seq;
    };
    for (const w of works) {
      if (w.kind === 'op') {
        if (w.op === 'info' || w.op === 'members') {
          const no = check(s, group, w.actor, 'info', [], c.maxMembers);
          out.push(no ? new ClientError(no.code, no.message) : info(group, s));
          waitFor.push(0);
          continue;
        }
        const no = check(s, group, w.actor, w.op, w.members, c.maxMembers);
        if (no) {
          out.push(new ClientError(no.code, no.message));
          waitFor.push(0);
          continue;
        }
        const ev = change(s, w.actor, w.op, w.members);
        if (ev) {
          // Long member lists go as one event and then adds of at most GROUP_EVENT_MEMBERS each.
          const parts: Omit<GroupEvent, 'seq' | 'ts'>[] = [];
          for (let i = 0; i === 0 || i < ev.members.length; i += GROUP_EVENT_MEMBERS) {
            parts.push({ ...ev, op: i === 0 ? ev.op : 'add', members: ev.members.slice(i, i + GROUP_EVENT_MEMBERS) });
          }
          for (const p of parts) {
            const mid = c.nextMid();
            const ts = c.midTime(mid);
            const seq = push({ ...base, user: key, mid, from: p.actor, body: eventBody(p.op as GroupEventOp, p.members), ts, dkey: eventKey(s, mid) }, 0);
            apply(s, { ...p, seq, ts });
          }
        }
        out.push(undefined);
        waitFor.push(0);
        continue;
      }
      const p = w.post;
      const dkey = postKey(p.from, p.cid);
      const existing = found.get(`${key}\0${dkey}`) ?? store.peekDedup(key, dkey) ?? items.find((i) => i.dkey === dkey);
      if (existing) {
        // Posted before (a resend after a failure): answered once the pump is past it.
        const seq = 'seq' in existing ? (existing as StoredEntry).seq : store.lastSeq(key) + items.indexOf(existing) + 1;
        out.push({ mid: existing.mid });
        waitFor.push(seq);
        continue;
      }
      const no = check(s, group, p.from, 'post', [], c.maxMembers);
      if (no) {
        out.push({ code: no.code as 'not_found' | 'forbidden', message: no.message });
        waitFor.push(0);
        continue;
      }
      // Past the group's rate or backlog: refused, nothing appended (the cid stays free).
      const over = admitPost(group, limits, b.posts, backlog, (e, by) => b.backlog.eta(e, by), t);
      if (over) {
        out.push(refused(over));
        waitFor.push(0);
        continue;
      }
      out.push({ mid: p.mid });
      waitFor.push(push({ ...base, user: key, mid: p.mid, from: p.from, body: p.body, ts: p.ts, dkey }, copyBytes(Buffer.byteLength(p.body)) * s.members.size));
    }
    // Every so many events, the members as they now are: a load then starts there.
    let snapshot = 0;
    if (snapshotDue(s, snapshotEvery, GROUP_EVENT_MEMBERS)) {
      const bodies = snapshotBodies(s, GROUP_EVENT_MEMBERS);
      const first = store.lastSeq(key) + items.length + 1;
      for (const body of bodies) {
        const mid = c.nextMid();
        const ts = c.midTime(mid);
        const seq = push({ ...base, user: key, mid, from: s.owner ?? 'group', body, ts, dkey: `${genPrefix(first)}${mid}` }, 0);
        apply(s, parseEvent(seq, ts, s.owner ?? 'group', body)!);
      }
      snapshot = first;
    }
    try {
      // Seqs are handed out in call order, so the events got the seqs `apply` was given above.
      if (items.length > 0) store.append(items);
      // In the same commit as its parts: loads start from the snapshot only once it is whole.
      if (snapshot) {
        store.ack(key, SNAPSHOT, snapshot);
        c.onSnapshot?.();
      }
      await store.flush();
      await c.replicated(key);
    } catch (e) {
      // Not confirmed: the state may hold events that another home will not have. Reload later.
      cache.delete(group);
      const err = (e as Error).name === 'UnavailableError' ? e as Error : new UnavailableError(`group ${group}: ${(e as Error).message}`);
      return works.map(() => err);
    }
    // Also after events alone: the cursor moves past them, so that nothing shows as behind.
    if (items.length > 0 || waitFor.some((w) => w > 0)) pump.kick(group);
    // A post whose fan-out outlasts the deadline is answered unavailable alone (it stays in the
    // log and keeps going out; a resend of its cid answers it once every member has it).
    const late: PostResult = { code: 'unavailable', message: `group ${group}: the members' homes did not all take the message in time` };
    return out.map((r, i) => (waitFor[i]! > 0 ? pump.reached(group, waitFor[i]!).then((ok) => (ok ? r as PostResult : late)) : r));
  }

  return {
    async op(actor, op, group, members) {
      return (await batcher.add(group, { kind: 'op', actor, op, members })) as GroupInfo | undefined;
    },

    post(group, posts) {
      // A post's answer adopts the promise its batch gave it (see Done).
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
      if (frame.kind === 'typing') {
        // A notice costs one frame per other member: a large group gets few notices a second.
        const over = admitTyping(group, limits, budget(group).typing, s.members.size - 1, now());
        if (over) {
          c.onLimited?.(over.reason);
          throw new ClientError('rate_limited', over.message);
        }
      }
      const others = [...s.members.keys()].filter((m) => m !== from);
      const f: ServerFrame = frame.kind === 'typing' ? { op: 'typing', from, conv: key } : { op: 'receipt', conv: key, by: from, mid: frame.mid };
      await c.relay(others, f);
    },

    ringChanged() {
      cache = new Map();
      budgets = new Map();
      pump.ringChanged();
      for (const key of store.knownUsers()) {
        if (key.startsWith('g:') && c.owns(key) && store.acked(key, FANOUT) < store.committedSeq(key)) pump.kick(key.slice(2));
      }
    },

    progress() {
      let owned = 0;
      let fanoutBehind = 0;
      for (const key of store.knownUsers()) {
        if (!key.startsWith('g:') || !c.owns(key)) continue;
        owned++;
        fanoutBehind += Math.max(0, store.committedSeq(key) - store.acked(key, FANOUT));
      }
      return { owned, fanoutBehind, pumping: pump.running };
    },
  };
}
