// Export of whole users' committed data: their snapshots read at one point in time, then their
// entries up to those snapshots' seqs, in pages bounded by rows and by estimated characters.
import { marks } from './db.ts';
import type { Conn } from './db.ts';
import type { ExportedEntry, ExportOpts, ExportPage } from './migration.ts';
import { ENTRY_COLS } from './schema.ts';
import type { EntryRow } from './schema.ts';
import { cutSnapshot, snapshotChars, snapshotRows } from './snapshots.ts';
import type { UserSnapshot } from './snapshots.ts';
import { fromRow, LOOKUP_CHUNK, lowerBound } from './state.ts';
import type { StoreCore, UserState } from './state.ts';

const PAGE_ROWS = 2000;
/** Estimated characters of the snapshots in one export page: with a page of entries cut to the
 * peer budget (1 Mi characters), still well inside a 4 MiB peer frame. */
const PAGE_CHARS = 768 * 1024;
/** Ranges per query in an export page (3 parameters each). */
const RANGE_CHUNK = 300;

type Range = { user: string; lo: number; hi: number };

/** The snapshots of `names` as on disk, in one job so that they are of one point in time. */
async function readSnapshots(c: Conn, names: string[]): Promise<Map<string, UserSnapshot>> {
  const snaps = new Map<string, UserSnapshot>();
  for (let i = 0; i < names.length; i += LOOKUP_CHUNK) {
    const part = names.slice(i, i + LOOKUP_CHUNK);
    const inList = `user IN (${marks(part.length)})`;
    for (const r of await c.all<{ user: string; seq: number; last_seen: number | null }>(
      `SELECT user, seq, last_seen FROM users WHERE ${inList} ORDER BY user`, part)) {
      const s: UserSnapshot = { user: r.user, seq: r.seq, convs: [], cursors: [] };
      if (r.last_seen !== null) s.lastSeen = r.last_seen;
      snaps.set(r.user, s);
    }
    type ConvRow = { user: string; conv: string; last_seq: number; ocum: number; read_seq: number; read_cum: number };
    for (const r of await c.all<ConvRow>(
      `SELECT user, conv, last_seq, ocum, read_seq, read_cum FROM convs WHERE ${inList} ORDER BY user, conv`, part)) {
      snaps.get(r.user)?.convs.push({ conv: r.conv, lastSeq: r.last_seq, ocum: r.ocum, readSeq: r.read_seq, readCum: r.read_cum });
    }
    for (const r of await c.all<{ user: string; device: string; acked: number }>(
      `SELECT user, device, acked FROM cursors WHERE ${inList} ORDER BY user, device`, part)) {
      snaps.get(r.user)?.cursors.push({ device: r.device, acked: r.acked });
    }
    for (const r of await c.all<{ user: string; mid: string; dest: string; item: string }>(
      `SELECT user, mid, dest, item FROM outbox WHERE ${inList} ORDER BY user, mid, dest`, part)) {
      const snap = snaps.get(r.user);
      if (snap) (snap.outbox ??= []).push({ mid: r.mid, dest: r.dest, item: JSON.parse(r.item) as unknown });
    }
  }
  return snaps;
}

async function readPage(c: Conn, users: Map<string, UserState>, ranges: Range[], owners: Map<string, UserState>): Promise<ExportedEntry[]> {
  for (const r of ranges) {
    // Entries at or below a snapshot's seq never change, but a drop removes them.
    if (users.get(r.user) !== owners.get(r.user)) throw new Error(`${r.user} was dropped during its export`);
  }
  const out: ExportedEntry[] = [];
  for (let i = 0; i < ranges.length; i += RANGE_CHUNK) {
    const part = ranges.slice(i, i + RANGE_CHUNK);
    const sql = `WITH r(u, lo, hi) AS (VALUES ${marks(part.length, '(?,?,?)')})
      SELECT ${ENTRY_COLS} FROM r JOIN entries e ON e.user = r.u AND e.seq > r.lo AND e.seq <= r.hi ORDER BY e.user, e.seq`;
    for (const row of await c.all<EntryRow>(sql, part.flatMap((r) => [r.user, r.lo, r.hi]))) {
      out.push({ ...fromRow(row), ocum: row.ocum });
    }
  }
  return out;
}

