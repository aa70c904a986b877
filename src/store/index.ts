// The timeline store: entries, seq counters, send dedup, device cursors, read state, last seen.
// Seqs are assigned in memory in call order; rows are group-committed by one FIFO of jobs.
// Export, import and drop of whole users (for replication and migration) are in migration.ts.
import { insertMany, openDb } from './db.ts';
import type { Conn, Db, Params } from './db.ts';
import { createMigration, deleteOutbox } from './migration.ts';
import type { ExportedEntry, Migration, UserSnapshot } from './migration.ts';
import { DDL, ENTRY_COLS, PRAGMAS, SCHEMA_VERSION } from './schema.ts';
import { openReader } from './reads.ts';
import type { Reader } from './reads.ts';
import type { EntryRow } from './schema.ts';
import { fromRow, LOOKUP_CHUNK, newUserState, outboxKey, pairKey } from './state.ts';
import type { OutboxItem, StoreCore, StoredEntry, NewEntry, UserState } from './state.ts';

export type { NewEntry, OutboxItem, StoredEntry } from './state.ts';
export type { ExportedEntry, ExportOpts, ExportPage, UserSnapshot } from './migration.ts';
export { ConflictError, GapError, cutSnapshot, snapshotChars, snapshotRows, splitSnapshot } from './migration.ts';

export type StoreInit = { file: string; sync?: 'normal' | 'full'; chunkRows?: number };
export type StoreHooks = {
  /** Each committed batch, in commit order (so in seq order per user), with what else it wrote. */
  onCommit?(entries: ExportedEntry[], changed: Changed): void;
  onBatch?(info: { rows: number; ms: number }): void;
  /** A commit failed: memory is ahead of disk, the process should stop and restart from disk. */
  onFatal?(err: Error): void;
};

/** A copy that a sender's home must still hand to `dest`'s home; `item` is opaque JSON to the store. */
export type OutboxKey = { user: string; mid: string; dest: string };
export type OutboxRow = OutboxKey & { item: unknown };

/** The user state a commit wrote besides entries: users (seq, last seen), conversations, cursors,
 * outbox rows added (with the sender's entry) and removed (the copy was handed over). */
export type Changed = {
  users: string[]; convs: [string, string][]; cursors: [string, string][];
  outbox: { user: string; row: OutboxItem }[]; cleared: OutboxKey[];
};

export type Unread = { total: number; convs: Record<string, number> };

export type Store = {
  /** Uncommitted entry with that dedup key, if any. Check it synchronously right before append. */
  peekDedup(user: string, dkey: string): StoredEntry | undefined;
  /** Committed entries for these dedup keys. Together with peekDedup, called synchronously after
   * this resolves, it sees every append made before the call. */
  findDedup(keys: { user: string; dkey: string }[]): Promise<Map<string, StoredEntry>>;
  /** Assigns seqs now, in order; `durable` resolves once the rows are committed. */
  append(items: NewEntry[], outbox?: OutboxRow[]): { entries: StoredEntry[]; durable: Promise<void> };
  /** Outbox rows whose copies have been delivered: deleted with the next commit. */
  outboxDone(rows: OutboxKey[]): void;
  /** Every outbox row still on disk (copies not yet known to be delivered) whose sender entry is
   * still in the sender's timeline; rows whose entry was replaced are deleted. */
  outbox(): Promise<OutboxRow[]>;
  /** A user's state from memory (for replication): seq, last seen, and the named (or all)
   * conversations and cursors; the whole state (with the committed outbox rows) when neither is named. */
  snapshot(user: string, convs?: string[], devices?: string[]): UserSnapshot | undefined;
  /** Resolves once everything written so far is committed. */
  flush(): Promise<void>;
  lastSeq(user: string): number;
  committedSeq(user: string): number;
  /** An opaque token for the user's data as held now: it changes when the data is dropped (and
   * perhaps imported again from another copy), so work begun on the old data can tell. */
  holding(user: string): object | undefined;
  sync(user: string, after: number, limit: number): Promise<{ entries: StoredEntry[]; more: boolean }>;
  history(user: string, conv: string, before: number | undefined, limit: number): Promise<{ entries: StoredEntry[]; more: boolean }>;
  /** Pages for clients, bounded by bytes too, on a reading connection of their own (see reads.ts). */
  readers: Pick<Reader, 'sync' | 'history'>;
  acked(user: string, device: string): number;
  /** Moves the device cursor forward (clamped to the timeline's end); false if it did not move. */
  ack(user: string, device: string, seq: number): boolean;
  /** Moves the read cursor of a conversation forward; the seq it now stands at, or undefined if it did not move. */
  read(user: string, conv: string, seq: number): Promise<number | undefined>;
  unread(user: string): Unread;
  /** Per user, the mid of the newest entry of `conv` at or below the user's read cursor there
   * (users who have read nothing of it are left out). */
  readMarks(conv: string, users: string[]): Promise<Map<string, string>>;
  /** Committed entries of `user` whose dedup key starts with `prefix`, in seq order (a group
   * log's membership events: prefix 'e:'). Flush first to include recent appends. */
  entriesByKey(user: string, prefix: string): Promise<StoredEntry[]>;
  lastSeen(user: string): number | undefined;
  setLastSeen(user: string, ts: number): void;
  knownUsers(): IterableIterator<string>;
  getMeta(k: string): Promise<string | undefined>;
  setMeta(k: string, v: string): Promise<void>;
  close(): Promise<void>;
} & Migration;

