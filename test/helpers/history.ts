// A history of client operations (sends with their start, end and result; pushes received;
// timelines read back) kept in memory, and a checker of what every observation of it must agree
// on: confirmed sends exactly once where they belong, connection order, no forks, no gaps.
// Pure: no clock, no network; the only I/O is `dump` into the file it is given.
import { writeFile } from 'node:fs/promises';
import { findViolations } from './invariants.ts';
import type { Confirmed, Violation } from './invariants.ts';

export type SendResult =
  | { mid: string; seq: number; ts: number; dup?: boolean }
  | { error: string }
  | { dropped: true }
  | { timeout: true };
/** One attempt of a send; a resend of the same cid is another attempt. `node`: the URL it went to. */
export type SendOp = { op: 'send'; user: string; conn: string; node: string; to: string; cid: string; start: number; end: number; result: SendResult };
export type PushOp = { op: 'push'; user: string; conn: string; at: number; seq: number; mid: string; conv: string; from: string; body?: string };
export type ReadEntry = { seq: number; mid: string; from: string; conv: string; body: string };
/** A user's whole timeline as one node (`reader`) served it; `error` when it could not be read. */
export type ReadOp = { op: 'read'; user: string; reader: string; at: number; entries: ReadEntry[]; error?: string };
export type Op = SendOp | PushOp | ReadOp;

export class History {
  ops: Op[] = [];

  send(o: Omit<SendOp, 'op'>): void {
    this.ops.push({ op: 'send', ...o });
  }
  push(o: Omit<PushOp, 'op'>): void {
    this.ops.push({ op: 'push', ...o });
  }
  read(o: Omit<ReadOp, 'op'>): void {
    this.ops.push({ op: 'read', ...o });
  }

  /** One JSON object per line, in the order recorded. */
  toJsonLines(): string {
    return this.ops.map((o) => JSON.stringify(o)).join('\n') + '\n';
  }

  static fromJsonLines(text: string): History {
    const h = new History();
    h.ops = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Op);
    return h;
  }

  /** Writes the history as JSON lines, for a post-mortem of a failed run. */
  async dump(file: string): Promise<void> {
    await writeFile(file, this.toJsonLines());
  }
}

const isSent = (r: SendResult): r is { mid: string; seq: number; ts: number; dup?: boolean } => 'mid' in r;
const ops = (h: History | Op[]): Op[] => (Array.isArray(h) ? h : h.ops);
const by = <T, K>(xs: T[], key: (x: T) => K): Map<K, T[]> => {
  const m = new Map<K, T[]>();
  for (const x of xs) {
    const k = key(x);
    const l = m.get(k);
    if (l) l.push(x);
    else m.set(k, [x]);
  }
  return m;
};
const label = (s: SendOp): string => `${s.user}/${s.cid} (conn ${s.conn}, ${s.start}..${s.end})`;

/** A confirmed send as the shared checker takes it, with the attempt whose reply confirmed it
 * first (for the messages). No `conn`: the shared checker's connection order is a total order
 * per connection, which sends in flight together do not have; check's real-time order replaces it. */
type Sent = Confirmed & { op: SendOp };

/** One violation the shared checker found in one read, in check's words; undefined for one that
 * another line already names. */
