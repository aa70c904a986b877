// Store test helpers: stores on real SQLite files in temporary folders, DM entry pairs, and a home
// on a fresh store.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore, DEDUP_KEY } from '../../src/store/index.ts';
import type { NewEntry, Store, StoreHooks } from '../../src/store/index.ts';
import { pino } from 'pino';
import { createHome } from '../../src/home/home.ts';
import type { Home } from '../../src/home/home.ts';
import type { HomeComponents } from '../../src/home/types.ts';
import { createPresence } from '../../src/presence/index.ts';

const dirs: string[] = [];

/** Opens a store on `file`, or on a fresh file in a new temporary folder. */
export async function openStore(hooks: StoreHooks = {}, file?: string): Promise<{ s: Store; file: string }> {
  if (!file) {
    const d = await mkdtemp(join(tmpdir(), 'im-store-'));
    dirs.push(d);
    file = join(d, 'store.db');
  }
  return { s: await createStore({ file }, hooks), file };
}

/** Removes every folder openStore made. */
export async function removeStores(): Promise<void> {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

let n = 0;
/** One DM from `from` to `to`: the sender's entry and the recipient's copy. */
export function dm(from: string, to: string, cid = `c${++n}`): NewEntry[] {
  const mid = `m${String(++n).padStart(8, '0')}`;
  const conv = from < to ? `dm:${from}:${to}` : `dm:${to}:${from}`;
  const base = { mid, conv, from, to, body: `b${n}`, ts: n };
  const items: NewEntry[] = [{ ...base, user: from, dkey: DEDUP_KEY.cid(cid) }];
  if (to !== from) items.push({ ...base, user: to, dkey: DEDUP_KEY.mid(mid) });
  return items;
}

/** A home on a fresh store, with test defaults (mids m000001…, the system clock, no pushes, a
 * silent log); `over` sets ownership, the router's hooks and the rest. */
export async function homeOnStore(over: Partial<HomeComponents> & Pick<HomeComponents, 'owns'>): Promise<{ home: Home; store: Store }> {
  const { s: store } = await openStore();
  let mid = 0;
  const home = createHome({
    store,
    presence: createPresence({ ttlMs: 60_000 }, { clock: { now: Date.now } }),
    nextMid: () => `m${String(++mid).padStart(6, '0')}`,
    midTime: () => Date.now(),
    now: Date.now,
    push: () => undefined,
    log: pino({ level: 'silent' }),
    ...over,
  });
  return { home, store };
}

/** Appends one entry per mid to `user`'s timeline on `s` (a DM to 'zed', dedup key by seq). */
export async function appendMids(s: Store, user: string, mids: string[]): Promise<void> {
  const base = s.committedSeq(user);
  await s.append(mids.map((mid, i): NewEntry => {
    const n = base + i + 1;
    return { user, mid, conv: `dm:${user}:zed`, from: user, to: 'zed', body: `body ${mid}`, ts: n, dkey: DEDUP_KEY.cid(`${user}-${n}`) };
  })).durable;
}

/** The mids of `user`'s timeline on `s`, in seq order. */
export async function timelineMids(s: Store, user: string): Promise<string[]> {
  const out: string[] = [];
  for await (const p of s.exportUsers((u) => u === user)) out.push(...p.entries.map((e) => e.mid));
  return out;
}
