// The invariant checker shared by the churn and handoff tests and bench/churn.ts, on synthetic
// timelines: a clean run passes, and each injected fault is named, with its send and side.
import test from 'ava';
import { findViolations } from '../helpers/invariants.ts';
import type { Confirmed } from '../helpers/invariants.ts';
import type { Entry } from '../../src/protocol/frames.ts';

/**
 * A model cluster: each send is minted once into the sender's and every recipient's timeline
 * (one mid, the cid as the body) and confirmed with the sender's seq. b sends to a once, then a
 * to b four times on connection 1; a, b and c share group g, where a and c post.
 */
function clean() {
  const timelines = new Map<string, Entry[]>([['a', []], ['b', []], ['c', []]]);
  const confirmed: Confirmed[] = [];
  const groups = new Map([['g:g', ['a', 'b', 'c']]]);
  let n = 0;
  const send = (from: string, to: string, cid: string, conn: number) => {
    const mid = `m${++n}`;
    let seq = 0;
    for (const u of new Set([from, ...(groups.get(to) ?? [to])])) {
      const tl = timelines.get(u)!;
      const e: Entry = { seq: tl.length + 1, mid, conv: to.startsWith('g:') ? to : [from, to].sort().join(':'), from, body: cid, ts: n };
      tl.push(e);
      if (u === from) seq = e.seq;
    }
    confirmed.push({ from, to, mid, seq, cid, conn });
  };
  send('b', 'a', 'b-0', 1);
  for (let i = 0; i < 4; i++) send('a', 'b', `a-${i}`, 1);
  send('a', 'g:g', 'a-4', 1);
  send('c', 'g:g', 'c-0', 1);
  return { timelines, confirmed, groups };
}

/** Renumbers a timeline's seqs 1..n after an edit (so that only the injected fault shows). */
const renumber = (tl: Entry[]) => tl.forEach((e, i) => (e.seq = i + 1));

test('a clean run holds every invariant', (t) => {
  const { timelines, confirmed, groups } = clean();
  t.deepEqual(findViolations(timelines, confirmed, { groups }), []);
});

test('a confirmed send missing from the recipient is lost there, with its send', (t) => {
  const { timelines, confirmed, groups } = clean();
  const b = timelines.get('b')!;
  b.splice(b.findIndex((e) => e.body === 'a-2'), 1);
  renumber(b);
  const v = findViolations(timelines, confirmed, { groups });
  t.is(v.length, 1);
  t.like(v[0], { kind: 'lost', user: 'b', role: 'recipient', send: { cid: 'a-2' } });
});

test('a group message missing from one member is lost there, and that member sees another order', (t) => {
  const { timelines, confirmed, groups } = clean();
  const b = timelines.get('b')!;
  b.splice(b.findIndex((e) => e.body === 'a-4'), 1);
  renumber(b);
  const v = findViolations(timelines, confirmed, { groups });
  t.deepEqual(v.map((x) => [x.kind, x.user, x.role, x.send?.cid]), [['lost', 'b', 'recipient', 'a-4'], ['group_order', 'b', undefined, undefined]]);
});

test('a seq other than the confirmed one at the sender, and another mid at the recipient, are mismatches', (t) => {
  const { timelines, confirmed, groups } = clean();
  confirmed[2]!.seq = 9; // a-1
  timelines.get('b')!.find((e) => e.body === 'a-3')!.mid = 'm-other';
  const v = findViolations(timelines, confirmed, { groups });
  t.deepEqual(v.map((x) => [x.kind, x.user, x.role, x.send?.cid]), [['mismatch', 'a', 'sender', 'a-1'], ['mismatch', 'b', 'recipient', 'a-3']]);
});

test('a resend stored again is a duplicate in both timelines; a gap and a repeated mid are named', (t) => {
  const { timelines, confirmed, groups } = clean();
  for (const u of ['a', 'b']) {
    const tl = timelines.get(u)!;
    tl.push({ ...tl.find((e) => e.body === 'a-0')!, mid: 'm-again', seq: tl.length + 1 });
  }
  let v = findViolations(timelines, confirmed, { groups });
  t.deepEqual(v.map((x) => [x.kind, x.user, x.count]).sort(), [['duplicate', 'a', 1], ['duplicate', 'b', 1]]);
  // An unconfirmed send stored twice counts too.
  const c = timelines.get('c')!;
  c.push({ seq: c.length + 1, mid: 'u1', conv: 'c:x', from: 'c', body: 'c-9', ts: 0 }, { seq: c.length + 2, mid: 'u2', conv: 'c:x', from: 'c', body: 'c-9', ts: 0 });
  v = findViolations(timelines, confirmed, { groups });
  t.true(v.some((x) => x.kind === 'duplicate' && x.user === 'c' && x.send === undefined));
  const b = timelines.get('b')!;
  b[1]!.seq = 7;
  b[2]!.mid = b[0]!.mid;
  v = findViolations(timelines, confirmed, { groups });
  t.true(v.some((x) => x.kind === 'gaps' && x.user === 'b'));
  t.true(v.some((x) => x.kind === 'mid_twice' && x.user === 'b' && x.count === 1));
});

