// Sending, pushing, dedup, order, sync, history, ack and replay against one real node process.
import test from 'ava';
import { cleanup, startNode, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import type { MsgEvent } from '../../src/protocol/frames.ts';

let node: TestNode;
test.before(async () => {
  // Up to 300 requests in flight on one connection (the default allows 64).
  node = await startNode({ args: ['--max-in-flight', '1000'] });
});
test.after.always(cleanup);

test('a message reaches the recipient and the sender, with sent after both are stored', async (t) => {
  const { c: alice } = await node.login('alice1');
  const { c: bob } = await node.login('bob1');
  const got = bob.waitFor<MsgEvent>((f) => f.op === 'msg');
  const echo = alice.waitFor<MsgEvent>((f) => f.op === 'msg');
  const sent = await alice.send('bob1', 'c1', 'hi bob');
  t.is(sent.op, 'sent');
  t.is(sent.seq, 1);
  t.falsy(sent.dup);
  const m = await got;
  t.like(m, { op: 'msg', seq: 1, mid: sent.mid, conv: 'dm:alice1:bob1', from: 'alice1', to: 'bob1', body: 'hi bob', ts: sent.ts });
  t.like(await echo, { seq: 1, mid: sent.mid });
  const s = await bob.sync(0);
  t.is(s.msgs.length, 1);
  t.like(s.msgs[0], { mid: sent.mid, seq: 1 });
});

test('re-sending a cid from another device gets the same mid and seq with dup, stored once', async (t) => {
  const { c: a1 } = await node.login('alice2', 'phone');
  const { c: a2 } = await node.login('alice2', 'laptop');
  const { c: bob } = await node.login('bob2');
  const first = await a1.send('bob2', 'same-cid', 'once');
  const again = await a2.send('bob2', 'same-cid', 'once');
  t.is(again.dup, true);
  t.is(again.mid, first.mid);
  t.is(again.seq, first.seq);
  t.is(again.ts, first.ts);
  // both in flight at once, before either is durable
  const [x, y] = await Promise.all([a1.send('bob2', 'race-cid', 'r'), a2.send('bob2', 'race-cid', 'r')]);
  t.is(x.mid, y.mid);
  t.true(x.dup === true || y.dup === true);
  const s = await bob.sync(0);
  t.deepEqual(s.msgs.map((m) => m.body), ['once', 'r']);
  t.deepEqual(s.msgs.map((m) => m.seq), [1, 2]);
});

test('sending to oneself makes one entry', async (t) => {
  const { c } = await node.login('solo');
  const sent = await c.send('solo', 'me1', 'note to self');
  const s = await c.sync(0);
  t.is(s.msgs.length, 1);
  t.like(s.msgs[0], { seq: sent.seq, conv: 'dm:solo:solo', from: 'solo', to: 'solo' });
  t.is((await c.unread()).total, 0);
});

test('order per connection holds with 300 sends in flight, seqs 1..n without gaps', async (t) => {
  const { c: a } = await node.login('fast-a');
  const { c: b } = await node.login('fast-b');
  const n = 300;
  const sends = [];
  for (let i = 0; i < n; i++) sends.push(a.send('fast-b', `o${i}`, String(i)));
  const sent = await Promise.all(sends);
  t.deepEqual(sent.map((s) => s.seq), Array.from({ length: n }, (_, i) => i + 1));
  const all = [];
  for (let after = 0; ;) {
    const page = await b.sync(after, 1000);
    all.push(...page.msgs);
    if (!page.more) break;
    after = page.msgs.at(-1)!.seq;
  }
  t.deepEqual(all.map((m) => m.body), Array.from({ length: n }, (_, i) => String(i)));
  t.deepEqual(all.map((m) => m.seq), Array.from({ length: n }, (_, i) => i + 1));
  const mids = all.map((m) => m.mid);
  t.deepEqual([...mids].sort(), mids, 'mids sort by creation time');
});

test('login replays from the acked cursor, then live, with no gap and no repeat', async (t) => {
  const { c: a } = await node.login('rp-a');
  for (let i = 1; i <= 5; i++) await a.send('rp-b', `p${i}`, `m${i}`);
  const { c: b1, welcome: w1 } = await node.login('rp-b', 'phone');
  t.is(w1.seq, 5);
  t.is(w1.acked, 0);
  await b1.ack(3);
  b1.close();
  // the second login of 'phone' replays 4..5, while a keeps sending concurrently
  const more = Array.from({ length: 40 }, (_, i) => a.send('rp-b', `q${i}`, `n${i}`));
  const b2 = await node.client();
  const seen: number[] = [];
  b2.on('msg', (m) => seen.push(m.seq));
  const w2 = await b2.login({ token: await token('rp-b'), device: 'phone' });
  t.is(w2.acked, 3);
  await Promise.all(more);
  await until(() => seen.length >= 42, 'all 42 entries after the cursor');
  t.deepEqual(seen, Array.from({ length: 42 }, (_, i) => i + 4));
});

test('since overrides the cursor; welcome then msgs in seq order', async (t) => {
  const { c: a } = await node.login('since-a');
  for (let i = 1; i <= 4; i++) await a.send('since-b', `s${i}`, `m${i}`);
  const c = await node.client();
  const frames: string[] = [];
  c.on('frame', (f) => frames.push(f.op === 'msg' ? `msg${f.seq}` : f.op));
  await c.login({ token: await token('since-b'), since: 2 });
  await until(() => frames.length >= 3, 'replay');
  t.deepEqual(frames, ['welcome', 'msg3', 'msg4']);
});

test('sync pages with more; history walks one conversation backwards', async (t) => {
  const { c: a } = await node.login('h-a');
  const { c: b } = await node.login('h-b');
  for (let i = 1; i <= 6; i++) await a.send('h-b', `h${i}`, `ab${i}`);
  for (let i = 1; i <= 3; i++) await b.send('h-c', `x${i}`, `bc${i}`);
  const p1 = await b.sync(0, 4);
  t.is(p1.msgs.length, 4);
  t.true(p1.more);
  const p2 = await b.sync(4, 100);
  t.is(p2.msgs.length, 5);
  t.false(p2.more);
  const h1 = await b.history('dm:h-a:h-b', undefined, 4);
  t.deepEqual(h1.msgs.map((m) => m.body), ['ab6', 'ab5', 'ab4', 'ab3']);
  t.true(h1.more);
  const h2 = await b.history('dm:h-a:h-b', h1.msgs.at(-1)!.seq, 4);
  t.deepEqual(h2.msgs.map((m) => m.body), ['ab2', 'ab1']);
  t.false(h2.more);
  const h3 = await b.history('dm:h-b:h-c');
  t.deepEqual(h3.msgs.map((m) => m.body), ['bc3', 'bc2', 'bc1']);
  const e = await t.throwsAsync(b.history('dm:h-a:h-c'));
  t.regex(e!.message, /^forbidden/);
});

test('read and unread: per conversation, total is the sum, own messages never unread, read event to other devices', async (t) => {
  const { c: a } = await node.login('u-a');
  const { c: c3 } = await node.login('u-c');
  const { c: b1 } = await node.login('u-b', 'phone');
  const { c: b2 } = await node.login('u-b', 'laptop');
  for (let i = 0; i < 3; i++) await a.send('u-b', `ua${i}`, 'x');
  await b1.send('u-a', 'ub0', 'reply');
  for (let i = 0; i < 2; i++) await c3.send('u-b', `uc${i}`, 'y');
  let u = await b1.unread();
  t.deepEqual(u.convs, { 'dm:u-a:u-b': 3, 'dm:u-b:u-c': 2 });
  t.is(u.total, 5);
  // b's timeline: 1..3 from a, 4 own, 5..6 from c. Read a's conversation up to seq 2.
  const ev = b2.waitFor((f) => f.op === 'read');
  await b1.read('dm:u-a:u-b', 2);
  t.deepEqual(await ev, { op: 'read', conv: 'dm:u-a:u-b', seq: 2 });
  u = await b1.unread();
  t.deepEqual(u.convs, { 'dm:u-a:u-b': 1, 'dm:u-b:u-c': 2 });
  t.is(u.total, 3);
  await b1.read('dm:u-a:u-b', 1); // never backwards
  t.is((await b1.unread()).convs['dm:u-a:u-b'], 1);
  await b2.read('dm:u-a:u-b', 4); // past the last of a's messages and b's own
  await b2.read('dm:u-b:u-c', 1000);
  u = await b1.unread();
  t.deepEqual(u, { op: 'unread', id: u.id, total: 0, convs: {} });
  await a.send('u-b', 'ua-late', 'late');
  u = await b1.unread();
  t.deepEqual(u.convs, { 'dm:u-a:u-b': 1 });
  t.is(u.total, 1);
});
