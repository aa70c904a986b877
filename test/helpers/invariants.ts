// The message invariants of docs/CLUSTER.md (1: nothing confirmed lost; 2: dense seqs, no mid
// twice; 3: order per connection) checked on timelines read back after a run, against the sends
// that were confirmed. One pure function, free of any test framework, so that the churn and
// handoff tests (through checkInvariants in churn.ts), the history checker (history.ts, once per
// read) and bench/churn.ts hold runs to the same checks; each caller decides how to report what
// it returns.
import type { Entry } from '../../src/protocol/frames.ts';

/**
 * A confirmed send; `to` is the recipient, or `g:<group>` for a group message. `conn`, when
 * known, is the connection that stored it: sends with the same `conn` (and sender and `to`) must
 * keep their order in every recipient's timeline, the order given by `idx` or else by their place
 * in the list of confirmed sends (right when one connection has one send in flight at a time).
 */
export type Confirmed = { from: string; to: string; mid: string; seq: number; cid: string; conn?: number; idx?: number };

export type ViolationKind =
  | 'gaps' // a timeline's seqs are not 1..n
  | 'mid_twice' // a mid appears more than once in one timeline
  | 'lost' // a confirmed send is missing from its sender's or a recipient's timeline
  | 'mismatch' // there under another mid, or at the sender under another seq than confirmed
  | 'duplicate' // one (sender, cid) stored more than once in one timeline
  | 'reordered' // sends stored through one connection out of order at a recipient
  | 'group_order'; // two members see a group's messages in different orders

/** What the checks look at in a timeline's entry: a read-back Entry, or a history's ReadEntry. */
export type TimelineEntry = Pick<Entry, 'seq' | 'mid' | 'conv' | 'from' | 'body'>;

export type Violation<T extends Confirmed = Confirmed, E extends TimelineEntry = Entry> = {
  kind: ViolationKind;
  /** Whose timeline shows it. */
  user: string;
  text: string;
  /** How many: the extra copies for duplicate and mid_twice (one violation per mid or per
   * send), else 1. */
  count: number;
  /** The confirmed send concerned, when there is one. */
  send?: T;
  /** For lost and mismatch: whether `user` is the send's sender or one of its recipients. */
  role?: 'sender' | 'recipient';
  /** The entries of `user`'s timeline that show it, for a caller's own message: the first one
   * out of place (gaps), every copy (mid_twice, duplicate), what was found instead (mismatch:
   * the copy under another mid, or the sender's copies at other seqs; reordered). The very
   * objects of the timelines given. */
  entries?: E[];
};

export type CheckOptions<E extends TimelineEntry = Entry> = {
  /** Members of each group, by `g:<group>`; fixed for the run. */
  groups?: Map<string, string[]>;
  /** The cid an entry was sent with (default: its body: the tests send the cid as the body), or
   * undefined for an entry that is none of the run's sends. Cids are unique per sender. */
  cidOf?: (e: E) => string | undefined;
};

const keyOf = (from: string, cid: string) => `${from}\u0000${cid}`;

/**
 * Every violation of the invariants in the timelines read back (user → entries in seq order),
 * given every confirmed send: each timeline's seqs are 1..n and no mid is there twice; every
 * confirmed send is in its sender's timeline under its mid at its confirmed seq (and at no
 * other), and in each recipient's (every member of a group, members fixed for the run) under
 * the same mid; no (sender, cid) is stored twice in any timeline, confirmed or not (a resend
 * must not store again); sends of one connection keep their order at each recipient; all
 * members of a group see its messages in one order. An empty list means the run held every invariant.
 */
