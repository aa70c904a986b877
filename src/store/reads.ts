// Timeline pages for clients (sync, history) on a connection of their own: in WAL mode a reader
// never blocks the writer, and its jobs queue apart from the commits, so a flood of reads delays
// nobody's sends. Pages are bounded by bytes as well as by count, in SQL, so a page of large
// bodies is cut there rather than read whole into the process.
import { openDb } from './db.ts';
import type { Db } from './db.ts';
import { ENTRY_COLS } from './schema.ts';
import type { EntryRow } from './schema.ts';
import { fromRow } from './state.ts';
import type { StoredEntry } from './state.ts';

export type Page = { entries: StoredEntry[]; more: boolean };

export type Reader = {
  /** Entries after `after`, oldest first: at most `limit`, and no more than `maxBytes` of bodies
   * (always at least one entry); `more` when the timeline goes on. */
  sync(user: string, after: number, limit: number, maxBytes: number): Promise<Page>;
  /** Entries of `conv` before `before`, newest first, bounded the same way. */
  history(user: string, conv: string, before: number | undefined, limit: number, maxBytes: number): Promise<Page>;
  close(): Promise<void>;
};

// The inner query takes at most limit + 1 rows (the index does the work); the outer one keeps the
// rows whose bodies before them fit the budget, and says how many the inner one found.
const paged = (where: string, dir: 'ASC' | 'DESC') => `
  SELECT * FROM (
    SELECT *, SUM(len) OVER (ORDER BY seq ${dir} ROWS UNBOUNDED PRECEDING) - len AS before, COUNT(*) OVER () AS found
    FROM (SELECT ${ENTRY_COLS}, length(CAST(body AS BLOB)) AS len FROM entries WHERE ${where} ORDER BY seq ${dir} LIMIT ?)
  ) WHERE before < ? ORDER BY seq ${dir}`;
const SYNC = paged('user = ? AND seq > ?', 'ASC');
const HISTORY = paged('user = ? AND conv = ? AND seq < ?', 'DESC');

type PagedRow = EntryRow & { len: number; before: number; found: number };

function page(rows: PagedRow[], limit: number): Page {
  const found = rows[0]?.found ?? 0;
  const entries = rows.slice(0, limit).map(fromRow);
  return { entries, more: found > entries.length };
}

export async function openReader(file: string): Promise<Reader> {
  const db: Db = await openDb(file);
  await db.job((c) => c.exec('PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;'));
  return {
    sync: (user, after, limit, maxBytes) => db.job(async (c) => page(await c.all<PagedRow>(SYNC, [user, after, limit + 1, maxBytes]), limit)),
    history: (user, conv, before, limit, maxBytes) =>
      db.job(async (c) => page(await c.all<PagedRow>(HISTORY, [user, conv, before ?? Number.MAX_SAFE_INTEGER, limit + 1, maxBytes]), limit)),
    close: () => db.close(),
  };
}