function describe(x: Violation<Sent, ReadEntry>, r: ReadOp): string | undefined {
  const where = `${r.user} via ${r.reader}`;
  const es = x.entries ?? [];
  const seqs = es.map((e) => e.seq).join(', ');
  switch (x.kind) {
    case 'gaps': {
      const i = r.entries.indexOf(es[0]!);
      return `gap: ${where}: seq ${es[0]!.seq} at position ${i + 1} (after seq ${r.entries[i - 1]?.seq ?? 0})`;
    }
    case 'mid_twice':
      return `duplicate: ${where}: mid ${es[0]!.mid} at seqs ${seqs}`;
    case 'duplicate':
      // One (from, cid) under one mid at two seqs is the mid_twice line.
      if (new Set(es.map((e) => e.mid)).size < 2) return undefined;
      return `duplicate: ${where}: ${es[0]!.from}/${es[0]!.body} minted twice: ${es.map((e) => `seq ${e.seq} mid ${e.mid}`).join(', ')}`;
    case 'lost': {
      const s = x.send!;
      return `lost: ${label(s.op)} mid ${s.mid} sent seq ${s.seq} missing from the ${x.role} ${where}`;
    }
    case 'mismatch': {
      const s = x.send!;
      const e = es[0]!;
      if (e.mid === s.mid) return `lost: ${label(s.op)} mid ${s.mid} at seq ${seqs} of the sender via ${r.reader}, sent said ${s.seq}`;
      return `lost: ${label(s.op)} mid ${s.mid} sent seq ${s.seq} missing from the ${x.role} ${where}, which has it as mid ${e.mid} at seq ${e.seq}`;
    }
    default:
      // reordered and group_order need a connection or a group, which check does not pass;
      // should the shared checker gain a kind, it still shows.
      return `${x.kind}: ${where}: ${x.text}`;
  }
}

/**
 * Everything the history's observations disagree on, one line each, per user:
 * - lost: a confirmed send missing from the sender's or the recipient's timeline, or in the
 *   sender's at another seq than its `sent` reply said;
 * - duplicate: a cid confirmed as two messages (or at two seqs); one mid at two seqs of a
 *   timeline, or two entries with one (from, cid) (the body carries the cid), confirmed or not;
 * - reorder: two confirmed sends of one connection, the first answered before the second was
 *   started, in the opposite order in the sender's or a common recipient's timeline; with
 *   `pipelined`, also two first tries (neither cid ever sent before) started in that order while
 *   both were in flight, which the protocol orders too ("even with many requests in flight");
 * - fork: two observations (a read through any node, a push, a `sent` reply) that name different
 *   mids at one seq, or a read that ends before a seq something else saw;
 * - gap: a read whose seqs are not 1..n.
 * What a read shows on its own against the confirmed sends (lost, gap, a mid or a cid twice) is
 * the shared invariant checker's (invariants.ts, findViolations), run on every read: a user is
 * read through several nodes and each read must hold. What needs the history stays here: reads
 * that failed or are missing, resends answered differently, real-time order, and forks between
 * reads, pushes and replies.
 */
