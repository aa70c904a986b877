// Import of exported or replicated data with the seqs it came with: checked (import-plan.ts),
// written in one transaction in which every counter and cursor only moves forward, then mirrored in memory.
import { insertSql, marks, transaction } from './db.ts';
import type { Conn, Params } from './db.ts';
import { fenced } from './fence.ts';
import { ConflictError } from './import-errors.ts';
import type { ImportRejection } from './import-errors.ts';
import { maxDefined, plan } from './import-plan.ts';
import type { ExportedEntry, ExportPage } from './migration.ts';
import { deleteOutboxSql, ENTRY_COLS } from './schema.ts';
import type { UserSnapshot } from './snapshots.ts';
import { LOOKUP_CHUNK, outboxKey, pairKey } from './state.ts';
import type { ConvState, StoreCore } from './state.ts';

/** Rows per INSERT in an import: bigger than the commit's chunk, as imports come in large pages. */
const IMPORT_CHUNK = 1000;

function mergeConv(into: ConvState, c: ConvState): void {
  into.lastSeq = Math.max(into.lastSeq, c.lastSeq);
  into.ocum = Math.max(into.ocum, c.ocum);
  into.readSeq = Math.max(into.readSeq, c.readSeq);
  into.readCum = Math.max(into.readCum, c.readCum);
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

/** What an import moves forward, in memory's terms and as rows to write. */
type ImportRows = {
  touched: Set<string>; convs: Map<string, Map<string, ConvState>>; seqOf(u: string): number;
  entryRows: Params[]; userRows: Params[]; convRows: Params[]; cursorRows: Params[]; outboxRows: Params[]; clearedRows: Params[];
};

function importRows(fresh: ExportedEntry[], top: Map<string, number>, snaps: Map<string, UserSnapshot>): ImportRows {
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
  return { touched, convs, seqOf, entryRows, userRows, convRows, cursorRows, outboxRows, clearedRows };
}

/** Brings memory up to a committed import, every value only moving forward. */
function applyImport(core: StoreCore, w: ImportRows, snaps: Map<string, UserSnapshot>): void {
  for (const u of w.touched) {
    const st = core.userState(u);
    const seq = w.seqOf(u);
    st.seq = Math.max(st.seq, seq);
    st.committed = Math.max(st.committed, seq);
    st.lastSeen = maxDefined(st.lastSeen, snaps.get(u)?.lastSeen);
    for (const [name, cs] of w.convs.get(u) ?? []) {
      const mine = st.convs.get(name);
      if (mine) mergeConv(mine, cs);
      else st.convs.set(name, { ...cs });
    }
    for (const cu of snaps.get(u)?.cursors ?? []) st.cursors.set(cu.device, Math.max(st.cursors.get(cu.device) ?? 0, cu.acked));
    for (const o of snaps.get(u)?.outbox ?? []) if (!st.outbox.has(outboxKey(o.mid, o.dest))) st.outbox.set(outboxKey(o.mid, o.dest), o);
    for (const o of snaps.get(u)?.cleared ?? []) st.outbox.delete(outboxKey(o.mid, o.dest));
  }
}

async function importJob(core: StoreCore, c: Conn, data: ExportPage, rejected?: Map<string, ImportRejection>): Promise<void> {
  const { fresh, top, snaps } = await plan(c, core.users, data, rejected);
  const w = importRows(fresh, top, snaps);

  // max() in SQL, not values from memory: memory may hold uncommitted local changes of a user
  // that only a snapshot touches, and those are the next commit's to write.
  try {
    await transaction(c, [
      ...insertSql(`INSERT INTO entries (${ENTRY_COLS})`, '', w.entryRows, IMPORT_CHUNK),
      ...insertSql('INSERT INTO users (user, seq, last_seen)',
        `ON CONFLICT (user) DO UPDATE SET seq = max(seq, excluded.seq),
           last_seen = coalesce(max(last_seen, excluded.last_seen), last_seen, excluded.last_seen)`, w.userRows, core.chunk),
      ...insertSql('INSERT INTO convs (user, conv, last_seq, ocum, read_seq, read_cum)',
        `ON CONFLICT (user, conv) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq), ocum = max(ocum, excluded.ocum),
           read_seq = max(read_seq, excluded.read_seq), read_cum = max(read_cum, excluded.read_cum)`, w.convRows, core.chunk),
      ...insertSql('INSERT INTO cursors (user, device, acked)',
        'ON CONFLICT (user, device) DO UPDATE SET acked = max(acked, excluded.acked)', w.cursorRows, core.chunk),
      ...insertSql('INSERT OR IGNORE INTO outbox (user, mid, dest, item)', '', w.outboxRows, core.chunk),
      ...deleteOutboxSql(w.clearedRows, core.chunk),
    ]);
  } catch (err) {
    const collision = (err as { code?: string }).code === 'SQLITE_CONSTRAINT' ? await findCollision(c, fresh) : undefined;
    if (!collision) throw err;
    if (!rejected) throw collision;
    // Leave that user out and import the others (the check is per entry, so this ends).
    rejected.set(collision.user, collision);
    return importJob(core, c, data, rejected);
  }
  applyImport(core, w, snaps);
}

/** Migration.importData (no `rejected`: the first rejection throws) and importEach. */
export async function runImport(core: StoreCore, data: ExportPage, rejected?: Map<string, ImportRejection>): Promise<Map<string, ImportRejection>> {
  // Checked at the call as well as in the job: by the time the job runs, a commit queued
  // before it has written those appends, and the misuse would only show as a conflict.
  for (const e of data.entries) {
    if ((core.users.get(e.user)?.pending.size ?? 0) > 0) throw new Error(`cannot import entries of ${e.user}: it has uncommitted local appends`);
  }
  const touched = new Set([...data.users.map((s) => s.user), ...data.entries.map((e) => e.user)]);
  return fenced(core.importing, touched, async () => {
    await core.db.job((c) => importJob(core, c, data, rejected));
    return rejected ?? new Map();
  });
}
