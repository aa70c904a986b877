// The fan-out pump of the groups this node is home of: one per group, strictly in log order, it
// hands the log's messages to the members' homes (through `fanout`) and moves the group's
// fan-out cursor, a device cursor of the key `g:<group>` (replicated, so a new home resumes from
// it). A message goes out only once every member's copy of the one before it is durable, to the
// members at the message's seq: the pump keeps the member state at its cursor, started from the
// latest snapshot at or before the cursor (cursor FANBASE) and moved by the events it passes.
import type { Logger } from 'pino';
import { apply, emptyGroup, parseEvent } from '../groups/index.ts';
import type { GroupState } from '../groups/index.ts';
import { copyBytes } from '../groups/limits.ts';
import type { Store } from '../store/index.ts';
import type { FanItem } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';

/** The device names of a group log's cursors: every message up to FANOUT is with every member;
 * SNAPSHOT is the seq of the latest snapshot's first part; FANBASE that of the latest snapshot at
 * or before FANOUT. */
export const FANOUT = 'fanout';
export const SNAPSHOT = 'snapshot';
export const FANBASE = 'fanbase';

/** The dedup-key prefix of the events of the generation that starts with the snapshot at `base`
 * (0: the log's start, before any snapshot). Loading a group reads one generation. */
export const genPrefix = (base: number): string => (base > 0 ? `s:${base}:` : 'e:');
/** Whether a group log entry is a membership event or snapshot part (not a message). */
export const isLogEvent = (dkey: string): boolean => dkey.startsWith('e:') || dkey.startsWith('s:');

const PUMP_PAGE = 500;
/** Member copies one pump page makes at most: a page of a large group's messages holds fewer. */
const PAGE_COPIES = 10_000;
const DEADLINE_MS = 10_000;

export type PumpComponents = {
  store: Store;
  owns: (key: string) => boolean;
  readable?: (key: string) => number;
  fanout: (items: FanItem[], still: () => boolean) => Promise<void>;
  ringChange: (ms: number) => Promise<void>;
  /** The cursor moved to `cursor` after `ms` spent handing out `entries` entries of `bytes`. */
  advanced?: (group: string, cursor: number, work: { ms: number; entries: number; bytes: number }) => void;
  deadlineMs?: number;
  log: Logger;
};

export type Pump = {
  /** Starts the group's pump unless it runs. */
  kick(group: string): void;
  /** Resolves true once the fan-out cursor is at `seq` or beyond, false after the deadline (the
   * pump goes on); UnavailableError once this node stops serving the group (the next home goes
   * on, and the sender's retry reaches it). */
  reached(group: string, seq: number): Promise<boolean>;
  ringChanged(): void;
  readonly running: number;
};

export function createPump(c: PumpComponents): Pump {
  const { store, log } = c;
  const groupKey = (group: string) => `g:${group}`;
  const pumps = new Set<string>();
  const waiters = new Map<string, { seq: number; resolve(): void; reject(e: Error): void }[]>();
  // Per group pumped since the last ring change, the member state at the fan-out cursor.
  let runs = new Map<string, { at: number; state: GroupState }>();

  function reached(group: string, seq: number): Promise<boolean> {
    if (store.acked(groupKey(group), FANOUT) >= seq) return Promise.resolve(true);
    return new Promise<boolean>((resolve, reject) => {
      let l = waiters.get(group);
      if (!l) waiters.set(group, (l = []));
      const w = {
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
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
        resolve(false);
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

  /** The member state just after the entry at `cursor`: the generation of the latest snapshot
   * at or before it (one bounded read), folded up to the cursor. */
  async function stateAt(group: string, cursor: number): Promise<GroupState> {
    const key = groupKey(group);
    const rows = await store.entriesByKey(key, genPrefix(store.acked(key, FANBASE)));
    const s = emptyGroup();
    for (const r of rows) {
      if (r.seq > cursor) break;
      const e = parseEvent(r.seq, r.ts, r.from, r.body);
      if (e) apply(s, e);
    }
    return s;
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
      let run = runs.get(group);
      if (!run || run.at !== cursor) {
        run = { at: cursor, state: await stateAt(group, cursor) };
        runs.set(group, run);
      }
      const size = Math.max(1, Math.min(PUMP_PAGE, Math.floor(PAGE_COPIES / Math.max(1, run.state.members.size))));
      const t0 = performance.now();
      const page = await store.sync(key, cursor, Math.min(size, upTo - cursor));
      if (page.entries.length === 0) {
        pumps.delete(group);
        return;
      }
      // The members of each message: those at the cursor, then the page's own events applied.
      // Worked on a copy: the page may have to be handed out again.
      const s: GroupState = { ...run.state, members: new Map(run.state.members), events: [...run.state.events] };
      let users: string[] | undefined;
      let base = 0;
      let bytes = 0;
      const items: FanItem[] = [];
      for (const e of page.entries) {
        if (isLogEvent(e.dkey)) {
          const ev = parseEvent(e.seq, e.ts, e.from, e.body);
          if (ev) apply(s, ev);
          if (ev?.op === 'snapshot' && ev.part === 0) base = e.seq;
          users = undefined;
          continue;
        }
        users ??= [...s.members.keys()];
        const cid = e.dkey.slice(2 + e.from.length + 1);
        items.push({ mid: e.mid, conv: key, from: e.from, group, body: e.body, ts: e.ts, users, cid });
        bytes += copyBytes(Buffer.byteLength(e.body)) * users.length;
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
      // In one commit with the cursor: the snapshot the state at the cursor starts from.
      store.ack(key, FANOUT, last);
      if (base) store.ack(key, FANBASE, base);
      if (runs.get(group) === run) runs.set(group, { at: last, state: s });
      c.advanced?.(group, last, { ms: performance.now() - t0, entries: page.entries.length, bytes });
      advanced(group, last);
    }
  }

  return {
    kick,
    reached,
    ringChanged() {
      runs = new Map();
      for (const group of [...waiters.keys()]) if (!c.owns(groupKey(group)) && !pumps.has(group)) abandon(group);
    },
    get running() {
      return pumps.size;
    },
  };
}