export const DEDUP_KEY = { cid: (cid: string) => `c:${cid}`, mid: (mid: string) => `m:${mid}` };

const CHUNK_ROWS = 1000;

type Deferred = { promise: Promise<void>; resolve(): void; reject(e: Error): void };

function deferred(): Deferred {
  const d = Promise.withResolvers<void>();
  d.promise.catch(() => undefined); // a failed commit is reported through onFatal
  return d;
}

export async function createStore(init: StoreInit, hooks: StoreHooks = {}): Promise<Store> {
  const db: Db = await openDb(init.file);
  const chunk = init.chunkRows ?? CHUNK_ROWS;
  await db.job(async (c) => {
    await c.exec(PRAGMAS(init.sync ?? 'normal'));
    await c.exec(DDL);
    await c.run('INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)', ['schema', String(SCHEMA_VERSION)]);
  });

  const reader = await openReader(init.file);
  const users = new Map<string, UserState>();
  const userState = (user: string): UserState => {
    let st = users.get(user);
    if (!st) users.set(user, (st = newUserState()));
    return st;
  };
  await db.job(async (c) => {
    for (const r of await c.all<{ user: string; seq: number; last_seen: number | null }>('SELECT user, seq, last_seen FROM users')) {
      const st = userState(r.user);
      st.seq = st.committed = r.seq;
      st.lastSeen = r.last_seen ?? undefined;
    }
    type ConvRow = { user: string; conv: string; last_seq: number; ocum: number; read_seq: number; read_cum: number };
    for (const r of await c.all<ConvRow>('SELECT user, conv, last_seq, ocum, read_seq, read_cum FROM convs')) {
      userState(r.user).convs.set(r.conv, { lastSeq: r.last_seq, ocum: r.ocum, readSeq: r.read_seq, readCum: r.read_cum });
    }
    for (const r of await c.all<{ user: string; device: string; acked: number }>('SELECT user, device, acked FROM cursors')) {
      userState(r.user).cursors.set(r.device, r.acked);
    }
    for (const r of await c.all<{ user: string; mid: string; dest: string; item: string }>('SELECT user, mid, dest, item FROM outbox')) {
      userState(r.user).outbox.set(outboxKey(r.mid, r.dest), { mid: r.mid, dest: r.dest, item: JSON.parse(r.item) as unknown });
    }
  });

  // What the next commit writes. Values are read from memory when the commit starts, so a
  // later change only re-marks the key dirty.
  let rows: StoredEntry[] = [];
  let outboxIn: OutboxRow[] = [];
  let outboxOut: OutboxKey[] = [];
  const dirtyUsers = new Set<string>();
  const dirtyConvs = new Map<string, Set<string>>();
  const dirtyCursors = new Map<string, Set<string>>();
  // ocum is a storage detail (unread arithmetic), kept beside the entry until it is written.
  const ocumOf = new Map<StoredEntry, number>();
  let next = deferred();
  let queued = false;
  let closed = false;

  const markConv = (user: string, conv: string) => {
    let s = dirtyConvs.get(user);
    if (!s) dirtyConvs.set(user, (s = new Set()));
    s.add(conv);
  };
  const schedule = (): Promise<void> => {
    if (closed) throw new Error('store is closed');
    if (!queued) {
      queued = true;
      void db.job(commit);
    }
    return next.promise;
  };

  async function commit(c: Conn): Promise<void> {
    queued = false;
    const batch = rows;
    rows = [];
    const obIn = outboxIn;
    const obOut = outboxOut;
    outboxIn = [];
    outboxOut = [];
    const done = next;
    next = deferred();
    const t0 = performance.now();
    const entryRows: Params[] = batch.map((e) => [
      e.user, e.seq, e.mid, e.conv, e.from, e.to ?? null, e.group ?? null, e.body, e.ts, e.dkey, ocumOf.get(e) ?? 0,
    ]);
    const changed: Changed = {
      users: [...dirtyUsers], convs: [], cursors: [],
      outbox: obIn.map((o) => ({ user: o.user, row: { mid: o.mid, dest: o.dest, item: o.item } })), cleared: obOut,
    };
    const userRows: Params[] = [...dirtyUsers].map((u) => {
      const st = userState(u);
      return [u, st.seq, st.lastSeen ?? null];
    });
    dirtyUsers.clear();
    const convRows: Params[] = [];
    for (const [u, convs] of dirtyConvs) {
      const st = userState(u);
      for (const conv of convs) {
        const cs = st.convs.get(conv);
        if (!cs) continue; // dropped since it was marked
        convRows.push([u, conv, cs.lastSeq, cs.ocum, cs.readSeq, cs.readCum]);
        changed.convs.push([u, conv]);
      }
    }
    dirtyConvs.clear();
    const cursorRows: Params[] = [];
    for (const [u, devs] of dirtyCursors) {
      const st = userState(u);
      for (const d of devs) {
        cursorRows.push([u, d, st.cursors.get(d) ?? 0]);
        changed.cursors.push([u, d]);
      }
    }
    dirtyCursors.clear();
    try {
      await c.exec('BEGIN');
      await insertMany(c, `INSERT INTO entries (${ENTRY_COLS})`, 11, '', entryRows, chunk);
      await insertMany(c, 'INSERT INTO users (user, seq, last_seen)', 3,
        'ON CONFLICT (user) DO UPDATE SET seq = excluded.seq, last_seen = excluded.last_seen', userRows, chunk);
      await insertMany(c, 'INSERT INTO convs (user, conv, last_seq, ocum, read_seq, read_cum)', 6,
        'ON CONFLICT (user, conv) DO UPDATE SET last_seq = excluded.last_seq, ocum = excluded.ocum, read_seq = excluded.read_seq, read_cum = excluded.read_cum',
        convRows, chunk);
      await insertMany(c, 'INSERT INTO cursors (user, device, acked)', 3,
        'ON CONFLICT (user, device) DO UPDATE SET acked = excluded.acked', cursorRows, chunk);
      await insertMany(c, 'INSERT OR IGNORE INTO outbox (user, mid, dest, item)', 4, '', obIn.map((o) => [o.user, o.mid, o.dest, JSON.stringify(o.item)]), chunk);
      await deleteOutbox(c, obOut.map((k) => [k.user, k.mid, k.dest]), chunk);
      await c.exec('COMMIT');
    } catch (err) {
      await c.exec('ROLLBACK').catch(() => undefined);
      const e = err instanceof Error ? err : new Error(String(err));
      done.reject(e);
      hooks.onFatal?.(e);
      return;
    }
    for (const o of obIn) userState(o.user).outbox.set(outboxKey(o.mid, o.dest), { mid: o.mid, dest: o.dest, item: o.item });
    for (const k of obOut) users.get(k.user)?.outbox.delete(outboxKey(k.mid, k.dest));
    const exported: ExportedEntry[] = [];
    for (const e of batch) {
      const st = userState(e.user);
      if (e.seq > st.committed) st.committed = e.seq;
      st.pending.delete(e.dkey);
      exported.push({ ...e, ocum: ocumOf.get(e) ?? 0 });
      ocumOf.delete(e);
    }
    hooks.onBatch?.({ rows: batch.length, ms: performance.now() - t0 });
    done.resolve();
    if (batch.length > 0 || changed.users.length || changed.cursors.length || changed.convs.length || obIn.length || obOut.length) hooks.onCommit?.(exported, changed);
  }

  const SELECT_ENTRY = `SELECT ${ENTRY_COLS} FROM entries`;
  const importing = new Map<string, number>();
  const core: StoreCore = {
    db, users, userState, importing, chunk,
    forgetDirty(user) {
      dirtyUsers.delete(user);
      dirtyConvs.delete(user);
      dirtyCursors.delete(user);
    },
  };

  return {
    ...createMigration(core),
    peekDedup: (user, dkey) => users.get(user)?.pending.get(dkey),

    async findDedup(keys) {
      const found = new Map<string, StoredEntry>();
      if (keys.length === 0) return found;
      await db.job(async (c) => {
        // One JSON parameter rather than two per key: binding happens on the main thread.
        const sql = `${SELECT_ENTRY} WHERE (user, dkey) IN (SELECT value->>0, value->>1 FROM json_each(?))`;
        for (let i = 0; i < keys.length; i += LOOKUP_CHUNK) {
          const part = keys.slice(i, i + LOOKUP_CHUNK);
          for (const r of await c.all<EntryRow>(sql, [JSON.stringify(part.map((k) => [k.user, k.dkey]))])) {
            found.set(pairKey(r.user, r.dkey), fromRow(r));
          }
        }
      });
      return found;
    },

    append(items, outbox = []) {
      if (importing.size > 0) {
        for (const it of items) if (importing.has(it.user)) throw new Error(`${it.user} is being imported; append after the import`);
      }
      const entries: StoredEntry[] = [];
      for (const it of items) {
        const st = userState(it.user);
        if (st.pending.has(it.dkey)) throw new Error(`duplicate dedup key ${it.dkey} for ${it.user}`);
        const seq = ++st.seq;
        let cs = st.convs.get(it.conv);
        if (!cs) st.convs.set(it.conv, (cs = { lastSeq: 0, ocum: 0, readSeq: 0, readCum: 0 }));
        cs.lastSeq = seq;
        if (it.from !== it.user) cs.ocum++;
        const e: StoredEntry = { ...it, seq };
        st.pending.set(it.dkey, e);
        ocumOf.set(e, cs.ocum);
        rows.push(e);
        entries.push(e);
        dirtyUsers.add(it.user);
        markConv(it.user, it.conv);
      }
      for (const o of outbox) outboxIn.push(o);
      return { entries, durable: schedule() };
    },

    outboxDone(keys) {
      if (keys.length === 0) return;
      for (const k of keys) outboxOut.push({ user: k.user, mid: k.mid, dest: k.dest });
      void schedule();
    },

    snapshot(user, convs, devices) {
      const st = users.get(user);
      if (!st) return undefined;
      const snap: UserSnapshot = {
        user, seq: st.committed,
        // Named ones looked up by name: a user may have tens of thousands of conversations.
        convs: convs ? convs.flatMap((conv) => {
          const cs = st.convs.get(conv);
          return cs ? [{ conv, ...cs }] : [];
        }) : [...st.convs].map(([conv, cs]) => ({ conv, ...cs })),
        cursors: devices ? devices.flatMap((device) => {
          const acked = st.cursors.get(device);
          return acked === undefined ? [] : [{ device, acked }];
        }) : [...st.cursors].map(([device, acked]) => ({ device, acked })),
      };
      if (st.lastSeen !== undefined) snap.lastSeen = st.lastSeen;
      if (!convs && !devices && st.outbox.size) snap.outbox = [...st.outbox.values()];
      return snap;
    },

    outbox: () =>
      db.job(async (c) => {
        // A row whose sender entry is gone was for a write that was never confirmed and has
        // since been replaced (a stale copy from before a restart): delivering it would give the
        // recipient a message the sender's timeline does not have.
        const gone = await c.all<{ user: string; mid: string; dest: string }>(
          'DELETE FROM outbox WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.user = outbox.user AND e.mid = outbox.mid) RETURNING user, mid, dest', []);
        for (const r of gone) users.get(r.user)?.outbox.delete(outboxKey(r.mid, r.dest));
        return (await c.all<{ user: string; mid: string; dest: string; item: string }>('SELECT user, mid, dest, item FROM outbox'))
          .map((r) => ({ user: r.user, mid: r.mid, dest: r.dest, item: JSON.parse(r.item) as unknown }));
      }),

    flush: () => schedule(),
    lastSeq: (user) => users.get(user)?.seq ?? 0,
    committedSeq: (user) => users.get(user)?.committed ?? 0,
    holding: (user) => users.get(user),

    sync: (user, after, limit) =>
      db.job(async (c) => {
        const rs = await c.all<EntryRow>(`${SELECT_ENTRY} WHERE user = ? AND seq > ? ORDER BY seq LIMIT ?`, [user, after, limit + 1]);
        return { entries: rs.slice(0, limit).map(fromRow), more: rs.length > limit };
      }),

    history: (user, conv, before, limit) =>
      db.job(async (c) => {
        const rs = await c.all<EntryRow>(
          `${SELECT_ENTRY} WHERE user = ? AND conv = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
          [user, conv, before ?? Number.MAX_SAFE_INTEGER, limit + 1]);
        return { entries: rs.slice(0, limit).map(fromRow), more: rs.length > limit };
      }),

    readers: { sync: reader.sync, history: reader.history },

    acked: (user, device) => users.get(user)?.cursors.get(device) ?? 0,

    ack(user, device, seq) {
      const st = userState(user);
      const to = Math.min(seq, st.seq);
      if (to <= (st.cursors.get(device) ?? 0)) return false;
      st.cursors.set(device, to);
      let s = dirtyCursors.get(user);
      if (!s) dirtyCursors.set(user, (s = new Set()));
      s.add(device);
      void schedule();
      return true;
    },

    async read(user, conv, seq) {
      const st = users.get(user);
      const cs = st?.convs.get(conv);
      if (!st || !cs) return undefined;
      const target = Math.min(seq, st.seq);
      if (target <= cs.readSeq) return undefined;
      let cum: number;
      if (target >= cs.lastSeq) {
        cum = cs.ocum;
      } else {
        // The newest entry of this conversation at or before target: committed rows are in the
        // database, uncommitted ones still in memory when this job's result arrives (FIFO).
        const rs = await db.job((c) =>
          c.all<{ seq: number; ocum: number }>('SELECT seq, ocum FROM entries WHERE user = ? AND conv = ? AND seq <= ? ORDER BY seq DESC LIMIT 1', [user, conv, target]));
        let best = rs[0] ?? { seq: 0, ocum: 0 };
        for (const e of st.pending.values()) {
          if (e.conv === conv && e.seq <= target && e.seq > best.seq) best = { seq: e.seq, ocum: ocumOf.get(e) ?? 0 };
        }
        cum = best.ocum;
      }
      if (users.get(user) !== st) return undefined; // the user was dropped meanwhile
      if (target <= cs.readSeq) return undefined; // another read moved it further meanwhile
      cs.readSeq = target;
      cs.readCum = Math.max(cs.readCum, cum);
      markConv(user, conv);
      await schedule();
      return target;
    },

    unread(user) {
      const convs: Record<string, number> = {};
      let total = 0;
      for (const [conv, cs] of users.get(user)?.convs ?? []) {
        const n = cs.ocum - cs.readCum;
        if (n > 0) {
          convs[conv] = n;
          total += n;
        }
      }
      return { total, convs };
    },

    async readMarks(conv, names) {
      const want: [string, number][] = [];
      for (const u of new Set(names)) {
        const rs = users.get(u)?.convs.get(conv)?.readSeq ?? 0;
        if (rs > 0) want.push([u, rs]);
      }
      const out = new Map<string, { seq: number; mid: string }>();
      if (want.length === 0) return new Map();
      await db.job(async (c) => {
        for (let i = 0; i < want.length; i += LOOKUP_CHUNK) {
          const part = want.slice(i, i + LOOKUP_CHUNK);
          const sql = `SELECT r.value->>0 AS user, e.seq AS seq, e.mid AS mid FROM json_each(?) r
            JOIN entries e ON e.user = r.value->>0 AND e.conv = ? AND e.seq = (
              SELECT max(seq) FROM entries x WHERE x.user = r.value->>0 AND x.conv = ? AND x.seq <= r.value->>1)`;
          for (const r of await c.all<{ user: string; seq: number; mid: string }>(sql, [JSON.stringify(part), conv, conv])) {
            out.set(r.user, { seq: r.seq, mid: r.mid });
          }
        }
      });
      // Entries not yet committed are still in memory.
      for (const [u, rs] of want) {
        for (const e of users.get(u)?.pending.values() ?? []) {
          if (e.conv === conv && e.seq <= rs && e.seq > (out.get(u)?.seq ?? 0)) out.set(u, { seq: e.seq, mid: e.mid });
        }
      }
      return new Map([...out].map(([u, m]) => [u, m.mid]));
    },

    entriesByKey: (user, prefix) =>
      db.job(async (c) => (await c.all<EntryRow>(
        `${SELECT_ENTRY} WHERE user = ? AND dkey >= ? AND dkey < ? ORDER BY seq`,
        [user, prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)])).map(fromRow)),

    lastSeen: (user) => users.get(user)?.lastSeen,
    setLastSeen(user, ts) {
      userState(user).lastSeen = ts;
      dirtyUsers.add(user);
      void schedule();
    },
    knownUsers: () => users.keys(),

    getMeta: (k) =>
      db.job(async (c) => (await c.all<{ v: string }>('SELECT v FROM meta WHERE k = ?', [k]))[0]?.v),
    setMeta: (k, v) =>
      db.job(async (c) => {
        await c.run('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v', [k, v]);
      }),

    async close() {
      if (closed) return;
      if (rows.length || outboxIn.length || outboxOut.length || dirtyUsers.size || dirtyConvs.size || dirtyCursors.size) await schedule();
      closed = true;
      await reader.close();
      await db.close();
    },
  };
}
