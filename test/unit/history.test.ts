// The history checker on synthetic histories: a clean one passes, and each injected fault (a lost
// confirmed message, a duplicate, a reorder, a fork, a gap) is named.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, figures, History } from '../helpers/history.ts';
import type { Op, PushOp, ReadEntry, ReadOp, SendOp } from '../helpers/history.ts';

const R1 = 'ws://127.0.0.1:1/ws';
const R2 = 'ws://127.0.0.1:2/ws';

/**
 * A small correct run: a model server mints each message into the sender's and the recipient's
 * timelines, pushes it to both, answers `sent`; then each timeline is read through two nodes.
 * a's connection a1 sends to b three times one after the other, then two sends in flight at once
 * (answered in the opposite order: allowed, they were not in real-time order); b sends to a after
 * a failed first attempt (unavailable) and a resend; c sends to a and b, one resend answered dup.
 */
function clean(): History {
  const h = new History();
  const tl = new Map<string, ReadEntry[]>();
  let n = 0;
  const mint = (user: string, to: string, cid: string, at: number): { mid: string; seq: number } => {
    const mid = `m${String(++n).padStart(3, '0')}`;
    const conv = `dm:${[user, to].sort().join(':')}`;
    let seq = 0;
    for (const u of user === to ? [user] : [user, to]) {
      const l = tl.get(u) ?? [];
      tl.set(u, l);
      const e = { seq: l.length + 1, mid, from: user, conv, body: cid };
      l.push(e);
      if (u === user) seq = e.seq;
      h.push({ user: u, conn: `${u}1`, at: at + 1, seq: e.seq, mid, conv, from: user, body: cid });
    }
    return { mid, seq };
  };
  const send = (user: string, to: string, cid: string, start: number, end: number, conn = `${user}1`) => {
    const r = mint(user, to, cid, start);
    h.send({ user, conn, node: R1, to, cid, start, end, result: { ...r, ts: start } });
    return r;
  };
  send('a', 'b', 'a-0', 100, 110);
  send('a', 'b', 'a-1', 120, 130);
  send('a', 'b', 'a-2', 140, 150);
  // in flight together: a-4 minted first, a-3's reply comes later
  const a4 = mint('a', 'b', 'a-4', 165);
  const a3 = mint('a', 'b', 'a-3', 166);
  h.send({ user: 'a', conn: 'a1', node: R1, to: 'b', cid: 'a-3', start: 160, end: 180, result: { ...a3, ts: 166 } });
  h.send({ user: 'a', conn: 'a1', node: R1, to: 'b', cid: 'a-4', start: 161, end: 170, result: { ...a4, ts: 165 } });
  h.send({ user: 'b', conn: 'b1', node: R2, to: 'a', cid: 'b-0', start: 200, end: 260, result: { error: 'unavailable' } });
  send('b', 'a', 'b-0', 300, 310);
  const c0 = send('c', 'a', 'c-0', 320, 330);
  h.send({ user: 'c', conn: 'c2', node: R2, to: 'a', cid: 'c-0', start: 340, end: 345, result: { ...c0, ts: 320, dup: true } });
  h.send({ user: 'c', conn: 'c2', node: R2, to: 'b', cid: 'c-1', start: 350, end: 360, result: { dropped: true } });
  send('c', 'b', 'c-1', 400, 420, 'c3');
  for (const [user, entries] of tl) for (const reader of [R1, R2]) h.read({ user, reader, at: 1000, entries: entries.map((e) => ({ ...e })) });
  return h;
}

const reads = (h: History, user: string): ReadOp[] => h.ops.filter((o): o is ReadOp => o.op === 'read' && o.user === user);
const sendOf = (h: History, cid: string): SendOp => h.ops.find((o): o is SendOp => o.op === 'send' && o.cid === cid && 'mid' in o.result)!;
const midOf = (h: History, cid: string): string => (sendOf(h, cid).result as { mid: string }).mid;
/** Takes the message out of the user's reads (every reader) and renumbers what follows. */
function remove(h: History, user: string, mid: string): void {
  for (const r of reads(h, user)) r.entries = r.entries.filter((e) => e.mid !== mid).map((e, i) => ({ ...e, seq: i + 1 }));
}
const has = (v: string[], ...parts: string[]) => v.some((x) => parts.every((p) => x.includes(p)));

test('a clean history passes (pipelined sends answered out of order, resends, a dup reply)', (t) => {
  const h = clean();
  t.deepEqual(check(h), []);
});

test('a confirmed message missing from the recipient is lost', (t) => {
  const h = clean();
  remove(h, 'b', midOf(h, 'a-1'));
  const v = check(h);
  t.true(has(v, 'lost:', 'a/a-1', 'missing from the recipient b', R1), v.join('\n'));
  t.true(has(v, 'lost:', 'a/a-1', 'missing from the recipient b', R2));
  t.false(has(v, 'missing from the sender'));
});

