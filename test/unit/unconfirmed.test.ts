// Reads stop short of entries the replicas have not acknowledged yet.
import test from 'ava';
import { Unconfirmed } from '../../src/home/unconfirmed.ts';

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const p = new Promise<void>((ok, ko) => {
    resolve = ok;
    reject = ko;
  });
  return { p, resolve, reject };
}

test('the limit is just below the oldest unacknowledged entry, and lifts as acknowledgements come', async (t) => {
  const u = new Unconfirmed();
  t.is(u.limit('a'), Infinity);
  const first = deferred();
  const second = deferred();
  u.track('a', 5, first.p);
  u.track('a', 8, second.p);
  u.track('b', 1, new Promise(() => undefined));
  t.is(u.limit('a'), 4);
  t.is(u.limit('b'), 0);
  second.resolve();
  await second.p;
  t.is(u.limit('a'), 4, 'a later batch acknowledged first does not lift it');
  first.reject(new Error('moved'));
  await first.p.catch(() => undefined);
  t.is(u.limit('a'), Infinity, 'a rejected wait (no longer home) ends the hold too');
  t.is(u.limit('b'), 0);
});