export function findViolations<T extends Confirmed, E extends TimelineEntry = Entry>(
  timelines: ReadonlyMap<string, readonly E[]>,
  confirmed: readonly T[],
  opts: CheckOptions<E> = {},
): Violation<T, E>[] {
  const groups = opts.groups ?? new Map<string, string[]>();
  const cidOf = opts.cidOf ?? ((e: E) => e.body);
  const recipients = (m: Confirmed) => groups.get(m.to) ?? [m.to];
  const out: Violation<T, E>[] = [];
  const sends = new Map<string, { m: T; ord: number }>();
  for (const [i, m] of confirmed.entries()) sends.set(keyOf(m.from, m.cid), { m, ord: m.idx ?? i });

  // Each timeline on its own: dense seqs, unique mids, each send stored once.
  const byMid = new Map<string, Map<string, E[]>>(); // every copy of each mid
  const byCid = new Map<string, Map<string, E[]>>();
  for (const [u, tl] of timelines) {
    const bad = tl.findIndex((e, i) => e.seq !== i + 1);
    if (bad >= 0) {
      out.push({
        kind: 'gaps', user: u, count: 1, entries: [tl[bad]!],
        text: `${u}: seqs are not 1..${tl.length} (seq ${tl[bad]!.seq} at position ${bad + 1}, after seq ${tl[bad - 1]?.seq ?? 0})`,
      });
    }
    const copies = new Map<string, E[]>();
    for (const e of tl) {
      const l = copies.get(e.mid);
      if (l) l.push(e);
      else copies.set(e.mid, [e]);
    }
    // One violation per repeated mid, so that each names its seqs.
    for (const [mid, es] of copies) {
      if (es.length > 1) out.push({ kind: 'mid_twice', user: u, count: es.length - 1, entries: es, text: `${u}: mid ${mid} at seqs ${es.map((e) => e.seq).join(', ')}` });
    }
    byMid.set(u, copies);
    const cids = new Map<string, E[]>();
    for (const e of tl) {
      const cid = cidOf(e);
      if (cid === undefined) continue;
      const k = keyOf(e.from, cid);
      cids.set(k, [...(cids.get(k) ?? []), e]);
    }
    byCid.set(u, cids);
    for (const [k, es] of cids) {
      if (es.length < 2) continue;
      const send = sends.get(k)?.m;
      out.push({
        kind: 'duplicate', user: u, count: es.length - 1, entries: es, ...(send ? { send } : {}),
        text: `${es[0]!.from}/${cidOf(es[0]!)}: ${es.length} times in ${u}'s timeline (seqs ${es.map((e) => e.seq).join(', ')})`,
      });
    }
  }

  // Every confirmed send where it went.
  for (const m of confirmed) {
    const where: [string, 'sender' | 'recipient'][] = [[m.from, 'sender'], ...recipients(m).filter((r) => r !== m.from).map((r) => [r, 'recipient'] as [string, 'recipient'])];
    for (const [u, role] of where) {
      const es = byMid.get(u)?.get(m.mid);
      if (es) {
        // Every copy: a mid stored twice at the sender is also somewhere it was not confirmed.
        const off = role === 'sender' ? es.filter((e) => e.seq !== m.seq) : [];
        if (off.length > 0) out.push({ kind: 'mismatch', user: u, role, count: 1, send: m, entries: off, text: `${m.cid}: sender seq ${off.map((e) => e.seq).join(', ')} is not the confirmed ${m.seq}` });
        continue;
      }
      const other = byCid.get(u)?.get(keyOf(m.from, m.cid))?.[0];
      if (other) {
        out.push({ kind: 'mismatch', user: u, role, count: 1, send: m, entries: [other], text: `${m.cid}: confirmed as ${m.mid} seq ${m.seq}, the ${role} ${u}'s timeline has it as ${other.mid} seq ${other.seq}` });
      } else {
        out.push({ kind: 'lost', user: u, role, count: 1, send: m, text: `${m.cid} (${m.mid}) confirmed but missing from the ${role} ${u}${m.to !== u && role === 'recipient' ? ` (${m.to})` : ''}` });
      }
    }
  }

  // Order per sending connection at each recipient (a send stored twice is counted above).
  for (const [r, tl] of timelines) {
    const highest = new Map<string, number>(); // from|conn|to → the highest order seen so far
    for (const e of tl) {
      const cid = cidOf(e);
      if (cid === undefined) continue;
      const k = keyOf(e.from, cid);
      const s = sends.get(k);
      if (!s || s.m.conn === undefined || byCid.get(r)!.get(k)!.length !== 1 || !recipients(s.m).includes(r)) continue;
      const c = `${s.m.from}|${s.m.conn}|${s.m.to}`;
      const top = highest.get(c) ?? -Infinity;
      if (s.ord < top) out.push({ kind: 'reordered', user: r, count: 1, send: s.m, entries: [e], text: `${s.m.cid}: out of order in ${r}'s timeline (seq ${e.seq}, after a later send of its connection)` });
      highest.set(c, Math.max(top, s.ord));
    }
  }

  // One order per group: every member's timeline has the group's messages in the same order.
  for (const [g, members] of groups) {
    const orders = members.map((u) => (timelines.get(u) ?? []).filter((e) => e.conv === g).map((e) => e.mid));
    const first = orders[0] ?? [];
    for (const [i, o] of orders.entries()) {
      if (o.length !== first.length || o.some((mid, j) => mid !== first[j])) {
        out.push({ kind: 'group_order', user: members[i]!, count: 1, text: `${g}: ${members[i]} sees ${o.length} messages in another order than ${members[0]} (${first.length})` });
      }
    }
  }
  return out;
}
