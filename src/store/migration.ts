// Moving whole users between nodes: export of their committed data in pages, import of exported
// or replicated data with the seqs it came with, drop once they are owned elsewhere.
// Every read and write here is one job of the store's FIFO, so it never runs inside a group
// commit, and a commit queued before it has finished when it runs.
import { insertMany, marks } from './db.ts';
import type { Conn, Params } from './db.ts';
import { ENTRY_COLS } from './schema.ts';
import type { EntryRow } from './schema.ts';
import { fromRow, LOOKUP_CHUNK, outboxKey, pairKey } from './state.ts';
import type { ConvState, OutboxItem, StoreCore, StoredEntry, UserState } from './state.ts';

export type UserSnapshot = {
  user: string; seq: number; lastSeen?: number;
  convs: { conv: string; lastSeq: number; ocum: number; readSeq: number; readCum: number }[];
  cursors: { device: string; acked: number }[];
  /** Outbox rows of the user (copies it sent that other homes do not have yet): an import adds them. */
  outbox?: OutboxItem[];
  /** Outbox rows handed over since: an import removes them. */
  cleared?: { mid: string; dest: string }[];
  /** On a part of a snapshot cut to fit a page: the row where the next part starts, counting
   * convs, cursors, outbox and cleared rows in that order. Parts import like whole snapshots
   * (every value only moves forward), in any number of pages. */
  next?: number;
};

/** Rows of a snapshot's state (conversations, cursors, outbox rows and cleared ones). */
export const snapshotRows = (s: UserSnapshot): number => s.convs.length + s.cursors.length + (s.outbox?.length ?? 0) + (s.cleared?.length ?? 0);
const convChars = (c: UserSnapshot['convs'][number]): number => 96 + c.conv.length;
const cursorChars = (c: UserSnapshot['cursors'][number]): number => 48 + c.device.length;
const outboxChars = (o: OutboxItem): number => 64 + o.mid.length + o.dest.length + 2 * JSON.stringify(o.item).length;
const clearedChars = (o: { mid: string; dest: string }): number => 40 + o.mid.length + o.dest.length;
/** Estimated JSON characters of a snapshot (or a part) on the wire. */
export function snapshotChars(s: UserSnapshot): number {
  let n = 128 + s.user.length;
  for (const c of s.convs) n += convChars(c);
  for (const c of s.cursors) n += cursorChars(c);
  for (const o of s.outbox ?? []) n += outboxChars(o);
  for (const o of s.cleared ?? []) n += clearedChars(o);
  return n;
}

/** The rows [from, to) of a snapshot, as a snapshot of the same user, seq and last seen. */
function sliceSnapshot(s: UserSnapshot, from: number, to: number): UserSnapshot {
  const out: UserSnapshot = { user: s.user, seq: s.seq, convs: [], cursors: [] };
  if (s.lastSeen !== undefined) out.lastSeen = s.lastSeen;
  let base = 0;
  const take = <T>(list: T[] | undefined): T[] => {
    const l = list ?? [];
    const part = l.slice(Math.max(0, from - base), Math.max(0, to - base));
    base += l.length;
    return part;
  };
  out.convs = take(s.convs);
  out.cursors = take(s.cursors);
  const ob = take(s.outbox);
  const cl = take(s.cleared);
  if (ob.length) out.outbox = ob;
  if (cl.length) out.cleared = cl;
  return out;
}

/** The part of a snapshot from row `from` that fits `maxChars` and `maxRows` (at least
 * `minRows` rows when it has them): the part (with `next` if rows remain) and the row it ends at. */
export function cutSnapshot(s: UserSnapshot, from: number, maxChars: number, maxRows: number, minRows = 1): { part: UserSnapshot; end: number } {
  const sizes: number[] = [
    ...s.convs.map(convChars), ...s.cursors.map(cursorChars), ...(s.outbox ?? []).map(outboxChars), ...(s.cleared ?? []).map(clearedChars),
  ];
  let chars = 128 + s.user.length;
  let end = from;
  while (end < sizes.length && (end - from < minRows || (end - from < maxRows && chars + sizes[end]! <= maxChars))) chars += sizes[end++]!;
  const part = from === 0 && end === sizes.length ? { ...s } : sliceSnapshot(s, from, end);
  delete part.next;
  if (end < sizes.length) part.next = end;
  return { part, end };
}

