// The group home: for the groups the ring gives this node (key `g:<group>`), it keeps the
// group's log — membership events and messages in one seq order, stored as the timeline of the
// key `g:<group>`, so replication, handoff and fencing treat it like any user's timeline. Per
// group, one batch at a time: ops and posts are appended in arrival order and made durable on
// every copy of the log. One pump per group hands the log's messages to the members' homes (one
// request per home node) strictly in log order: a message goes out only once every member's copy
// of the one before it is durable. The next batch is appended while the pump works; a post is
// answered once the pump is past it. The pump's position, the fan-out cursor, is kept as a
// device cursor of the key, so it is replicated too, and a new home resumes from it.
import type { Logger } from 'pino';
import { apply, change, check, emptyGroup, eventBody, fold, parseEvent } from '../groups/index.ts';
import type { GroupEvent, GroupEventOp, GroupState } from '../groups/index.ts';
import type { NewEntry, Store, StoredEntry } from '../store/index.ts';
import type { CastFrame, FanItem, GroupOp, GroupPost, PostResult } from '../protocol/peer.ts';
import { GROUP_EVENT_MEMBERS } from '../protocol/peer.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { KeyedBatcher } from './batcher.ts';
import { ClientError, ForbiddenError, UnavailableError } from './errors.ts';

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
/** The device name of a group log's fan-out cursor: every message up to it is with every member. */
const FANOUT = 'fanout';
const PUMP_PAGE = 500;
const DEADLINE_MS = 10_000;

type Work =
  | { kind: 'op'; actor: string; op: GroupOp; members: string[] }
  | { kind: 'post'; post: GroupPost };
/** A post's answer is a promise: it settles once the pump is past the post's entry, while the
 * next batch is already being appended. */
type Done = GroupInfo | undefined | PostResult | Promise<PostResult>;