test('a confirmed message missing from the sender is lost', (t) => {
  const h = clean();
  remove(h, 'a', midOf(h, 'b-0'));
  remove(h, 'c', midOf(h, 'c-1')); // c is c-1's sender
  const v = check(h);
  t.true(has(v, 'lost:', 'c/c-1', 'missing from the sender c'), v.join('\n'));
  t.true(has(v, 'lost:', 'b/b-0', 'missing from the recipient a'));
});

test('a confirmed message at another seq of the sender than sent said is named', (t) => {
  const h = clean();
  const s = sendOf(h, 'a-0');
  (s.result as { seq: number }).seq = 2;
  const v = check(h);
  t.true(has(v, 'lost:', 'a/a-0', 'at seq 1 of the sender', 'sent said 2'), v.join('\n'));
});

test('a resend minted a second time is a duplicate, confirmed or not', (t) => {
  const h = clean();
  // c-1's dropped attempt was minted after all (never confirmed), and the resend minted again
  for (const u of ['c', 'b']) {
    for (const r of reads(h, u)) r.entries.push({ seq: r.entries.length + 1, mid: 'm900', from: 'c', conv: 'dm:b:c', body: 'c-1' });
  }
  const v = check(h);
  t.true(has(v, 'duplicate:', 'c via', 'c/c-1 minted twice', 'm900'), v.join('\n'));
  t.true(has(v, 'duplicate:', 'b via', 'c/c-1 minted twice'));
});

test('a cid confirmed as two messages is a duplicate', (t) => {
  const h = clean();
  h.send({ user: 'c', conn: 'c3', node: R1, to: 'a', cid: 'c-0', start: 500, end: 510, result: { mid: 'm901', seq: 9, ts: 500 } });
  const v = check(h);
  t.true(has(v, 'duplicate:', 'c/c-0', 'm901'), v.join('\n'));
});

test('one mid at two seqs is a duplicate', (t) => {
  const h = clean();
  const mid = midOf(h, 'a-0');
  for (const r of reads(h, 'b')) r.entries.push({ ...r.entries.find((e) => e.mid === mid)!, seq: r.entries.length + 1 });
  const v = check(h);
  t.true(has(v, 'duplicate:', `mid ${mid} at seqs 1, `), v.join('\n'));
});

test('two sends of one connection in real-time order reversed at the recipient are a reorder', (t) => {
  const h = clean();
  const [m1, m2] = [midOf(h, 'a-1'), midOf(h, 'a-2')];
  const r = reads(h, 'b')[1]!;
  const i = r.entries.findIndex((e) => e.mid === m1);
  const j = r.entries.findIndex((e) => e.mid === m2);
  [r.entries[i], r.entries[j]] = [{ ...r.entries[j]!, seq: i + 1 }, { ...r.entries[i]!, seq: j + 1 }];
  const v = check(h);
  t.true(has(v, 'reorder:', 'recipient b via ' + R2, 'a/a-1', 'a/a-2'), v.join('\n'));
  t.false(has(v, 'reorder:', 'via ' + R1));
});

test('pipelined: two first tries of one connection in flight together, minted out of order, are a reorder', (t) => {
  const h = clean();
  const v = check(h, { pipelined: true });
  t.true(has(v, 'reorder:', 'sender a via', 'a/a-3', 'sent (first try) before', 'a/a-4', 'at seq 5 after 4'), v.join('\n'));
  t.true(has(v, 'reorder:', 'recipient b via', 'a/a-3', 'a/a-4'));
  t.is(v.length, 4); // sender and recipient, each through two readers
});

test('pipelined: a send that is a resend is not held to the order of its first try', (t) => {
  const h = clean();
  h.send({ user: 'a', conn: 'a0', node: R1, to: 'b', cid: 'a-3', start: 145, end: 146, result: { dropped: true } });
  t.deepEqual(check(h, { pipelined: true }), []);
});

test('an older cid resent after newer ones were answered keeps its place: not a reorder', (t) => {
  const h = clean();
  // a-0 (seq 1) is tried again on the same connection after a-1 and a-2 were answered: the home
  // answers dup with its first seq.
  const a0 = sendOf(h, 'a-0').result as { mid: string; seq: number; ts: number };
  h.send({ user: 'a', conn: 'a1', node: R1, to: 'b', cid: 'a-0', start: 500, end: 510, result: { ...a0, dup: true } });
  t.deepEqual(check(h), []);
});

test('reversed at the sender is a reorder too', (t) => {
  const h = clean();
  for (const cid of ['a-0', 'a-2']) {
    const s = sendOf(h, cid);
    (s.result as { seq: number }).seq = cid === 'a-0' ? 3 : 1;
  }
  for (const r of reads(h, 'a')) {
    const [x, y] = [r.entries[0]!, r.entries[2]!];
    r.entries[0] = { ...y, seq: 1 };
    r.entries[2] = { ...x, seq: 3 };
  }
  const v = check(h);
  t.true(has(v, 'reorder:', 'sender a', 'a/a-0', 'a/a-2'), v.join('\n'));
});

test('two readers seeing different mids at one seq are a fork', (t) => {
  const h = clean();
  const r = reads(h, 'b')[1]!;
  r.entries[1] = { ...r.entries[1]!, mid: 'm950' };
  const v = check(h);
  t.true(has(v, 'fork:', 'b seq 2', `read via ${R1}`, `read via ${R2}`, 'm950'), v.join('\n'));
});

