// The cluster page's chart data (src/web/admin/history.ts): counters since start become rates,
// a restart (counter going down) leaves a gap, members come and go, the window slides; and the
// replication bar's progress since the backlog peaked.
import test from 'ava';
import { History, Peaks } from '../../src/web/admin/history.ts';

test('rates are counter differences over the time between polls', (t) => {
  const h = new History(120_000);
  h.add(10_000, [{ name: 'a', messages: 100, peerIn: 1024, peerOut: 0, connections: 3 }]);
  t.is(h.latest('msgs', 'a'), null, 'no rate from one poll');
  t.is(h.latest('conns', 'a'), 3);
  h.add(12_000, [{ name: 'a', messages: 140, peerIn: 5120, peerOut: 2048, connections: 4 }]);
  t.is(h.latest('msgs', 'a'), 20);
  t.is(h.latest('kibIn', 'a'), 2);
  t.is(h.latest('kibOut', 'a'), 1);
  t.is(h.latest('kib', 'a'), 3);
  t.deepEqual(h.data('msgs', ['a', 'b']), [[10, 12], [null, 20], [null, null]]);
});

test('a counter that goes down (the node restarted) gives a gap, then rates again', (t) => {
  const h = new History();
  h.add(1000, [{ name: 'a', messages: 500 }]);
  h.add(2000, [{ name: 'a', messages: 3 }]);
  t.is(h.latest('msgs', 'a'), null);
  h.add(3000, [{ name: 'a', messages: 13 }]);
  t.is(h.latest('msgs', 'a'), 10);
});

test('members join and leave: earlier polls are empty for a newcomer, a missed poll breaks the rate', (t) => {
  const h = new History();
  h.add(1000, [{ name: 'a', messages: 0 }]);
  h.add(2000, [{ name: 'a', messages: 1 }, { name: 'b', messages: 50 }]);
  h.add(3000, [{ name: 'a', messages: 2 }]);
  h.add(4000, [{ name: 'a', messages: 3 }, { name: 'b', messages: 90 }]);
  t.deepEqual(h.data('msgs', ['a', 'b']), [[1, 2, 3, 4], [null, 1, 1, 1], [null, null, null, null]]);
  t.is(h.latest('conns', 'b'), null);
});

test('the window slides and forgets members gone for all of it', (t) => {
  const h = new History(10_000);
  for (let s = 0; s <= 30; s++) h.add(s * 1000, s < 5 ? [{ name: 'a', connections: 1 }, { name: 'b', connections: 2 }] : [{ name: 'a', connections: 1 }]);
  const [x, a, b] = h.data('conns', ['a', 'b']);
  t.deepEqual(x, Array.from({ length: 11 }, (_, i) => 20 + i));
  t.true(a!.every((v) => v === 1));
  t.true(b!.every((v) => v === null));
  // A poll with a time not after the last one (the node's clock stepped back) is skipped.
  h.add(30_000, [{ name: 'a', connections: 9 }]);
  t.is(h.latest('conns', 'a'), 1);
});

test('replication progress counts from the highest backlog and starts afresh after it is done', (t) => {
  const p = new Peaks();
  p.update(new Map([['a>b', 100]]));
  t.is(p.get('a>b'), 0);
  p.update(new Map([['a>b', 25]]));
  t.is(p.get('a>b'), 0.75);
  p.update(new Map([['a>b', 40]]));
  t.is(p.get('a>b'), 0.6);
  p.update(new Map());
  t.is(p.get('a>b'), null);
  p.update(new Map([['a>b', 10]]));
  t.is(p.get('a>b'), 0, 'a new backlog: the old peak is forgotten');
});