export function createGroups(c: GroupsComponents): Groups {
  const { store, log } = c;
  // State of groups this node serves, loaded from the log on first use after a ring change.
  let cache = new Map<string, GroupState>();

  async function load(group: string): Promise<GroupState> {
    const have = cache.get(group);
    if (have) return have;
    const key = groupKey(group);
    let rows: StoredEntry[];
    for (;;) {
      await store.flush();
      const seq = store.lastSeq(key);
      rows = await store.entriesByKey(key, 'e:');
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
            const seq = store.lastSeq(key) + items.length + 1;
            const ts = c.midTime(mid);
            items.push({ ...base, user: key, mid, from: p.actor, body: eventBody(p.op as GroupEventOp, p.members), ts, dkey: `e:${mid}` });
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
      items.push({ ...base, user: key, mid: p.mid, from: p.from, body: p.body, ts: p.ts, dkey });
      out.push({ mid: p.mid });
      waitFor.push(store.lastSeq(key) + items.length);
    }
    try {
      // Seqs are handed out in call order, so the events got the seqs `apply` was given above.
      if (items.length > 0) store.append(items);
      await store.flush();
      await c.replicated(key);
    } catch (e) {
      // Not confirmed: the state may hold events that another home will not have. Reload later.
      cache.delete(group);
      const err = (e as Error).name === 'UnavailableError' ? e as Error : new UnavailableError(`group ${group}: ${(e as Error).message}`);
      return works.map(() => err);
    }
    // Also after events alone: the cursor moves past them, so that nothing shows as behind.
    if (items.length > 0 || waitFor.some((w) => w > 0)) kick(group);
    return out.map((r, i) => (waitFor[i]! > 0 ? reached(group, waitFor[i]!).then(() => r as PostResult) : r));
  }

  // ---- the fan-out pump: one per group, strictly in log order ----
  const pumps = new Set<string>();
  const waiters = new Map<string, { seq: number; resolve(): void; reject(e: Error): void }[]>();

  /** Resolves once the fan-out cursor of the group is at `seq` or beyond; UnavailableError after
   * the deadline or once this node stops serving the group (the pump or the next home goes on). */
  function reached(group: string, seq: number): Promise<void> {
    if (store.acked(groupKey(group), FANOUT) >= seq) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let l = waiters.get(group);
      if (!l) waiters.set(group, (l = []));
      const w = {
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      l.push(w);
      const timer = setTimeout(() => {
        const now = waiters.get(group);
        if (now) {
          const i = now.indexOf(w);
          if (i >= 0) now.splice(i, 1);
        }
        reject(new UnavailableError(`group ${group}: the members' homes did not all take the message in time`));
      }, c.deadlineMs ?? DEADLINE_MS);
      timer.unref();
    });
  }

  /** This node stopped serving the group: its waiting posts are answered unavailable now (the
   * sender's retry reaches the next home, which resumes the fan-out from the cursor). */
  function abandon(group: string): void {
    const l = waiters.get(group);
    waiters.delete(group);
    for (const w of l ?? []) w.reject(new UnavailableError(`group ${group} moved to another node while its message was fanned out`));
  }

  function advanced(group: string, cursor: number): void {
    const l = waiters.get(group);
    if (!l) return;
    const keep = l.filter((w) => w.seq > cursor);
    for (const w of l) if (w.seq <= cursor) w.resolve();
    if (keep.length) waiters.set(group, keep);
    else waiters.delete(group);
  }

  function kick(group: string): void {
    if (pumps.has(group)) return;
    pumps.add(group);
    void pump(group).catch((e: Error) => {
      pumps.delete(group);
      log.error({ group, err: e.message }, 'group fan-out stopped; it resumes with the next post or ring change');
    });
  }

  async function pump(group: string): Promise<void> {
    const key = groupKey(group);
    const still = () => c.owns(key);
    let failures = 0;
    for (;;) {
      const cursor = store.acked(key, FANOUT);
      // Checked and left synchronously: a post appended after this kicks a new pump.
      if (!still()) {
        pumps.delete(group);
        abandon(group);
        return;
      }
      const upTo = Math.min(store.committedSeq(key), c.readable?.(key) ?? Infinity);
      if (cursor >= upTo) {
        pumps.delete(group);
        return;
      }
      const s = await load(group);
      const page = await store.sync(key, cursor, Math.min(PUMP_PAGE, upTo - cursor));
      if (page.entries.length === 0) {
        pumps.delete(group);
        return;
      }
      // The members of each message: those before the page, then the page's own events applied.
      const run = fold(s.events.filter((e) => e.seq <= cursor));
      let users = [...run.members.keys()];
      const items: FanItem[] = [];
      for (const e of page.entries) {
        if (e.dkey.startsWith('e:')) {
          const ev = parseEvent(e.seq, e.ts, e.from, e.body);
          if (ev) apply(run, ev);
          users = [...run.members.keys()];
          continue;
        }
        const cid = e.dkey.slice(2 + e.from.length + 1);
        items.push({ mid: e.mid, conv: key, from: e.from, group, body: e.body, ts: e.ts, users, cid });
      }
      try {
        if (items.length) await c.fanout(items, still);
        failures = 0;
      } catch (e) {
        // A member's home is down or moving: the same messages again, nothing after them first.
        if (failures++ % 10 === 0) log.warn({ group, from: cursor + 1, messages: items.length, err: (e as Error).message }, 'group fan-out retrying');
        await c.ringChange(Math.min(2000, 100 * failures));
        continue;
      }
      const last = page.entries.at(-1)!.seq;
      store.ack(key, FANOUT, last);
      advanced(group, last);
    }
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
      const others = [...s.members.keys()].filter((m) => m !== from);
      const f: ServerFrame = frame.kind === 'typing' ? { op: 'typing', from, conv: key } : { op: 'receipt', conv: key, by: from, mid: frame.mid };
      await c.relay(others, f);
    },

    ringChanged() {
      cache = new Map();
      for (const group of [...waiters.keys()]) if (!c.owns(groupKey(group)) && !pumps.has(group)) abandon(group);
      for (const key of store.knownUsers()) {
        if (key.startsWith('g:') && c.owns(key) && store.acked(key, FANOUT) < store.committedSeq(key)) kick(key.slice(2));
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
      return { owned, fanoutBehind, pumping: pumps.size };
    },
  };
}
