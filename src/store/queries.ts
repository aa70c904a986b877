// Reads on the writer's connection, each one job of the store's FIFO: a job sees every commit
// queued before it, and what is appended but not yet committed is still in memory.
import type { Db } from './db.ts';
import type { OutboxRow, Store } from './index.ts';
import { ENTRY_COLS } from './schema.ts';
import type { EntryRow } from './schema.ts';
import { fromRow, LOOKUP_CHUNK, outboxKey, pairKey } from './state.ts';
import type { StoredEntry, UserState } from './state.ts';

const SELECT_ENTRY = `SELECT ${ENTRY_COLS} FROM entries`;

async function findDedup(db: Db, keys: { user: string; dkey: string }[]): Promise<Map<string, StoredEntry>> {
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
}

/** Store.outbox. */
function outboxRows(db: Db, users: Map<string, UserState>): Promise<OutboxRow[]> {
  return db.job(async (c) => {
    // A row whose sender entry is gone was for a write that was never confirmed and has
    // since been replaced (a stale copy from before a restart): delivering it would give the
    // recipient a message the sender's timeline does not have.
    const gone = await c.all<{ user: string; mid: string; dest: string }>(
      'DELETE FROM outbox WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.user = outbox.user AND e.mid = outbox.mid) RETURNING user, mid, dest', []);
    for (const r of gone) users.get(r.user)?.outbox.delete(outboxKey(r.mid, r.dest));
    return (await c.all<{ user: string; mid: string; dest: string; item: string }>('SELECT user, mid, dest, item FROM outbox'))
      .map((r) => ({ user: r.user, mid: r.mid, dest: r.dest, item: JSON.parse(r.item) as unknown }));
  });
}

async function readMarks(db: Db, users: Map<string, UserState>, conv: string, names: string[]): Promise<Map<string, string>> {
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
}

export function createQueries(db: Db, users: Map<string, UserState>):
  Pick<Store, 'findDedup' | 'outbox' | 'sync' | 'history' | 'readMarks' | 'entriesByKey' | 'getMeta' | 'setMeta'> {
  return {
    findDedup: (keys) => findDedup(db, keys),
    outbox: () => outboxRows(db, users),

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

    readMarks: (conv, names) => readMarks(db, users, conv, names),

    entriesByKey: (user, prefix) =>
      db.job(async (c) => (await c.all<EntryRow>(
        `${SELECT_ENTRY} WHERE user = ? AND dkey >= ? AND dkey < ? ORDER BY seq`,
        [user, prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)])).map(fromRow)),

    getMeta: (k) =>
      db.job(async (c) => (await c.all<{ v: string }>('SELECT v FROM meta WHERE k = ?', [k]))[0]?.v),
    setMeta: (k, v) =>
      db.job(async (c) => {
        await c.run('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v', [k, v]);
      }),
  };
}
