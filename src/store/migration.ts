// Moving whole users between nodes: export of their committed data in pages, import of exported
// or replicated data with the seqs it came with, drop once they are owned elsewhere.
// Every read and write here is one job of the store's FIFO, so it never runs inside a group
// commit, and a commit queued before it has finished when it runs.
// This file holds the contract and the drop; export.ts, import-plan.ts and import.ts the rest.
import { createHash } from 'node:crypto';
import { marks } from './db.ts';
import type { Conn } from './db.ts';
import { exportUsers } from './export.ts';
import { fenced } from './fence.ts';
import type { ImportRejection } from './import-errors.ts';
import { runImport } from './import.ts';
import type { UserSnapshot } from './snapshots.ts';
import { LOOKUP_CHUNK } from './state.ts';
import type { StoreCore, StoredEntry } from './state.ts';

/** ocum is the storage's unread counter; it travels with the entry so unread stays a difference. */
export type ExportedEntry = StoredEntry & { ocum: number };
export type ExportPage = { users: UserSnapshot[]; entries: ExportedEntry[] };

export type ExportOpts = {
  after?: Record<string, number>; pageRows?: number; pageChars?: number; skip?: { user: string; rows: number };
  /** No user whose name sorts before this one is selected (a hint that saves the calls of
   * `select` for them; `select` still decides). Only with maxUsers. */
  from?: string;
  /** Only the first this many selected users (by name), and no more of them than one page of
   * `pageRows` rows holds by their states in memory: a caller that takes one page reads no more
   * states than it can hold. */
  maxUsers?: number;
  /** The candidates, when the caller knows them (a backfill of one user): not every user held. */
  only?: string[];
};

export type Migration = {
  /** Committed data of the users for which `select` is true: their state, and entries with
   * seq > `after[user]` (default 0), in pages of about `pageRows` rows (entries, and a snapshot's
   * conversations, cursors and outbox rows) whose snapshots take at most `pageChars` estimated
   * characters (default 768 Ki). The states are read in one job, and entries only up to the seq each state names,
   * so the whole export is one consistent point in time; entries appended during the export come
   * with a later export with `after`. A user's snapshot comes after its last entries (in parts
   * over several pages if it is large: see UserSnapshot.next), so importing pages in order keeps
   * the importer's timeline whole. `skip` leaves out the first rows of one user's snapshot (an
   * export resumed in the middle of it). */
  exportUsers(select: (user: string) => boolean, opts?: ExportOpts): AsyncIterable<ExportPage>;
  /** Writes exported or replicated data as it is (seqs kept), in one transaction. Idempotent:
   * an entry already present with the same mid is skipped. Throws, writing nothing, a
   * ConflictError for a contradicting entry, a GapError for entries that do not follow on from
   * the stored timeline, and an Error for a user with uncommitted local appends. Counters and
   * cursors only move forward. Appends to the users concerned throw until it settles; later
   * appends continue after the imported seq. Resolves when durable. Fires no onCommit. */
  importData(data: ExportPage): Promise<void>;
  /** importData for data from several independent users (a replication batch): a user whose
   * data would leave a hole or contradicts what is stored is left out, nothing of it written,
   * and returned with its error; the others are imported in the same transaction. */
  importEach(data: ExportPage): Promise<Map<string, ImportRejection>>;
  /** Removes the users' data (entries, state, dedup) from disk and memory once they are owned
   * elsewhere; the number of entries removed. Throws, removing nothing, if one of them has
   * uncommitted appends. Resolves when durable. */
  dropUsers(users: string[]): Promise<number>;
  /** Committed seq of each known user for which `select` is true: what this node holds, to
   * compare with another node's, and the `after` to export to it. */
  userSeqs(select: (user: string) => boolean): Map<string, number>;
  /** Per [user, seq], a digest of the user's committed timeline up to seq: its entries' mids in
   * seq order, and how many. Two copies with the same digest hold the same entries 1..seq, so a
   * copy needs only what follows (a restarted node proving what it kept: replica/handoff-join.ts).
   * Users with fewer than seq committed entries here are left out. */
  prefixDigests(upTo: Array<[string, number]>): Promise<Map<string, string>>;
};

/** Migration.dropUsers, inside its fence: one transaction, then memory. */
async function dropJob(core: StoreCore, c: Conn, names: string[]): Promise<number> {
  const { users } = core;
  const drop = [...new Set(names)];
  for (const u of drop) {
    if ((users.get(u)?.pending.size ?? 0) > 0) throw new Error(`cannot drop ${u}: it has uncommitted appends`);
  }
  let removed = 0;
  await c.exec('BEGIN');
  try {
    for (let i = 0; i < drop.length; i += LOOKUP_CHUNK) {
      const part = drop.slice(i, i + LOOKUP_CHUNK);
      const inList = `user IN (${marks(part.length)})`;
      removed += await c.run(`DELETE FROM entries WHERE ${inList}`, part);
      for (const table of ['users', 'convs', 'cursors', 'outbox']) await c.run(`DELETE FROM ${table} WHERE ${inList}`, part);
    }
    await c.exec('COMMIT');
  } catch (err) {
    await c.exec('ROLLBACK').catch(() => undefined);
    throw err;
  }
  for (const u of drop) {
    users.delete(u);
    core.forgetDirty(u);
  }
  core.names.changed();
  return removed;
}

export function createMigration(core: StoreCore): Migration {
  const { db, users } = core;
  return {
    exportUsers: (select, opts) => exportUsers(core, select, opts),

    importData: (data) => runImport(core, data).then(() => undefined),
    importEach: (data) => runImport(core, data, new Map()),

    dropUsers: (names) => fenced(core.importing, names, () => db.job((c) => dropJob(core, c, names))),

    userSeqs(select) {
      const out = new Map<string, number>();
      for (const [u, st] of users) if (select(u)) out.set(u, st.committed);
      return out;
    },

    prefixDigests: (upTo) => db.job(async (c) => {
      const out = new Map<string, string>();
      for (const [u, seq] of upTo) {
        if ((users.get(u)?.committed ?? 0) < seq) continue;
        const rows = await c.all<{ mid: string }>('SELECT mid FROM entries WHERE user = ? AND seq <= ? ORDER BY seq', [u, seq]);
        if (rows.length !== seq) continue;
        const h = createHash('sha256').update(`${seq}\n`);
        for (const r of rows) h.update(`${r.mid}\n`);
        out.set(u, h.digest('base64url'));
      }
      return out;
    }),
  };
}