test('sends of one connection out of order at the recipient are reordered; of two connections they are not', (t) => {
  const { timelines, confirmed, groups } = clean();
  const b = timelines.get('b')!;
  const i = b.findIndex((e) => e.body === 'a-1');
  [b[i], b[i + 1]] = [b[i + 1]!, b[i]!];
  renumber(b);
  // The seqs the recipient shows are not what is checked, only its order against the send order.
  const v = findViolations(timelines, confirmed, { groups });
  t.deepEqual(v.map((x) => [x.kind, x.user, x.send?.cid]), [['reordered', 'b', 'a-1']]);
  confirmed.find((m) => m.cid === 'a-2')!.conn = 2;
  t.deepEqual(findViolations(timelines, confirmed, { groups }), []);
  // idx, when given, is the order, not the place in the list.
  confirmed.find((m) => m.cid === 'a-2')!.conn = 1;
  for (const m of confirmed) m.idx = m.cid === 'a-1' ? 2.5 : Number(m.cid.slice(2));
  t.deepEqual(findViolations(timelines, confirmed, { groups }), []);
});

test('members seeing a group in two orders is named', (t) => {
  const { timelines, confirmed, groups } = clean();
  // The two group messages swapped at b, which sent neither (from two senders: only the group order breaks).
  const b = timelines.get('b')!;
  [b[5], b[6]] = [b[6]!, b[5]!];
  renumber(b);
  const v = findViolations(timelines, confirmed, { groups });
  t.deepEqual(v.map((x) => [x.kind, x.user]), [['group_order', 'b']]);
});

test('cidOf tells which entries are sends, and their cids', (t) => {
  const { timelines, confirmed, groups } = clean();
  for (const tl of timelines.values()) for (const e of tl) e.body = `${e.body.split('-')[1]} padding`;
  const cidOf = (e: Entry) => `${e.from}-${e.body.slice(0, e.body.indexOf(' '))}`;
  t.deepEqual(findViolations(timelines, confirmed, { groups, cidOf }), []);
  // A recipient's copy under another mid is found (a mismatch) only when cidOf can name its cid;
  // by the default, the body as the cid, it is not found at all (lost).
  timelines.get('b')!.find((e) => e.mid === confirmed[0]!.mid)!.mid = 'm-other';
  t.like(findViolations(timelines, confirmed, { groups, cidOf })[0], { kind: 'mismatch', user: 'b' });
  t.like(findViolations(timelines, confirmed, { groups })[0], { kind: 'lost', user: 'b' });
});

test('each repeated mid is its own violation, with its copies; a gap names its first entry out of place', (t) => {
  const { timelines, confirmed, groups } = clean();
  const c = timelines.get('c')!;
  c.push({ ...c[0]!, seq: c.length + 1 }, { ...c[1]!, seq: c.length + 2 }, { ...c[1]!, seq: c.length + 3 });
  let v = findViolations(timelines, confirmed, { groups }).filter((x) => x.kind === 'mid_twice');
  t.deepEqual(v.map((x) => [x.user, x.count, x.entries!.map((e) => e.seq)]), [['c', 1, [1, 3]], ['c', 2, [2, 4, 5]]]);
  t.is(v[0]!.entries![0], c[0], 'the entries are the timeline\'s own');
  const b = timelines.get('b')!;
  b.splice(2, 1);
  v = findViolations(timelines, confirmed, { groups }).filter((x) => x.kind === 'gaps');
  t.deepEqual(v.map((x) => [x.user, x.entries]), [['b', [b[2]]]]);
  t.regex(v[0]!.text, /seq 4 at position 3, after seq 2/);
});

test('a mid stored twice at the sender is a mismatch whichever copy comes first', (t) => {
  for (const first of [false, true]) {
    const { timelines, confirmed, groups } = clean();
    const a = timelines.get('a')!;
    const m = confirmed.find((x) => x.cid === 'a-1')!;
    // The extra copy first (seq 0, before the one at the confirmed seq) or last.
    const copy = { ...a.find((e) => e.mid === m.mid)!, seq: first ? 0 : a.length + 1 };
    if (first) a.unshift(copy);
    else a.push(copy);
    const v = findViolations(timelines, confirmed, { groups }).filter((x) => x.kind === 'mismatch');
    t.deepEqual(v.map((x) => [x.user, x.role, x.send, x.entries]), [['a', 'sender', m, [copy]]], first ? 'copy first' : 'copy last');
  }
});

test('a mismatch under another mid carries the entry found; a duplicate carries its copies', (t) => {
  const { timelines, confirmed, groups } = clean();
  const b = timelines.get('b')!;
  const other = b.find((e) => e.body === 'a-3')!;
  other.mid = 'm-other';
  b.push({ ...b.find((e) => e.body === 'a-0')!, mid: 'm-again', seq: b.length + 1 });
  const v = findViolations(timelines, confirmed, { groups });
  t.deepEqual(v.find((x) => x.kind === 'mismatch')!.entries, [other]);
  t.deepEqual(v.find((x) => x.kind === 'duplicate')!.entries!.map((e) => e.mid), [confirmed.find((x) => x.cid === 'a-0')!.mid, 'm-again']);
});
