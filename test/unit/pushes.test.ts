// Pushes to other gateways: msg frames of one tick grouped by mid per peer, each connection's
// frames in their order.
import test from 'ava';
import { createPushes } from '../../src/home/pushes.ts';
import type { MsgEvent } from '../../src/protocol/frames.ts';
import type { PeerOneWay } from '../../src/protocol/peer.ts';

const msg = (mid: string, seq: number): MsgEvent => ({ op: 'msg', seq, mid, conv: 'g:g', from: 'a', group: 'g', body: `body of ${mid}`, ts: 1 });
const tick = () => new Promise((r) => setImmediate(r));

/** What each connection receives, in order, after unpacking the envelopes. */
function unpack(sent: [string, PeerOneWay][]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (conn: string, what: string) => out.set(conn, [...(out.get(conn) ?? []), what]);
  for (const [, m] of sent) {
    if (m.t === 'push') add(m.conn, m.frame.op === 'msg' ? `${m.frame.mid}@${m.frame.seq}` : m.frame.op);
    if (m.t === 'pushmsg') for (const [conn, seq] of m.to) add(conn, `${m.msg.mid}@${seq}`);
  }
  return out;
}

test('one envelope per message and peer; a single push goes as it is', async (t) => {
  const sent: [string, PeerOneWay][] = [];
  const push = createPushes((peer, m) => sent.push([peer, m]));
  for (let i = 0; i < 100; i++) push('p1', `c${i}`, msg('A', i + 1));
  push('p2', 'c0', msg('A', 7));
  t.is(sent.length, 0, 'msg frames wait for the end of the tick');
  await tick();
  t.is(sent.length, 2);
  const [first, second] = sent;
  t.like(first, ['p1', { t: 'pushmsg', msg: { mid: 'A', body: 'body of A' } }]);
  t.is((first![1] as Extract<PeerOneWay, { t: 'pushmsg' }>).to.length, 100);
  t.deepEqual(second, ['p2', { t: 'push', conn: 'c0', frame: msg('A', 7) }]);
});

test('each connection keeps its order when messages interleave differently per connection', async (t) => {
  const sent: [string, PeerOneWay][] = [];
  const push = createPushes((peer, m) => sent.push([peer, m]));
  push('p', 'x', msg('A', 5));
  push('p', 'x', msg('B', 6));
  push('p', 'y', msg('B', 3));
  push('p', 'y', msg('A', 4));
  push('p', 'z', msg('A', 9));
  push('p', 'x', { op: 'typing', from: 'a', conv: 'dm:a:x' });
  await tick();
  const got = unpack(sent);
  t.deepEqual(got.get('x'), ['typing', 'A@5', 'B@6']);
  t.deepEqual(got.get('y'), ['B@3', 'A@4']);
  t.deepEqual(got.get('z'), ['A@9']);
});