export function check(h: History | Op[], opts: { pipelined?: boolean } = {}): string[] {
  const all = ops(h);
  const sends = all.filter((o): o is SendOp => o.op === 'send');
  const pushes = all.filter((o): o is PushOp => o.op === 'push');
  const reads = all.filter((o): o is ReadOp => o.op === 'read');
  const v: string[] = [];

  // Confirmed sends: a cid is one message, confirmed by its first answered attempt; every
  // resend must be answered with the same mid and seq.
  const confirmed: Sent[] = [];
  for (const attempts of by(sends, (s) => `${s.user}\u0000${s.cid}`).values()) {
    const ok = attempts.filter((s) => isSent(s.result));
    if (ok.length === 0) continue;
    const first = ok[0]!;
    const got = first.result as { mid: string; seq: number };
    for (const s of ok.slice(1)) {
      const r = s.result as { mid: string; seq: number };
      if (r.mid !== got.mid || r.seq !== got.seq) v.push(`duplicate: ${label(first)} confirmed as mid ${got.mid} seq ${got.seq}, its resend ${label(s)} as mid ${r.mid} seq ${r.seq}`);
    }
    confirmed.push({ from: first.user, to: first.to, cid: first.cid, mid: got.mid, seq: got.seq, op: first });
  }
  const concerning = new Map<string, Sent[]>(); // user → the sends they sent or received
  for (const m of confirmed) {
    for (const u of new Set([m.from, m.to])) {
      const l = concerning.get(u);
      if (l) l.push(m);
      else concerning.set(u, [m]);
    }
  }

  // Each read on its own: readable, and holding the invariants for the user's sends (one timeline
  // given, so what the checker says of other users' timelines is left out).
  const good: ReadOp[] = [];
  for (const r of reads) {
    if (r.error !== undefined) {
      v.push(`unreadable: ${r.user} via ${r.reader}: ${r.error}`);
      continue;
    }
    good.push(r);
    for (const x of findViolations(new Map([[r.user, r.entries]]), concerning.get(r.user) ?? [])) {
      const line = x.user === r.user ? describe(x, r) : undefined;
      if (line !== undefined) v.push(line);
    }
  }
  const readsOf = by(good, (r) => r.user);
  const seqIn = new Map<ReadOp, Map<string, number>>(good.map((r) => [r, new Map(r.entries.map((e) => [e.mid, e.seq]))]));
  for (const m of confirmed) {
    for (const [who, role] of [[m.from, 'sender'], ...(m.to !== m.from ? [[m.to, 'recipient']] : [])] as [string, string][]) {
      if (!readsOf.has(who)) v.push(`lost: ${label(m.op)} (mid ${m.mid}) cannot be found: no read of the ${role} ${who}`);
    }
  }

  // Connection order, for sends in real-time order on one connection (the confirmed attempts);
  // with `pipelined`, also for first tries sent one after the other while both were in flight.
  const firstTry = new Map<string, SendOp>();
  for (const s of sends) {
    const k = `${s.user}\u0000${s.cid}`;
    if ((firstTry.get(k)?.start ?? Infinity) > s.start) firstTry.set(k, s);
  }
  const isFirst = (s: SendOp) => firstTry.get(`${s.user}\u0000${s.cid}`) === s;
  for (const cs of by(sends.filter((s) => isSent(s.result)), (s) => `${s.user}\u0000${s.conn}`).values()) {
    for (const a of cs) {
      for (const b of cs) {
        // b counts as started when its cid was first tried: a resend of an older cid after newer
        // ones were answered keeps the older one's place.
        const bStart = firstTry.get(`${b.user}\u0000${b.cid}`)!.start;
        const inFlight = opts.pipelined === true && !(a.end < bStart) && a.start < b.start && isFirst(a) && isFirst(b);
        if (a.cid === b.cid || !(a.end < bStart || inFlight)) continue;
        const ma = (a.result as { mid: string }).mid;
        const mb = (b.result as { mid: string }).mid;
        const whose = [a.user, ...(a.to === b.to && a.to !== a.user ? [a.to] : [])];
        for (const who of whose) {
          for (const r of readsOf.get(who) ?? []) {
            const sa = seqIn.get(r)!.get(ma);
            const sb = seqIn.get(r)!.get(mb);
            if (sa !== undefined && sb !== undefined && sa > sb) {
              v.push(`reorder: ${who === a.user ? 'sender' : 'recipient'} ${who} via ${r.reader}: ${label(a)} ${inFlight ? 'sent (first try) before' : 'answered before'} ${label(b)} started, but at seq ${sa} after ${sb}`);
            }
          }
        }
      }
    }
  }

  // Forks: every observation of a user's timeline names one mid per seq, and every final read
  // holds every seq anything saw.
  type Seen = { mid: string; src: string };
  const seen = new Map<string, Map<number, Seen>>();
  const reported = new Set<string>();
  const observe = (user: string, seq: number, mid: string, src: string) => {
    let m = seen.get(user);
    if (!m) seen.set(user, (m = new Map()));
    const was = m.get(seq);
    if (!was) m.set(seq, { mid, src });
    else if (was.mid !== mid) {
      const key = `${user}\u0000${seq}\u0000${[was.mid, mid].sort().join()}`;
      if (!reported.has(key)) v.push(`fork: ${user} seq ${seq}: ${was.src} says mid ${was.mid}, ${src} says mid ${mid}`);
      reported.add(key);
    }
  };
  for (const r of good) for (const e of r.entries) observe(r.user, e.seq, e.mid, `read via ${r.reader}`);
  for (const p of pushes) observe(p.user, p.seq, p.mid, `push on conn ${p.conn} at ${p.at}`);
  for (const s of sends) if (isSent(s.result)) observe(s.user, s.result.seq, s.result.mid, `sent reply to ${label(s)}`);
  for (const [user, m] of seen) {
    for (const r of readsOf.get(user) ?? []) {
      const n = r.entries.length;
      const beyond = [...m.entries()].filter(([seq]) => seq > n).sort((a, b) => a[0] - b[0]);
      if (beyond.length > 0) {
        const [seq, s] = beyond[0]!;
        v.push(`fork: ${user} via ${r.reader} ends at seq ${n}, but ${s.src} saw mid ${s.mid} at seq ${seq} (${beyond.length} seqs past the end)`);
      }
    }
  }
  return v;
}

