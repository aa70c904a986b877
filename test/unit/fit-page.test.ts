// fitPage: a handoff page cut to what fits a peer frame keeps whole users' snapshots only.
import test from 'ava';
import { fitPage } from '../../src/replica/handoff.ts';
import type { ExportPage } from '../../src/store/index.ts';

const entry = (user: string, seq: number, size: number) => ({ user, seq, mid: `${user}-${seq}`, conv: 'dm:a:b', from: 'a', to: 'b', body: 'x'.repeat(size), ts: 1, dkey: `m:${user}-${seq}`, ocum: 0 });
const snap = (user: string, seq: number) => ({ user, seq, convs: [], cursors: [] });

test('a page that fits is returned as it is', (t) => {
  const page: ExportPage = { users: [snap('a', 2)], entries: [entry('a', 1, 10), entry('a', 2, 10)] };
  t.is(fitPage(page), page);
});

test('a large page keeps a prefix of the entries and the snapshots of the users it holds whole', (t) => {
  const page: ExportPage = {
    users: [snap('a', 100), snap('b', 100), snap('c', 0)],
    entries: [...Array.from({ length: 100 }, (_, i) => entry('a', i + 1, 4000)), ...Array.from({ length: 100 }, (_, i) => entry('b', i + 1, 4000))],
  };
  const part = fitPage(page);
  t.true(part.entries.length > 100 && part.entries.length < 200, `${part.entries.length} entries`);
  t.deepEqual(part.entries, page.entries.slice(0, part.entries.length));
  t.deepEqual(part.users.map((u) => u.user), ['a'], 'b is cut, c comes after the cut');
  t.true(JSON.stringify(part).length < 4 * 1024 * 1024);
  const huge: ExportPage = { users: [snap('a', 1)], entries: [entry('a', 1, 3_000_000), entry('a', 2, 10)] };
  t.is(fitPage(huge).entries.length, 1, 'at least one entry');
});
