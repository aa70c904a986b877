// What a home queues for one user and one replica (entries, a snapshot of changed state, or a
// backfill from the store), and how two such items merge.
import type { ExportedEntry, UserSnapshot } from '../store/index.ts';

export type Item = { entries: ExportedEntry[]; snap?: UserSnapshot; version: number; backfill?: number };

/** Queued entries of one user beyond which it is sent as a backfill from the store instead. */
const ITEM_ROWS = 1000;

/** A backfilled item carries no entries (the store has them); a long queue becomes a backfill. */
export function normalize(it: Item): void {
  if (it.backfill === undefined && it.entries.length > ITEM_ROWS) {
    it.backfill = Math.min(...it.entries.map((e) => e.seq)) - 1;
  }
  if (it.backfill !== undefined) it.entries = [];
}

/** `a` then `b` (the newer): conversations and cursors by name, outbox rows added and cleared. */
export function mergeSnap(a: UserSnapshot | undefined, b: UserSnapshot | undefined): UserSnapshot | undefined {
  if (!a || !b) return a ?? b;
  const convs = new Map(a.convs.map((c) => [c.conv, c]));
  for (const c of b.convs) convs.set(c.conv, c);
  const cursors = new Map(a.cursors.map((c) => [c.device, c]));
  for (const c of b.cursors) cursors.set(c.device, c);
  const s: UserSnapshot = { user: a.user, seq: Math.max(a.seq, b.seq), convs: [...convs.values()], cursors: [...cursors.values()] };
  const ls = Math.max(a.lastSeen ?? -1, b.lastSeen ?? -1);
  if (ls >= 0) s.lastSeen = ls;
  const k = (o: { mid: string; dest: string }) => `${o.mid}\0${o.dest}`;
  const outbox = new Map((a.outbox ?? []).map((o) => [k(o), o]));
  const cleared = new Map((a.cleared ?? []).map((o) => [k(o), o]));
  for (const o of b.cleared ?? []) {
    outbox.delete(k(o));
    cleared.set(k(o), o);
  }
  for (const o of b.outbox ?? []) {
    cleared.delete(k(o));
    outbox.set(k(o), o);
  }
  if (outbox.size) s.outbox = [...outbox.values()];
  if (cleared.size) s.cleared = [...cleared.values()];
  return s;
}
