// Custody: which keys a node may serve after members die, join and leave (see src/replica/custody.ts).
import test from 'ava';
import { createRing } from '../../src/ring/index.ts';
import { createCustody } from '../../src/replica/custody.ts';

const R = 2;
const ring = (...m: string[]) => createRing(m, { replicas: R });
const keys = Array.from({ length: 400 }, (_, i) => `u${i}`);

test('no deaths: every key is complete (joins and leaves copy before the ring changes)', (t) => {
  const c = createCustody('c', () => R);
  c.changed(ring('a', 'b', 'c'), ring('a', 'b', 'c', 'd'), []);
  c.changed(ring('a', 'b', 'c', 'd'), ring('b', 'c', 'd'), []);
  t.true(keys.every((k) => c.complete(k)));
});

test('a 2 | 3 split seen by the majority: keys whose every holder died are incomplete, the rest complete', (t) => {
  const all = ring('a', 'b', 'c', 'd', 'e');
  const c = createCustody('c', () => R);
  // The two minority nodes are declared dead one after the other (two ring changes).
  const mid = ring('b', 'c', 'd', 'e');
  const maj = ring('c', 'd', 'e');
  c.changed(all, mid, ['a']);
  c.changed(mid, maj, ['b']);
  let orphans = 0;
  let served = 0;
  for (const k of keys) {
    if (maj.owner(k) !== 'c') continue;
    const before = all.owners(k, R);
    const orphan = before.every((n) => n === 'a' || n === 'b');
    if (orphan) orphans++;
    else if (before.includes('c')) served++;
    // c holds every confirmed write of a key only if it held the key before the split.
    t.is(c.complete(k), before.includes('c'), `${k}: holders before ${before}`);
  }
  t.true(orphans > 0 && served > 0, `${orphans} orphans, ${served} kept`);
});

test('a replica placed by a death is incomplete until its home fills it, and a later death keeps the fill', (t) => {
  const c = createCustody('d', () => R);
  const r1 = ring('a', 'b', 'c', 'd');
  const r2 = ring('b', 'c', 'd');
  c.changed(r1, r2, ['a']);
  const fresh = keys.find((k) => r2.owners(k, R).includes('d') && !r1.owners(k, R).includes('d'))!;
  t.false(c.complete(fresh));
  c.filled(fresh);
  t.true(c.complete(fresh));
  // Another death: d keeps holding the key, so it stays complete.
  const r3 = ring('c', 'd');
  c.changed(r2, r3, ['b']);
  t.true(c.complete(fresh));
});

test('a fill is forgotten when the node stops holding the key; a rejoin (reset) makes everything complete', (t) => {
  const c = createCustody('d', () => R);
  const r1 = ring('a', 'b', 'c', 'd');
  const r2 = ring('b', 'c', 'd');
  // Newcomers take the key off d (a join); then their deaths give it back to d.
  const r3 = ring('b', 'c', 'd', 'x', 'y', 'z');
  const fresh = keys.find((k) => r2.owners(k, R).includes('d') && !r1.owners(k, R).includes('d') && !r3.owners(k, R).includes('d'))!;
  t.truthy(fresh);
  c.changed(r1, r2, ['a']);
  c.filled(fresh);
  t.true(c.complete(fresh));
  c.changed(r2, r3, []);
  t.is(c.view().filled, 0);
  c.changed(r3, r2, ['x', 'y', 'z']);
  t.false(c.complete(fresh), 'held again after a death, with what d had before the join');
  c.reset();
  t.true(keys.every((k) => c.complete(k)));
  t.deepEqual(c.view(), { deaths: 0, filled: 0 });
});

test('a key a death left incomplete is complete again once a leave or join copies it here', (t) => {
  const c = createCustody('c', () => R);
  const all = ring('a', 'b', 'c', 'd', 'e');
  const maj = ring('c', 'd', 'e');
  c.changed(all, maj, ['a', 'b']);
  const orphan = keys.find((k) => maj.owners(k, R).includes('c') && !all.owners(k, R).includes('c'))!;
  t.false(c.complete(orphan));
  // a and b come back (joins copy), the key leaves c; then a member leaves gracefully (its push
  // makes c a holder again with a complete copy).
  c.changed(maj, all, []);
  const noE = ring('a', 'b', 'c', 'd');
  c.changed(all, noE, []);
  // Without deaths since the last one kept, only changes from the oldest death on are kept.
  t.is(c.view().deaths, 1);
  const after = keys.filter((k) => !all.owners(k, R).includes('c') && noE.owners(k, R).includes('c'));
  t.true(after.length > 0);
  t.true(after.every((k) => c.complete(k)), 'made a holder by a leave: complete');
});