/** A snapshot split into parts of at most `maxChars` estimated characters (one row at least). */
export function splitSnapshot(s: UserSnapshot, maxChars: number): UserSnapshot[] {
  const parts: UserSnapshot[] = [];
  const total = snapshotRows(s);
  let at = 0;
  do {
    const { part, end } = cutSnapshot(s, at, maxChars, Infinity);
    parts.push(part);
    at = end;
  } while (at < total);
  return parts;
}
/** ocum is the storage's unread counter; it travels with the entry so unread stays a difference. */
export type ExportedEntry = StoredEntry & { ocum: number };
export type ExportPage = { users: UserSnapshot[]; entries: ExportedEntry[] };

/** An imported entry contradicts one already stored (same user and seq, other mid; or its dedup
 * key is stored at another seq). Nothing of the import was written. */
export class ConflictError extends Error {
  readonly user: string;
  readonly seq: number;
  constructor(user: string, seq: number, detail: string) {
    super(`conflict in ${user}'s timeline at seq ${seq}: ${detail}`);
    this.name = 'ConflictError';
    this.user = user;
    this.seq = seq;
  }
}

/** An import would leave a hole in a timeline: its entries (or its snapshot's seq) do not follow
 * on from what is stored. Nothing was written; export again with `after` = what is stored
 * (userSeqs). Seqs 1..n without gaps is invariant 2 of docs/CLUSTER.md. */
export class GapError extends Error {
  readonly user: string;
  /** the seq the import had to bring next */
  readonly expected: number;
  readonly got: number;
  constructor(user: string, expected: number, got: number) {
    super(`gap in ${user}'s timeline: expected seq ${expected}, got ${got}`);
    this.name = 'GapError';
    this.user = user;
    this.expected = expected;
    this.got = got;
  }
}

export type ImportRejection = GapError | ConflictError;

export type ExportOpts = {
  after?: Record<string, number>; pageRows?: number; pageChars?: number; skip?: { user: string; rows: number };
  /** Only the first this many selected users (by name): a caller that takes one page reads no more states than it can hold. */
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
};

const PAGE_ROWS = 2000;
/** Estimated characters of the snapshots in one export page: with a page of entries cut to the
 * peer budget (1 Mi characters), still well inside a 4 MiB peer frame. */
const PAGE_CHARS = 768 * 1024;
/** Ranges per query in an export page (3 parameters each). */
const RANGE_CHUNK = 300;
/** Rows per INSERT in an import: bigger than the commit's chunk, as imports come in large pages. */
const IMPORT_CHUNK = 1000;

type Range = { user: string; lo: number; hi: number };

const maxDefined = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

function mergeConv(into: ConvState, c: ConvState): void {
  into.lastSeq = Math.max(into.lastSeq, c.lastSeq);
  into.ocum = Math.max(into.ocum, c.ocum);
  into.readSeq = Math.max(into.readSeq, c.readSeq);
  into.readCum = Math.max(into.readCum, c.readCum);
}

/** Deletes outbox rows given as [user, mid, dest]. */
export async function deleteOutbox(c: Conn, keys: Params[], chunk: number): Promise<void> {
  for (let i = 0; i < keys.length; i += chunk) {
    await c.run('DELETE FROM outbox WHERE (user, mid, dest) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(?))',
      [JSON.stringify(keys.slice(i, i + chunk))]);
  }
}