test('a push that disagrees with the reads is a fork', (t) => {
  const h = clean();
  const p = h.ops.find((o): o is PushOp => o.op === 'push' && o.user === 'a' && o.seq === 4)!;
  p.mid = 'm951';
  const v = check(h);
  t.true(has(v, 'fork:', 'a seq 4', 'push on conn a1', 'm951'), v.join('\n'));
});

test('a sent reply that disagrees with the reads is a fork', (t) => {
  const h = clean();
  // the reply names a mid no read has at its seq (a timeline that restarted at seq 1 elsewhere)
  h.send({ user: 'b', conn: 'b9', node: R2, to: 'c', cid: 'b-7', start: 600, end: 610, result: { mid: 'm952', seq: 1, ts: 600 } });
  const v = check(h);
  t.true(has(v, 'fork:', 'b seq 1', 'sent reply to b/b-7', 'm952'), v.join('\n'));
});

test('a read that ends before a seq others saw is a fork', (t) => {
  const h = clean();
  const r = reads(h, 'a')[0]!;
  r.entries = r.entries.slice(0, 3);
  const v = check(h);
  t.true(has(v, 'fork:', `a via ${R1} ends at seq 3`), v.join('\n'));
});

test('a read whose seqs skip one has a gap', (t) => {
  const h = clean();
  for (const r of reads(h, 'a')) r.entries.splice(3, 1);
  const v = check(h);
  t.true(has(v, 'gap:', 'a via', 'seq 5 at position 4 (after seq 3)'), v.join('\n'));
});

test('an unreadable timeline and a missing read are violations', (t) => {
  const h = clean();
  h.ops = h.ops.filter((o) => !(o.op === 'read' && o.user === 'c'));
  h.read({ user: 'c', reader: R1, at: 1000, entries: [], error: 'unavailable' });
  const v = check(h);
  t.true(has(v, 'unreadable:', 'c via'), v.join('\n'));
  t.true(has(v, 'lost:', 'c/c-0', 'no read of the sender c'));
});

test('figures: attempts, confirmations, failures, unavailable windows, longest gap', (t) => {
  const f = figures(clean());
  t.is(f.sends, 8);
  t.is(f.attempts, 11);
  t.is(f.confirmed, 8);
  t.deepEqual(f.failed, { unavailable: 1, dropped: 1 });
  // b-0 failed first at 200 and was confirmed (a send started after 260) at 310; c-1 at 350 → 420
  t.is(f.unavailableMs.b, 110);
  t.is(f.unavailableMs.c, 70);
  t.is(f.unavailableMs.a, 0);
  t.deepEqual(f.unrecovered, []);
  t.is(f.longestGapMs, 130); // from a-3's reply at 180 to b-0's at 310
  t.is(f.longestGapFrom, 180);
});

test('dump writes JSON lines that read back as the same history', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'im-history-'));
  try {
    const h = clean();
    await h.dump(join(dir, 'h.jsonl'));
    const text = await readFile(join(dir, 'h.jsonl'), 'utf8');
    t.is(text.split('\n').filter(Boolean).length, h.ops.length);
    t.deepEqual(History.fromJsonLines(text).ops as Op[], h.ops);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a recipient holding the cid under another mid: lost, naming what it has', (t) => {
  const h = clean();
  const mid = midOf(h, 'a-1');
  const r = reads(h, 'b')[0]!;
  const e = r.entries.find((x) => x.mid === mid)!;
  e.mid = 'm960';
  const v = check(h);
  t.true(has(v, 'lost:', 'a/a-1', `missing from the recipient b via ${R1}, which has it as mid m960 at seq ${e.seq}`), v.join('\n'));
  t.false(has(v, 'lost:', `via ${R2}`));
});

test('a mid twice in the sender\'s timeline is also a lost seq, whichever copy comes first', (t) => {
  for (const first of [false, true]) {
    const h = clean();
    const s = sendOf(h, 'a-1');
    const { mid, seq } = s.result as { mid: string; seq: number };
    const r = reads(h, 'a')[0]!;
    const copy = { ...r.entries.find((x) => x.mid === mid)!, seq: first ? 0 : r.entries.length + 1 };
    if (first) r.entries.unshift(copy);
    else r.entries.push(copy);
    const v = check(h);
    t.true(has(v, 'lost:', 'a/a-1', `at seq ${copy.seq} of the sender via ${R1}, sent said ${seq}`), v.join('\n'));
    t.true(has(v, 'duplicate:', `a via ${R1}: mid ${mid} at seqs `));
  }
});

test('one mid at two seqs is named once, not also as a cid minted twice', (t) => {
  const h = clean();
  const mid = midOf(h, 'a-0');
  for (const r of reads(h, 'b')) r.entries.push({ ...r.entries.find((e) => e.mid === mid)!, seq: r.entries.length + 1 });
  const v = check(h);
  t.is(v.filter((x) => x.startsWith('duplicate:')).length, 2, v.join('\n')); // one per reader
  t.false(has(v, 'minted twice'));
});