export type Figures = {
  /** Distinct cids sent, attempts in all, cids confirmed. */
  sends: number;
  attempts: number;
  confirmed: number;
  /** Failed attempts per error code, plus `dropped` and `timeout`. */
  failed: Record<string, number>;
  /** Per user, the longest stretch (ms) from a failing first attempt to the user's next confirmation. */
  unavailableMs: Record<string, number>;
  /** Users whose last failing first attempt was never followed by a confirmation. */
  unrecovered: string[];
  /** The longest time (ms) with no confirmation at all, cluster-wide, and when it began. */
  longestGapMs: number;
  longestGapFrom: number;
  pushes: number;
  reads: number;
};

/** Summary figures of a history (see Figures). */
export function figures(h: History | Op[]): Figures {
  const all = ops(h);
  const sends = all.filter((o): o is SendOp => o.op === 'send');
  const failed: Record<string, number> = {};
  for (const s of sends) {
    const r = s.result;
    const k = 'error' in r ? r.error : 'dropped' in r ? 'dropped' : 'timeout' in r ? 'timeout' : undefined;
    if (k) failed[k] = (failed[k] ?? 0) + 1;
  }
  const unavailableMs: Record<string, number> = {};
  const unrecovered: string[] = [];
  for (const [user, ss] of by(sends, (s) => s.user)) {
    const firsts = [...by(ss, (s) => s.cid).values()].map((a) => a.reduce((x, y) => (y.start < x.start ? y : x)));
    const oks = ss.filter((s) => isSent(s.result));
    let longest = 0;
    let stuck = false;
    for (const f of firsts.filter((f) => !isSent(f.result))) {
      // the next confirmation of a send started once the failure was known
      const next = oks.filter((o) => o.start >= f.end).reduce((m, o) => Math.min(m, o.end), Infinity);
      if (next === Infinity) stuck = true;
      else longest = Math.max(longest, next - f.start);
    }
    unavailableMs[user] = longest;
    if (stuck) unrecovered.push(user);
  }
  const ends = sends.filter((s) => isSent(s.result)).map((s) => s.end).sort((a, b) => a - b);
  const t0 = Math.min(...sends.map((s) => s.start));
  const t1 = Math.max(...sends.map((s) => s.end));
  let longestGapMs = 0;
  let longestGapFrom = t0;
  const marks = [t0, ...ends, t1];
  for (let i = 1; i < marks.length; i++) {
    if (marks[i]! - marks[i - 1]! > longestGapMs) {
      longestGapMs = marks[i]! - marks[i - 1]!;
      longestGapFrom = marks[i - 1]!;
    }
  }
  return {
    sends: new Set(sends.map((s) => `${s.user}\u0000${s.cid}`)).size,
    attempts: sends.length,
    confirmed: new Set(sends.filter((s) => isSent(s.result)).map((s) => `${s.user}\u0000${s.cid}`)).size,
    failed,
    unavailableMs,
    unrecovered,
    longestGapMs: sends.length ? longestGapMs : 0,
    longestGapFrom: sends.length ? longestGapFrom : 0,
    pushes: all.filter((o) => o.op === 'push').length,
    reads: all.filter((o) => o.op === 'read').length,
  };
}
