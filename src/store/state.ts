// Types and in-memory state shared by the store's parts: appends and group commits (writes.ts,
// commit.ts) and export, import and drop of whole users (migration.ts). All work on the same
// objects, so a change made by one is seen by the others at once, with no copy to keep in step.
import type { Db } from './db.ts';
import type { EntryRow } from './schema.ts';

export type NewEntry = {
  user: string; mid: string; conv: string; from: string; to?: string; group?: string;
  body: string; ts: number;
  /** idempotency key within the user's timeline: 'c:<cid>' for a sender's entry, 'm:<mid>' for a delivered copy */
  dkey: string;
};
export type StoredEntry = NewEntry & { seq: number };

export type ConvState = { lastSeq: number; ocum: number; readSeq: number; readCum: number };
export type UserState = {
  /** seq counter: the newest seq handed out, committed or not */
  seq: number;
  /** newest seq on disk */
  committed: number;
  lastSeen: number | undefined;
  convs: Map<string, ConvState>; cursors: Map<string, number>;
  /** committed outbox rows (copies still to hand to other homes), by outboxKey(mid, dest) */
  outbox: Map<string, OutboxItem>;
  /** appended, not yet committed, by dedup key */
  pending: Map<string, StoredEntry>;
};

export function newUserState(): UserState {
  return { seq: 0, committed: 0, lastSeen: undefined, convs: new Map(), cursors: new Map(), outbox: new Map(), pending: new Map() };
}

/** One outbox row of a user (the sender): a copy of message `mid` still to hand to `dest`'s
 * home; `item` is opaque JSON to the store. */
export type OutboxItem = { mid: string; dest: string; item: unknown };
export const outboxKey = (mid: string, dest: string): string => `${mid}\0${dest}`;

export function fromRow(r: EntryRow): StoredEntry {
  const e: StoredEntry = { user: r.user, seq: r.seq, mid: r.mid, conv: r.conv, from: r.sender, body: r.body, ts: r.ts, dkey: r.dkey };
  if (r.recipient !== null) e.to = r.recipient;
  if (r.grp !== null) e.group = r.grp;
  return e;
}

/** The users' names in order, sorted again only after a user came or went: a one-page export
 * would otherwise sort every name the store holds for every page. */
export class SortedNames {
  #names: string[] | undefined;

  /** A user came or went. */
  changed(): void {
    this.#names = undefined;
  }

  of(users: Map<string, UserState>): readonly string[] {
    return (this.#names ??= [...users.keys()].sort());
  }
}

/** The index of the first name >= `name` in sorted `names`. */
export function lowerBound(names: readonly string[], name: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid]! < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** What migration.ts needs of the store's internals. */
export type StoreCore = {
  db: Db;
  users: Map<string, UserState>;
  /** users' names in order (kept up to date by userState and dropUsers). */
  names: SortedNames;
  userState(user: string): UserState;
  /** Users with an import in flight, with a count: appends to them are refused until it settles,
   * since an append would take a seq the import is about to write. */
  importing: Map<string, number>;
  /** Forgets what the next commit would write for a user whose data was just dropped, so that the
   * commit does not bring a row of it back. */
  forgetDirty(user: string): void;
  /** Rows per multi-row INSERT. */
  chunk: number;
};

/** Keys of (user, x) pairs in maps, in the form findDedup's answer uses. */
export const pairKey = (user: string, x: string | number): string => `${user}\0${x}`;

export const LOOKUP_CHUNK = 400;