/** The rows a user's export takes (entries after `after`, and its snapshot), from its state in
 * memory: an estimate, as the snapshot is read later. */
const rowsOf = (st: UserState, after: number): number => Math.max(0, st.committed - after) + 1 + st.convs.size + st.cursors.size + st.outbox.size;

/** The users to export, in name order. */
function selectNames(core: Pick<StoreCore, 'users' | 'names'>, select: (user: string) => boolean, opts: ExportOpts, pageRows: number): string[] {
  const { users } = core;
  // With maxUsers, in name order up to it, and no more than one page of rows: `select` may be
  // costly (ring lookups), the store may hold far more users than one page takes, and each one
  // selected has its snapshot read. Without, select first (a backfill selects one user of many).
  if (opts.only) return [...new Set(opts.only)].filter((u) => users.has(u) && select(u)).sort().slice(0, opts.maxUsers ?? Infinity);
  if (opts.maxUsers === undefined) return [...users.keys()].filter(select).sort();
  const names: string[] = [];
  let rows = 0;
  const sorted = core.names.of(users);
  for (let i = opts.from === undefined ? 0 : lowerBound(sorted, opts.from); i < sorted.length; i++) {
    const u = sorted[i]!;
    if (names.length >= opts.maxUsers || rows >= pageRows) break;
    if (!select(u)) continue;
    names.push(u);
    rows += rowsOf(users.get(u)!, opts.after?.[u] ?? 0);
  }
  return names;
}

/** Migration.exportUsers. */
export async function* exportUsers(core: Pick<StoreCore, 'db' | 'users' | 'names'>, select: (user: string) => boolean, opts: ExportOpts = {}): AsyncGenerator<ExportPage> {
  const { db, users } = core;
  const pageRows = Math.max(1, opts.pageRows ?? PAGE_ROWS);
  const pageChars = Math.max(1, opts.pageChars ?? PAGE_CHARS);
  const after = opts.after ?? {};
  // The in-memory state objects at snapshot time: a later page checks the user was not
  // dropped (and perhaps imported again) in between.
  const owners = new Map<string, UserState>();
  const snaps = await db.job(async (c) => {
    const names = selectNames(core, select, opts, pageRows);
    for (const u of names) owners.set(u, users.get(u)!);
    return readSnapshots(c, names);
  });

  let ranges: Range[] = [];
  let page: UserSnapshot[] = [];
  let weight = 0;
  let chars = 0; // of the snapshots in the page
  const take = async (): Promise<ExportPage> => {
    const r = ranges;
    const p = page;
    ranges = [];
    page = [];
    weight = 0;
    chars = 0;
    return { users: p, entries: r.length ? await db.job((c) => readPage(c, users, r, owners)) : [] };
  };
  // Seqs are 1..n without gaps, so a range's row count is its width and pages are planned
  // without counting rows.
  for (const snap of snaps.values()) {
    let lo = Math.max(0, after[snap.user] ?? 0);
    while (lo < snap.seq) {
      const n = Math.min(snap.seq - lo, pageRows - weight);
      ranges.push({ user: snap.user, lo, hi: lo + n });
      lo += n;
      weight += n;
      if (lo < snap.seq && weight >= pageRows) yield await take();
    }
    // The snapshot, in parts if it does not fit what is left of the page.
    const total = snapshotRows(snap);
    let at = opts.skip?.user === snap.user ? Math.min(total, Math.max(0, opts.skip.rows)) : 0;
    for (;;) {
      // A part as large as the page's characters allow, with the user's last entries (so a
      // small snapshot comes in the page of its last entries); rows are bounded by characters.
      const { part, end } = cutSnapshot(snap, at, pageChars - chars, Infinity, page.length === 0 ? 1 : 0);
      if (end === at && at < total) {
        yield await take(); // no room left in this page
        continue;
      }
      page.push(part);
      weight += 1 + end - at;
      chars += snapshotChars(part);
      at = end;
      if (at >= total) break;
      yield await take();
    }
    if (weight >= pageRows || chars >= pageChars) yield await take();
  }
  if (page.length > 0 || ranges.length > 0) yield await take();
}