export function createMigration(core: StoreCore): Migration {
  const { db, users } = core;

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

  async function readPage(c: Conn, ranges: Range[], owners: Map<string, UserState>): Promise<ExportedEntry[]> {
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

  async function* exportUsers(select: (user: string) => boolean, opts: ExportOpts = {}): AsyncGenerator<ExportPage> {
    const pageRows = Math.max(1, opts.pageRows ?? PAGE_ROWS);
    const pageChars = Math.max(1, opts.pageChars ?? PAGE_CHARS);
    const after = opts.after ?? {};
    // The in-memory state objects at snapshot time: a later page checks the user was not
    // dropped (and perhaps imported again) in between.
    const owners = new Map<string, UserState>();
    const snaps = await db.job(async (c) => {
      // With maxUsers, in name order up to it: `select` may be costly (ring lookups) and the
      // store may hold far more users than one page takes. Without, select first (a backfill
      // selects one user of many).
      let names: string[];
      if (opts.only) names = [...new Set(opts.only)].filter((u) => users.has(u) && select(u)).sort().slice(0, opts.maxUsers ?? Infinity);
      else if (opts.maxUsers === undefined) names = [...users.keys()].filter(select).sort();
      else {
        names = [];
        for (const u of [...users.keys()].sort()) {
          if (names.length >= opts.maxUsers) break;
          if (select(u)) names.push(u);
        }
      }
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
      return { users: p, entries: r.length ? await db.job((c) => readPage(c, r, owners)) : [] };
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

  /** After a failed insert: which imported entry collides with a stored one, if any. */
  async function findCollision(c: Conn, fresh: ExportedEntry[]): Promise<ConflictError | undefined> {
    for (let i = 0; i < fresh.length; i += LOOKUP_CHUNK) {
      const part = fresh.slice(i, i + LOOKUP_CHUNK);
      const bySeq = await c.all<{ user: string; seq: number; mid: string }>(
        `SELECT user, seq, mid FROM entries WHERE (user, seq) IN (VALUES ${marks(part.length, '(?,?)')})`, part.flatMap((e) => [e.user, e.seq]));
      const byKey = await c.all<{ user: string; seq: number; dkey: string }>(
        `SELECT user, seq, dkey FROM entries WHERE (user, dkey) IN (VALUES ${marks(part.length, '(?,?)')})`, part.flatMap((e) => [e.user, e.dkey]));
      const mids = new Map(bySeq.map((r) => [pairKey(r.user, r.seq), r.mid]));
      const seqs = new Map(byKey.map((r) => [pairKey(r.user, r.dkey), r.seq]));
      for (const e of part) {
        const mid = mids.get(pairKey(e.user, e.seq));
        if (mid !== undefined && mid !== e.mid) return new ConflictError(e.user, e.seq, `stored mid ${mid}, imported ${e.mid}`);
        const seq = seqs.get(pairKey(e.user, e.dkey));
        if (seq !== undefined && seq !== e.seq) return new ConflictError(e.user, e.seq, `dedup key ${e.dkey} is stored at seq ${seq}`);
      }
    }
    return undefined;
  }

  /** Validates an import: the entries to insert per user, the committed seq each user reaches
   * and the snapshots to merge. A user whose data would leave a hole or contradicts what is
   * stored throws, or with `rejected` is recorded there and left out. */
  async function plan(c: Conn, data: ExportPage, rejected?: Map<string, ImportRejection>) {
    const fail = (e: ImportRejection): void => {
      if (!rejected) throw e;
      if (!rejected.has(e.user)) rejected.set(e.user, e);
    };
    const ok = (u: string): boolean => !rejected?.has(u);
    // The import's entries per user and seq; a repeat within it is as idempotent as one on disk.
    const byUser = new Map<string, Map<number, ExportedEntry>>();
    for (const e of data.entries) {
      let m = byUser.get(e.user);
      if (!m) byUser.set(e.user, (m = new Map()));
      const prev = m.get(e.seq);
      if (prev && prev.mid !== e.mid) fail(new ConflictError(e.user, e.seq, `imported twice, as ${prev.mid} and ${e.mid}`));
      m.set(e.seq, e);
    }
    // Entries at or below the committed seq should be on disk already; the rest must continue
    // the timeline without a hole.
    const overlap: ExportedEntry[] = [];
    const fresh: ExportedEntry[] = [];
    const top = new Map<string, number>();
    for (const [u, m] of byUser) {
      if (!ok(u)) continue;
      const st = users.get(u);
      if (st && st.pending.size > 0) throw new Error(`cannot import entries of ${u}: it has uncommitted local appends`);
      let seq = st?.committed ?? 0;
      const dkeys = new Map<string, number>();
      const mine: ExportedEntry[] = [];
      const mineOverlap: ExportedEntry[] = [];
      try {
        for (const e of [...m.values()].sort((a, b) => a.seq - b.seq)) {
          if (e.seq <= (st?.committed ?? 0)) {
            mineOverlap.push(e);
            continue;
          }
          if (e.seq !== seq + 1) throw new GapError(u, seq + 1, e.seq);
          const other = dkeys.get(e.dkey);
          if (other !== undefined) throw new ConflictError(u, e.seq, `dedup key ${e.dkey} also imported at seq ${other}`);
          dkeys.set(e.dkey, e.seq);
          mine.push(e);
          seq = e.seq;
        }
      } catch (e) {
        if (e instanceof GapError || e instanceof ConflictError) {
          fail(e);
          continue;
        }
        throw e;
      }
      fresh.push(...mine);
      overlap.push(...mineOverlap);
      top.set(u, seq);
    }
    const snaps = new Map<string, UserSnapshot>();
    for (const s of data.users) {
      if (!ok(s.user)) continue;
      const st = users.get(s.user);
      if (st && st.pending.size > 0 && s.seq > st.committed) {
        throw new Error(`cannot import ${s.user} up to seq ${s.seq}: it has uncommitted local appends`);
      }
      const have = top.get(s.user) ?? st?.committed ?? 0;
      if (s.seq > have) {
        fail(new GapError(s.user, have + 1, s.seq));
        continue;
      }
      const prev = snaps.get(s.user);
      snaps.set(s.user, prev ? { ...s, seq: Math.max(prev.seq, s.seq), lastSeen: maxDefined(prev.lastSeen, s.lastSeen),
        convs: [...prev.convs, ...s.convs], cursors: [...prev.cursors, ...s.cursors],
        outbox: [...(prev.outbox ?? []), ...(s.outbox ?? [])], cleared: [...(prev.cleared ?? []), ...(s.cleared ?? [])] } : s);
    }
    for (let i = 0; i < overlap.length; i += LOOKUP_CHUNK) {
      const part = overlap.slice(i, i + LOOKUP_CHUNK);
      const rs = await c.all<{ user: string; seq: number; mid: string }>(
        `SELECT user, seq, mid FROM entries WHERE (user, seq) IN (VALUES ${marks(part.length, '(?,?)')})`, part.flatMap((e) => [e.user, e.seq]));
      const mids = new Map(rs.map((r) => [pairKey(r.user, r.seq), r.mid]));
      for (const e of part) {
        const mid = mids.get(pairKey(e.user, e.seq));
        if (mid === undefined) fresh.push(e); // a hole below the committed seq: fill it
        else if (mid !== e.mid) fail(new ConflictError(e.user, e.seq, `stored mid ${mid}, imported ${e.mid}`));
      }
    }
    // A user rejected late (an overlap conflict) or by the snapshot check: none of its data goes in.
    for (const u of rejected?.keys() ?? []) {
      top.delete(u);
      snaps.delete(u);
    }
    return { fresh: fresh.filter((e) => ok(e.user)), top, snaps };
  }

  async function importJob(c: Conn, data: ExportPage, rejected?: Map<string, ImportRejection>): Promise<void> {
    const { fresh, top, snaps } = await plan(c, data, rejected);

    // What the import moves forward: per user its seq and last seen, per conversation the
    // snapshot's counters and those the new entries imply, per device the cursor.
    const touched = new Set([...top.keys(), ...snaps.keys()]);
    const convs = new Map<string, Map<string, ConvState>>();
    const conv = (u: string, name: string): ConvState => {
      let m = convs.get(u);
      if (!m) convs.set(u, (m = new Map()));
      let cs = m.get(name);
      if (!cs) m.set(name, (cs = { lastSeq: 0, ocum: 0, readSeq: 0, readCum: 0 }));
      return cs;
    };
    for (const e of fresh) mergeConv(conv(e.user, e.conv), { lastSeq: e.seq, ocum: e.ocum, readSeq: 0, readCum: 0 });
    for (const s of snaps.values()) for (const cv of s.convs) mergeConv(conv(s.user, cv.conv), cv);
    const seqOf = (u: string) => Math.max(top.get(u) ?? 0, snaps.get(u)?.seq ?? 0);

    const entryRows: Params[] = fresh.map((e) => [
      e.user, e.seq, e.mid, e.conv, e.from, e.to ?? null, e.group ?? null, e.body, e.ts, e.dkey, e.ocum,
    ]);
    const userRows: Params[] = [...touched].map((u) => [u, seqOf(u), snaps.get(u)?.lastSeen ?? null]);
    const convRows: Params[] = [];
    for (const [u, m] of convs) for (const [name, cs] of m) convRows.push([u, name, cs.lastSeq, cs.ocum, cs.readSeq, cs.readCum]);
    const cursorRows: Params[] = [];
    for (const s of snaps.values()) for (const cu of s.cursors) cursorRows.push([s.user, cu.device, cu.acked]);
    const outboxRows: Params[] = [];
    const clearedRows: Params[] = [];
    for (const s of snaps.values()) {
      for (const o of s.outbox ?? []) outboxRows.push([s.user, o.mid, o.dest, JSON.stringify(o.item)]);
      for (const o of s.cleared ?? []) clearedRows.push([s.user, o.mid, o.dest]);
    }

    // max() in SQL, not values from memory: memory may hold uncommitted local changes of a user
    // that only a snapshot touches, and those are the next commit's to write.
    await c.exec('BEGIN');
    try {
      await insertMany(c, `INSERT INTO entries (${ENTRY_COLS})`, 11, '', entryRows, IMPORT_CHUNK);
      await insertMany(c, 'INSERT INTO users (user, seq, last_seen)', 3,
        `ON CONFLICT (user) DO UPDATE SET seq = max(seq, excluded.seq),
           last_seen = coalesce(max(last_seen, excluded.last_seen), last_seen, excluded.last_seen)`, userRows, core.chunk);
      await insertMany(c, 'INSERT INTO convs (user, conv, last_seq, ocum, read_seq, read_cum)', 6,
        `ON CONFLICT (user, conv) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq), ocum = max(ocum, excluded.ocum),
           read_seq = max(read_seq, excluded.read_seq), read_cum = max(read_cum, excluded.read_cum)`, convRows, core.chunk);
      await insertMany(c, 'INSERT INTO cursors (user, device, acked)', 3,
        'ON CONFLICT (user, device) DO UPDATE SET acked = max(acked, excluded.acked)', cursorRows, core.chunk);
      await insertMany(c, 'INSERT OR IGNORE INTO outbox (user, mid, dest, item)', 4, '', outboxRows, core.chunk);
      await deleteOutbox(c, clearedRows, core.chunk);
      await c.exec('COMMIT');
    } catch (err) {
      await c.exec('ROLLBACK').catch(() => undefined);
      const collision = (err as { code?: string }).code === 'SQLITE_CONSTRAINT' ? await findCollision(c, fresh) : undefined;
      if (!collision) throw err;
      if (!rejected) throw collision;
      // Leave that user out and import the others (the check is per entry, so this ends).
      rejected.set(collision.user, collision);
      return importJob(c, data, rejected);
    }

    for (const u of touched) {
      const st = core.userState(u);
      const seq = seqOf(u);
      st.seq = Math.max(st.seq, seq);
      st.committed = Math.max(st.committed, seq);
      st.lastSeen = maxDefined(st.lastSeen, snaps.get(u)?.lastSeen);
      for (const [name, cs] of convs.get(u) ?? []) {
        const mine = st.convs.get(name);
        if (mine) mergeConv(mine, cs);
        else st.convs.set(name, { ...cs });
      }
      for (const cu of snaps.get(u)?.cursors ?? []) st.cursors.set(cu.device, Math.max(st.cursors.get(cu.device) ?? 0, cu.acked));
      for (const o of snaps.get(u)?.outbox ?? []) if (!st.outbox.has(outboxKey(o.mid, o.dest))) st.outbox.set(outboxKey(o.mid, o.dest), o);
      for (const o of snaps.get(u)?.cleared ?? []) st.outbox.delete(outboxKey(o.mid, o.dest));
    }
  }

  async function runImport(data: ExportPage, rejected?: Map<string, ImportRejection>): Promise<Map<string, ImportRejection>> {
    // Checked at the call as well as in the job: by the time the job runs, a commit queued
    // before it has written those appends, and the misuse would only show as a conflict.
    for (const e of data.entries) {
      if ((users.get(e.user)?.pending.size ?? 0) > 0) throw new Error(`cannot import entries of ${e.user}: it has uncommitted local appends`);
    }
    const touched = new Set([...data.users.map((s) => s.user), ...data.entries.map((e) => e.user)]);
    return fenced(touched, async () => {
      await db.job((c) => importJob(c, data, rejected));
      return rejected ?? new Map();
    });
  }

  /** Runs `work` with appends of `names` refused (append throws: "being imported"), from now until
   * it is done: an append made while the job waits or runs would take a seq the job then writes
   * or forgets, and its commit would fail on the UNIQUE key and stop the node (found by the peer
   * fuzzer: an absorb's dropUsers racing a delivery). */
  async function fenced<T>(names: Iterable<string>, work: () => Promise<T>): Promise<T> {
    const held = [...new Set(names)];
    for (const u of held) core.importing.set(u, (core.importing.get(u) ?? 0) + 1);
    try {
      return await work();
    } finally {
      for (const u of held) {
        const n = (core.importing.get(u) ?? 1) - 1;
        if (n > 0) core.importing.set(u, n);
        else core.importing.delete(u);
      }
    }
  }

  return {
    exportUsers,

    importData: (data) => runImport(data).then(() => undefined),
    importEach: (data) => runImport(data, new Map()),

    dropUsers: (names) => fenced(names, () =>
      db.job(async (c) => {
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
        return removed;
      })),

    userSeqs(select) {
      const out = new Map<string, number>();
      for (const [u, st] of users) if (select(u)) out.set(u, st.committed);
      return out;
    },
  };
}
