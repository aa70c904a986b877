// The timeline store: entries, seq counters, send dedup, device cursors, read state, last seen.
// Seqs are assigned in memory in call order; rows are group-committed by one FIFO of jobs.
// This file is the public surface; appends and moves are in writes.ts, the group commit in
// commit.ts, reads in queries.ts, memory-reads.ts and reads.ts, and export, import and drop of
// whole users (for replication and migration) in migration.ts.
import { Commits } from './commit.ts';
import { openDb } from './db.ts';
import type { Db } from './db.ts';
import { loadUsers, prepare } from './load.ts';
import { createMemoryReads } from './memory-reads.ts';
import { createMigration } from './migration.ts';
import type { ExportedEntry, Migration } from './migration.ts';
import { createQueries } from './queries.ts';
import { openReader } from './reads.ts';
import type { Reader } from './reads.ts';
import type { UserSnapshot } from './snapshots.ts';
import { newUserState, SortedNames } from './state.ts';
import type { OutboxItem, StoreCore, StoredEntry, NewEntry, UserState } from './state.ts';
import { createWrites } from './writes.ts';

export type { NewEntry, OutboxItem, StoredEntry } from './state.ts';
export type { ExportedEntry, ExportOpts, ExportPage } from './migration.ts';
export type { UserSnapshot } from './snapshots.ts';
export { ConflictError, GapError } from './import-errors.ts';
export { cutSnapshot, snapshotChars, snapshotRows, splitSnapshot } from './snapshots.ts';

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

export async function createStore(init: StoreInit, hooks: StoreHooks = {}): Promise<Store> {
  const db: Db = await openDb(init.file);
  const chunk = init.chunkRows ?? CHUNK_ROWS;
  await prepare(db, init.sync ?? 'normal');

  const reader = await openReader(init.file);
  const users = new Map<string, UserState>();
  const names = new SortedNames();
  const userState = (user: string): UserState => {
    let st = users.get(user);
    if (!st) {
      users.set(user, (st = newUserState()));
      names.changed();
    }
    return st;
  };
  await loadUsers(db, userState);

  const commits = new Commits({ db, chunk, hooks, users, userState });
  const importing = new Map<string, number>();
  const core: StoreCore = { db, users, names, userState, importing, chunk, forgetDirty: (user) => commits.forget(user) };

  return {
    ...createMigration(core),
    ...createMemoryReads(users),
    ...createQueries(db, users),
    ...createWrites({ db, users, userState, importing, commits }),
    readers: { sync: reader.sync, history: reader.history },

    async close() {
      if (commits.closed) return;
      if (commits.dirty) await commits.schedule();
      commits.close();
      await reader.close();
      await db.close();
    },
  };
}
