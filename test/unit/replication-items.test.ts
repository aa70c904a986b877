// Merging what is queued for one user and one replica: the newer snapshot wins per conversation
// and cursor, and outbox rows added and cleared cancel out in order.
import test from 'ava';
import { mergeSnap } from '../../src/replica/replication-items.ts';
import type { UserSnapshot } from '../../src/store/index.ts';

const snap = (over: Partial<UserSnapshot>): UserSnapshot => ({ user: 'alice', seq: 1, convs: [], cursors: [], ...over });
const row = (mid: string, dest = 'bob') => ({ mid, dest, item: { mid, user: dest } });

test('a row added then cleared is only cleared; cleared then added again is only added', (t) => {
  const a = snap({ seq: 3, outbox: [row('m1'), row('m2')] });
  const b = snap({ seq: 4, cleared: [{ mid: 'm1', dest: 'bob' }] });
  const ab = mergeSnap(a, b)!;
  t.deepEqual(ab.outbox, [row('m2')]);
  t.deepEqual(ab.cleared, [{ mid: 'm1', dest: 'bob' }]);
  t.is(ab.seq, 4);
  const c = snap({ seq: 5, outbox: [row('m1')] });
  const abc = mergeSnap(ab, c)!;
  t.deepEqual(abc.outbox?.map((o) => o.mid).sort(), ['m1', 'm2']);
  t.is(abc.cleared, undefined);
});

test('the newer snapshot wins per conversation and cursor; last seen takes the later', (t) => {
  const old = snap({ lastSeen: 9, convs: [{ conv: 'dm:a:b', lastSeq: 1, ocum: 1, readSeq: 0, readCum: 0 }], cursors: [{ device: 'p', acked: 1 }] });
  const neu = snap({ lastSeen: 5, convs: [{ conv: 'dm:a:b', lastSeq: 2, ocum: 1, readSeq: 2, readCum: 1 }], cursors: [] });
  const m = mergeSnap(old, neu)!;
  t.deepEqual(m.convs, neu.convs);
  t.deepEqual(m.cursors, old.cursors);
  t.is(m.lastSeen, 9);
  t.is(mergeSnap(undefined, neu), neu);
});
