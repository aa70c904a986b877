// Checking an import before anything is written: the entries that are new, the seq each user's
// timeline reaches, the snapshots to merge, and the users refused (a hole or a contradiction).
import { marks } from './db.ts';
import type { Conn } from './db.ts';
import { ConflictError, GapError } from './import-errors.ts';
import type { ImportRejection } from './import-errors.ts';
import type { ExportedEntry, ExportPage } from './migration.ts';
import type { UserSnapshot } from './snapshots.ts';
import { LOOKUP_CHUNK, pairKey } from './state.ts';
import type { UserState } from './state.ts';

/** What an import writes: the entries to insert, the committed seq each user reaches and the
 * snapshots to merge (one per user). */
export type ImportPlan = { fresh: ExportedEntry[]; top: Map<string, number>; snaps: Map<string, UserSnapshot> };

export const maxDefined = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

/** What happens to a refused user: its error is thrown, or with `rejected` recorded there (the
 * first one per user) and the user left out. */
type Verdicts = { fail(e: ImportRejection): void; ok(user: string): boolean };

function verdicts(rejected: Map<string, ImportRejection> | undefined): Verdicts {
  return {
    fail(e) {
      if (!rejected) throw e;
      if (!rejected.has(e.user)) rejected.set(e.user, e);
    },
    ok: (u) => !rejected?.has(u),
  };
}

/** The import's entries per user and seq; a repeat within it is as idempotent as one on disk. */
function byUserAndSeq(entries: ExportedEntry[], v: Verdicts): Map<string, Map<number, ExportedEntry>> {
  const byUser = new Map<string, Map<number, ExportedEntry>>();
  for (const e of entries) {
    let m = byUser.get(e.user);
    if (!m) byUser.set(e.user, (m = new Map()));
    const prev = m.get(e.seq);
    if (prev && prev.mid !== e.mid) v.fail(new ConflictError(e.user, e.seq, `imported twice, as ${prev.mid} and ${e.mid}`));
    m.set(e.seq, e);
  }
  return byUser;
}

/** One user's imported entries in seq order, split at its committed seq: those at or below it
 * (`overlap`), and those after it (`fresh`, up to `seq`), which must follow on without a hole or
 * a repeated dedup key (else it throws a GapError or a ConflictError). */
function followOn(u: string, m: Map<number, ExportedEntry>, st: UserState | undefined) {
  let seq = st?.committed ?? 0;
  const dkeys = new Map<string, number>();
  const fresh: ExportedEntry[] = [];
  const overlap: ExportedEntry[] = [];
  for (const e of [...m.values()].sort((a, b) => a.seq - b.seq)) {
    if (e.seq <= (st?.committed ?? 0)) {
      overlap.push(e);
      continue;
    }
    if (e.seq !== seq + 1) throw new GapError(u, seq + 1, e.seq);
    const other = dkeys.get(e.dkey);
    if (other !== undefined) throw new ConflictError(u, e.seq, `dedup key ${e.dkey} also imported at seq ${other}`);
    dkeys.set(e.dkey, e.seq);
    fresh.push(e);
    seq = e.seq;
  }
  return { fresh, overlap, seq };
}

function checkEntries(users: Map<string, UserState>, byUser: Map<string, Map<number, ExportedEntry>>, v: Verdicts) {
  // Entries at or below the committed seq should be on disk already; the rest must continue
  // the timeline without a hole.
  const overlap: ExportedEntry[] = [];
  const fresh: ExportedEntry[] = [];
  const top = new Map<string, number>();
  for (const [u, m] of byUser) {
    if (!v.ok(u)) continue;
    const st = users.get(u);
    if (st && st.pending.size > 0) throw new Error(`cannot import entries of ${u}: it has uncommitted local appends`);
    let mine: ReturnType<typeof followOn>;
    try {
      mine = followOn(u, m, st);
    } catch (e) {
      if (e instanceof GapError || e instanceof ConflictError) {
        v.fail(e);
        continue;
      }
      throw e;
    }
    fresh.push(...mine.fresh);
    overlap.push(...mine.overlap);
    top.set(u, mine.seq);
  }
  return { fresh, overlap, top };
}

/** The snapshots per user (parts of one merged), each checked against the seq the user's
 * timeline reaches with the import's entries. */
function mergeSnapshots(users: Map<string, UserState>, list: UserSnapshot[], top: Map<string, number>, v: Verdicts): Map<string, UserSnapshot> {
  const snaps = new Map<string, UserSnapshot>();
  for (const s of list) {
    if (!v.ok(s.user)) continue;
    const st = users.get(s.user);
    if (st && st.pending.size > 0 && s.seq > st.committed) {
      throw new Error(`cannot import ${s.user} up to seq ${s.seq}: it has uncommitted local appends`);
    }
    const have = top.get(s.user) ?? st?.committed ?? 0;
    if (s.seq > have) {
      v.fail(new GapError(s.user, have + 1, s.seq));
      continue;
    }
    const prev = snaps.get(s.user);
    snaps.set(s.user, prev ? { ...s, seq: Math.max(prev.seq, s.seq), lastSeen: maxDefined(prev.lastSeen, s.lastSeen),
      convs: [...prev.convs, ...s.convs], cursors: [...prev.cursors, ...s.cursors],
      outbox: [...(prev.outbox ?? []), ...(s.outbox ?? [])], cleared: [...(prev.cleared ?? []), ...(s.cleared ?? [])] } : s);
  }
  return snaps;
}

/** Compares the overlapping entries with the disk: the same mid is skipped, another mid is a
 * conflict, and a missing one goes into `fresh`. */
async function checkOverlap(c: Conn, overlap: ExportedEntry[], fresh: ExportedEntry[], v: Verdicts): Promise<void> {
  for (let i = 0; i < overlap.length; i += LOOKUP_CHUNK) {
    const part = overlap.slice(i, i + LOOKUP_CHUNK);
    const rs = await c.all<{ user: string; seq: number; mid: string }>(
      `SELECT user, seq, mid FROM entries WHERE (user, seq) IN (VALUES ${marks(part.length, '(?,?)')})`, part.flatMap((e) => [e.user, e.seq]));
    const mids = new Map(rs.map((r) => [pairKey(r.user, r.seq), r.mid]));
    for (const e of part) {
      const mid = mids.get(pairKey(e.user, e.seq));
      if (mid === undefined) fresh.push(e); // a hole below the committed seq: fill it
      else if (mid !== e.mid) v.fail(new ConflictError(e.user, e.seq, `stored mid ${mid}, imported ${e.mid}`));
    }
  }
}

/** Validates an import: the entries to insert per user, the committed seq each user reaches
 * and the snapshots to merge. A user whose data would leave a hole or contradicts what is
 * stored throws, or with `rejected` is recorded there and left out. */
export async function plan(c: Conn, users: Map<string, UserState>, data: ExportPage, rejected?: Map<string, ImportRejection>): Promise<ImportPlan> {
  const v = verdicts(rejected);
  const byUser = byUserAndSeq(data.entries, v);
  const { fresh, overlap, top } = checkEntries(users, byUser, v);
  const snaps = mergeSnapshots(users, data.users, top, v);
  await checkOverlap(c, overlap, fresh, v);
  // A user rejected late (an overlap conflict) or by the snapshot check: none of its data goes in.
  for (const u of rejected?.keys() ?? []) {
    top.delete(u);
    snaps.delete(u);
  }
  return { fresh: fresh.filter((e) => v.ok(e.user)), top, snaps };
}
