// Pages of users' data between nodes (handoff, absorb, replication): packing the copies of one
// message, validating a page from a peer, and sizing batches so that a request fits a peer frame.
import { arr, bad, conv, EVENT_BODY_MAX, id, key, MAX_ITEMS, nat, obj, str, validateDelivery } from './peer-fields.ts';
import type { Page, PageEntry, PageSnapshot, WirePage } from './peer.ts';

/** JSON characters one batch, page or request between nodes may take: a quarter of the peer
 * frame limit (4 MiB), so that escaping and multi-byte text still fit. */
export const PEER_BUDGET_CHARS = 1 << 20;
/** Splits `items` into runs in order whose estimated JSON characters (`chars` each) stay within
 * `budget`, at most `maxItems` and at least one item per run: a request listing them then fits
 * a peer frame and its validation (MAX_ITEMS per array). */
export function chunkByChars<T>(items: T[], chars: (t: T) => number, budget: number = PEER_BUDGET_CHARS, maxItems = 10_000): T[][] {
  const out: T[][] = [];
  let run: T[] = [];
  let n = 0;
  for (const it of items) {
    const c = chars(it);
    if (run.length > 0 && (n + c > budget || run.length >= maxItems)) {
      out.push(run);
      run = [];
      n = 0;
    }
    run.push(it);
    n += c;
  }
  if (run.length > 0) out.push(run);
  return out;
}
/** Estimated JSON characters of a timeline entry (or a message) with this body. */
export const entryWireChars = (body: string): number => 256 + 2 * Buffer.byteLength(body);
/** A group log's membership event lists up to GROUP_EVENT_MEMBERS ids: its body may exceed the
 * message body limit. */
export const GROUP_EVENT_MEMBERS = 2000;

/** Packs the copies of each message that has more than one in the page. */
export function packPage(page: Page): WirePage {
  const byMid = new Map<string, PageEntry[]>();
  for (const e of page.entries) {
    const l = byMid.get(e.mid);
    if (l) l.push(e);
    else byMid.set(e.mid, [e]);
  }
  const entries: PageEntry[] = [];
  const copies: NonNullable<WirePage['copies']> = [];
  for (const l of byMid.values()) {
    if (l.length === 1) {
      entries.push(l[0]!);
      continue;
    }
    const { user: _u, seq: _s, dkey: _d, ocum: _o, ...msg } = l[0]!;
    copies.push({ msg, rows: l.map((e) => [e.user, e.seq, e.dkey, e.ocum]) });
  }
  return copies.length ? { users: page.users, entries, copies } : page;
}

/** Validates an export page from a peer (a handoff reply or an absorb request); throws PeerFrameError. */
export function validatePage(v: unknown, maxBody: number): Page {
  const o = obj(v, 'page');
  const users = arr(o.users, 'page.users').map((x): PageSnapshot => {
    const u = obj(x, 'snapshot');
    const snap: PageSnapshot = {
      user: key(u.user, 'snapshot.user'), seq: nat(u.seq, 'snapshot.seq'),
      convs: arr(u.convs, 'snapshot.convs').map((y) => {
        const cv = obj(y, 'conv state');
        return { conv: conv(cv.conv), lastSeq: nat(cv.lastSeq, 'lastSeq'), ocum: nat(cv.ocum, 'ocum'), readSeq: nat(cv.readSeq, 'readSeq'), readCum: nat(cv.readCum, 'readCum') };
      }),
      cursors: arr(u.cursors, 'snapshot.cursors').map((y) => {
        const cu = obj(y, 'cursor');
        return { device: id(cu.device, 'device'), acked: nat(cu.acked, 'acked') };
      }),
    };
    if (u.lastSeen !== undefined) snap.lastSeen = nat(u.lastSeen, 'lastSeen');
    if (u.outbox !== undefined) {
      snap.outbox = arr(u.outbox, 'snapshot.outbox').map((y) => {
        const o = obj(y, 'outbox row');
        const item = validateDelivery(o.item, maxBody, true);
        const row = { mid: str(o.mid, 'mid', 64), dest: key(o.dest, 'dest'), item };
        if (item.mid !== row.mid || item.user !== row.dest || (item.from !== snap.user && `s:${item.from}` !== snap.user)) bad('an outbox row is a copy of the user\'s message for dest');
        return row;
      });
    }
    if (u.cleared !== undefined) {
      snap.cleared = arr(u.cleared, 'snapshot.cleared').map((y) => {
        const o = obj(y, 'cleared row');
        return { mid: str(o.mid, 'mid', 64), dest: key(o.dest, 'dest') };
      });
    }
    if (u.next !== undefined) snap.next = nat(u.next, 'next');
    return snap;
  });
  const entry = (x: unknown): PageEntry => {
    const e = obj(x, 'entry');
    const dkey = str(e.dkey, 'dkey', 140);
    if (!/^[cmes]:/.test(dkey)) bad('dkey must start with c:, m:, e: or s:');
    return { ...validateDelivery(e, /^[es]:/.test(dkey) ? EVENT_BODY_MAX : maxBody, true), seq: nat(e.seq, 'seq'), dkey, ocum: nat(e.ocum, 'ocum') };
  };
  const entries = arr(o.entries, 'page.entries').map(entry);
  if (o.copies !== undefined) {
    let n = entries.length;
    for (const x of arr(o.copies, 'page.copies')) {
      const c = obj(x, 'copies');
      const rows = arr(c.rows, 'copies.rows');
      if ((n += rows.length) > MAX_ITEMS) bad('page has too many entries');
      const m = obj(c.msg, 'copies.msg');
      for (const r of rows) {
        const row = arr(r, 'copy');
        entries.push(entry({ ...m, user: row[0], seq: row[1], dkey: row[2], ocum: row[3] }));
      }
    }
  }
  return { users, entries };
}
