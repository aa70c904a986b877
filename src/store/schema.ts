// The node's SQLite schema. One database per node; every table is keyed by the user that owns
// the row, so a key range can later be exported and imported as a whole.
import { jsonLiteral } from './db.ts';
import type { Params } from './db.ts';

export const SCHEMA_VERSION = 1;

// temp_store: statement journals (an INSERT … ON CONFLICT over many rows keeps one, to undo
// itself alone) go to memory instead of a temporary file opened, written and deleted per
// statement: a third of the store's write calls. wal_autocheckpoint (pages, 40 MiB instead of
// 4 MiB): a hot page (an index's, a conversation's) is copied back into the database once per
// checkpoint, however often it changed in between, so checkpoints ten times rarer copy far fewer
// pages per message. Measured with `npm run bench:store`: the store's CPU per message a quarter
// lower (docs/BENCHMARKS.md).
export const PRAGMAS = (sync: 'normal' | 'full'): string => `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'};
  PRAGMA busy_timeout = 5000;
  PRAGMA foreign_keys = OFF;
  PRAGMA cache_size = -65536;
  PRAGMA temp_store = MEMORY;
  PRAGMA wal_autocheckpoint = 10000;
`;

// entries.dkey makes every append idempotent: 'c:<cid>' on the sender's own entry (send dedup by
// sender and cid), 'm:<mid>' on a delivered copy (a mid at most once per timeline).
// entries.ocum counts the entries from other users in the same conversation up to and including
// this one, so an unread count is a difference of two counters, never a scan.
// outbox holds copies a sender's home still has to hand to recipients' homes on other nodes,
// written in the same transaction as the sender's entry and deleted once delivered.
export const DDL = `
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS entries (
    user TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, conv TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT, grp TEXT, body TEXT NOT NULL, ts INTEGER NOT NULL,
    dkey TEXT NOT NULL, ocum INTEGER NOT NULL,
    UNIQUE (user, seq));
  CREATE UNIQUE INDEX IF NOT EXISTS entries_dkey ON entries (user, dkey);
  CREATE INDEX IF NOT EXISTS entries_conv ON entries (user, conv, seq);
  CREATE TABLE IF NOT EXISTS users (
    user TEXT PRIMARY KEY, seq INTEGER NOT NULL, last_seen INTEGER) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS convs (
    user TEXT NOT NULL, conv TEXT NOT NULL, last_seq INTEGER NOT NULL, ocum INTEGER NOT NULL,
    read_seq INTEGER NOT NULL, read_cum INTEGER NOT NULL,
    PRIMARY KEY (user, conv)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS outbox (
    user TEXT NOT NULL, mid TEXT NOT NULL, dest TEXT NOT NULL, item TEXT NOT NULL,
    PRIMARY KEY (user, mid, dest)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS cursors (
    user TEXT NOT NULL, device TEXT NOT NULL, acked INTEGER NOT NULL,
    PRIMARY KEY (user, device)) WITHOUT ROWID;
`;

export const ENTRY_COLS = 'user, seq, mid, conv, sender, recipient, grp, body, ts, dkey, ocum';

export type EntryRow = {
  user: string; seq: number; mid: string; conv: string; sender: string; recipient: string | null;
  grp: string | null; body: string; ts: number; dkey: string; ocum: number;
};

/** DELETE statements for outbox rows given as [user, mid, dest], `chunk` keys per statement. */
export function deleteOutboxSql(keys: Params[], chunk: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < keys.length; i += chunk) {
    out.push(`DELETE FROM outbox WHERE (user, mid, dest) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(${jsonLiteral(keys.slice(i, i + chunk))}))`);
  }
  return out;
}
