// The pump itself (group-pump.ts is its surface): per group, a loop that reads a page of the log
// after the fan-out cursor, hands its messages to the members at each message's seq, and moves
// the cursor; a failed page is handed out again, nothing after it first.
import type { Logger } from 'pino';
import { apply, emptyGroup, parseEvent } from '../groups/index.ts';
import type { GroupState } from '../groups/index.ts';
import { copyBytes } from '../groups/limits.ts';
import type { Store, StoredEntry } from '../store/index.ts';
import type { FanItem } from '../protocol/peer.ts';
import type { Clock } from '../clock/index.ts';
import { FANBASE, FANOUT, genPrefix, groupKey, isLogEvent } from './group-keys.ts';
import { pause } from './pause.ts';
import { PumpWaiters } from './pump-waiters.ts';
import type { Pump, PumpComponents } from './group-pump.ts';

const PUMP_PAGE = 500;
/** Member copies one pump page makes at most: a page of a large group's messages holds fewer. */
const PAGE_COPIES = 10_000;

/** The member state at the fan-out cursor `at`. */
type Run = { at: number; state: GroupState };
/** A page made ready to hand out: the state after its events, its messages, the seq of a
 * snapshot it starts (0: none) and the bytes of its member copies. */
type Prepared = { state: GroupState; items: FanItem[]; base: number; bytes: number };

export class GroupPump implements Pump {
  #c: PumpComponents;
  #store: Store;
  #log: Logger;
  #clock: Clock;
  #pumps = new Set<string>();
  #waiters: PumpWaiters;
  // Per group pumped since the last ring change, the member state at the fan-out cursor.
  #runs = new Map<string, Run>();

  constructor(c: PumpComponents, clock: Clock, deadlineMs: number) {
    this.#c = c;
    this.#store = c.store;
    this.#log = c.log;
    this.#clock = clock;
    this.#waiters = new PumpWaiters(clock, deadlineMs, c.signal);
  }

  get running(): number {
    return this.#pumps.size;
  }

  reached(group: string, seq: number): Promise<boolean> {
    if (this.#store.acked(groupKey(group), FANOUT) >= seq) return Promise.resolve(true);
    return this.#waiters.wait(group, seq);
  }

  kick(group: string): void {
    if (this.#pumps.has(group)) return;
    this.#pumps.add(group);
    void this.#pump(group).catch((e: Error) => {
      this.#pumps.delete(group);
      this.#log.error({ group, err: e.message }, 'group fan-out stopped; it resumes with the next post or ring change');
    });
  }

  ringChanged(): void {
    this.#runs = new Map();
    for (const group of this.#waiters.groups()) if (!this.#c.owns(groupKey(group)) && !this.#pumps.has(group)) this.#waiters.abandon(group);
  }

  /** The member state just after the entry at `cursor`: the generation of the latest snapshot
   * at or before it (one bounded read), folded up to the cursor. */
  async #stateAt(group: string, cursor: number): Promise<GroupState> {
    const key = groupKey(group);
    const rows = await this.#store.entriesByKey(key, genPrefix(this.#store.acked(key, FANBASE)));
    const s = emptyGroup();
    for (const r of rows) {
      if (r.seq > cursor) break;
      const e = parseEvent(r.seq, r.ts, r.from, r.body);
      if (e) apply(s, e);
    }
    return s;
  }

  /** Ends the group's loop (a post appended after this kicks a new one). */
  #done(group: string): void {
    this.#pumps.delete(group);
  }

  async #pump(group: string): Promise<void> {
    const store = this.#store;
    const c = this.#c;
    const key = groupKey(group);
    const still = () => c.owns(key);
    let failures = 0;
    for (;;) {
      const cursor = store.acked(key, FANOUT);
      // Checked and left synchronously: a post appended after this kicks a new pump.
      if (!still()) {
        this.#done(group);
        this.#waiters.abandon(group);
        return;
      }
      const upTo = Math.min(store.committedSeq(key), c.readable?.(key) ?? Infinity);
      if (cursor >= upTo || c.signal?.aborted) return this.#done(group);
      let run = this.#runs.get(group);
      if (!run || run.at !== cursor) {
        run = { at: cursor, state: await this.#stateAt(group, cursor) };
        this.#runs.set(group, run);
      }
      const size = Math.max(1, Math.min(PUMP_PAGE, Math.floor(PAGE_COPIES / Math.max(1, run.state.members.size))));
      const t0 = performance.now();
      const page = await store.sync(key, cursor, Math.min(size, upTo - cursor));
      if (page.entries.length === 0) return this.#done(group);
      const p = prepare(group, key, run.state, page.entries);
      try {
        if (p.items.length) await c.fanout(p.items, still);
        failures = 0;
      } catch (e) {
        // A member's home is down or moving: the same messages again, nothing after them first.
        if (failures++ % 10 === 0) this.#log.warn({ group, from: cursor + 1, messages: p.items.length, err: (e as Error).message }, 'group fan-out retrying');
        try {
          await pause({ ringChange: c.ringChange, clock: this.#clock, signal: c.signal }, Math.min(2000, 100 * failures));
        } catch {
          return this.#done(group);
        }
        continue;
      }
      this.#advance(group, run, p, page.entries, t0);
    }
  }

  /** The page is with every member: the cursor moves past it, and the posts up to it are answered. */
  #advance(group: string, run: Run, p: Prepared, entries: StoredEntry[], t0: number): void {
    const key = groupKey(group);
    const last = entries.at(-1)!.seq;
    // In one commit with the cursor: the snapshot the state at the cursor starts from.
    this.#store.ack(key, FANOUT, last);
    if (p.base) this.#store.ack(key, FANBASE, p.base);
    if (this.#runs.get(group) === run) this.#runs.set(group, { at: last, state: p.state });
    this.#c.advanced?.(group, last, { ms: performance.now() - t0, entries: entries.length, bytes: p.bytes });
    this.#waiters.advanced(group, last);
  }
}

/** The members of each message: those at the cursor, then the page's own events applied.
 * Worked on a copy: the page may have to be handed out again. */
function prepare(group: string, key: string, at: GroupState, entries: StoredEntry[]): Prepared {
  const s: GroupState = { ...at, members: new Map(at.members), events: [...at.events] };
  let users: string[] | undefined;
  let base = 0;
  let bytes = 0;
  const items: FanItem[] = [];
  for (const e of entries) {
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
  return { state: s, items, base, bytes };
}
