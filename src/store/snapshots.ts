// A user's state as one value (a snapshot), and how it is cut into parts that fit a page: exports
// and replication send a large user's conversations, cursors and outbox rows over several pages.
import type { OutboxItem } from './state.ts';

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
