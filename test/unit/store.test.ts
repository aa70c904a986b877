// The store on a real SQLite file: seq assignment, dedup, cursors, unread arithmetic, group commit, reopen.
import test from 'ava';
import { dm, openStore, removeStores } from '../helpers/store.ts';
import { DEDUP_KEY } from '../../src/store/index.ts';
import { batches, EXEC_CHARS, insertSql, openDb, sqlValue, transaction } from '../../src/store/db.ts';
import type { StoredEntry } from '../../src/store/index.ts';

test.after.always(removeStores);

const open = openStore;

test('seqs are assigned per user in call order, 1..n, before commit', async (t) => {
  const { s } = await open();
  const a = s.append(dm('a', 'b'));
  const b = s.append(dm('a', 'c'));
  const c = s.append(dm('c', 'b'));
  t.deepEqual(a.entries.map((e) => [e.user, e.seq]), [['a', 1], ['b', 1]]);
  t.deepEqual(b.entries.map((e) => [e.user, e.seq]), [['a', 2], ['c', 1]]);
  t.deepEqual(c.entries.map((e) => [e.user, e.seq]), [['c', 2], ['b', 2]]);
  t.is(s.lastSeq('b'), 2);
  t.is(s.committedSeq('b'), 0, 'nothing committed yet');
  await Promise.all([a.durable, b.durable, c.durable]);
  t.is(s.committedSeq('b'), 2);
  const page = await s.sync('b', 0, 10);
  t.deepEqual(page.entries.map((e) => e.seq), [1, 2]);
  t.false(page.more);
  await s.close();
});

test('dedup: pending keys are visible at once, committed ones through findDedup', async (t) => {
  const { s } = await open();
  const { entries, durable } = s.append(dm('a', 'b', 'dup-1'));
  t.is(s.peekDedup('a', DEDUP_KEY.cid('dup-1'))?.seq, entries[0]!.seq);
  t.throws(() => s.append(dm('a', 'b', 'dup-1')), { message: /duplicate dedup key/ });
  const lookup = s.findDedup([{ user: 'a', dkey: DEDUP_KEY.cid('dup-1') }, { user: 'a', dkey: DEDUP_KEY.cid('other') }]);
  await durable;
  t.is(s.peekDedup('a', DEDUP_KEY.cid('dup-1')), undefined, 'no longer pending');
  const found = await lookup;
  t.is(found.get(`a\0${DEDUP_KEY.cid('dup-1')}`)?.mid, entries[0]!.mid, 'the commit queued before the lookup ran first');
  t.false(found.has(`a\0${DEDUP_KEY.cid('other')}`));
  const after = await s.findDedup([{ user: 'a', dkey: DEDUP_KEY.cid('dup-1') }, { user: 'b', dkey: DEDUP_KEY.mid(entries[0]!.mid) }]);
  t.is(after.size, 2);
  t.is(after.get(`a\0${DEDUP_KEY.cid('dup-1')}`)?.mid, entries[0]!.mid);
  await s.close();
});

test('a lookup made before the commit ran sees the entry either pending or committed, never neither', async (t) => {
  const { s } = await open();
  for (let i = 0; i < 50; i++) {
    const cid = `race-${i}`;
    const { durable } = s.append(dm('r', 'q', cid));
    const found = await s.findDedup([{ user: 'r', dkey: DEDUP_KEY.cid(cid) }]);
    const seen = s.peekDedup('r', DEDUP_KEY.cid(cid)) ?? found.get(`r\0${DEDUP_KEY.cid(cid)}`);
    t.truthy(seen, cid);
    await durable;
  }
  await s.close();
});

test('group commit: many appends in one tick go in one transaction; onCommit sees them in order', async (t) => {
  const batches: number[] = [];
  const committed: StoredEntry[] = [];
  const { s } = await open({ onBatch: ({ rows }) => batches.push(rows), onCommit: (e) => committed.push(...e) });
  const ps = [];
  for (let i = 0; i < 500; i++) ps.push(s.append(dm('g', 'h')).durable);
  await Promise.all(ps);
  t.is(batches.length, 1, `one commit for 500 sends (got ${batches.join(',')})`);
  t.is(batches[0], 1000);
  t.deepEqual(committed.filter((e) => e.user === 'h').map((e) => e.seq), Array.from({ length: 500 }, (_, i) => i + 1));
  await s.close();
});

test('device cursors move forward only, clamp to the timeline, and persist', async (t) => {
  const { s, file } = await open();
  await s.append([...dm('x', 'y'), ...dm('x', 'y'), ...dm('x', 'y')]).durable;
  t.is(s.acked('y', 'phone'), 0);
  t.true(s.ack('y', 'phone', 2));
  t.false(s.ack('y', 'phone', 1), 'lower is ignored');
  t.false(s.ack('y', 'phone', 2), 'same is ignored');
  t.true(s.ack('y', 'phone', 99));
  t.is(s.acked('y', 'phone'), 3, 'clamped to the newest seq');
  t.true(s.ack('y', 'laptop', 1));
  await s.flush();
  await s.close();
  const { s: s2 } = await open({}, file);
  t.is(s2.acked('y', 'phone'), 3);
  t.is(s2.acked('y', 'laptop'), 1);
  await s2.close();
});

test('unread arithmetic: others count, own do not, read moves forward only, total is the sum', async (t) => {
  const { s, file } = await open();
  // u's timeline: 1 a->u, 2 a->u, 3 u->a, 4 b->u, 5 a->u, 6 b->u, 7 a->u
  for (const [f, to] of [['a', 'u'], ['a', 'u'], ['u', 'a'], ['b', 'u'], ['a', 'u'], ['b', 'u'], ['a', 'u']] as const) {
    await s.append(dm(f, to)).durable;
  }
  t.deepEqual(s.unread('u'), { total: 6, convs: { 'dm:a:u': 4, 'dm:b:u': 2 } });
  t.deepEqual(s.unread('a'), { total: 1, convs: { 'dm:a:u': 1 } });
  t.is(await s.read('u', 'dm:a:u', 3), 3, 'reading through seq 3 (an own message) marks 1 and 2');
  t.deepEqual(s.unread('u').convs, { 'dm:a:u': 2, 'dm:b:u': 2 });
  t.is(await s.read('u', 'dm:a:u', 2), undefined, 'backwards is ignored');
  t.is(await s.read('u', 'dm:a:u', 6), 6, 'a seq of another conversation counts up to the one before it');
  t.deepEqual(s.unread('u').convs, { 'dm:a:u': 1, 'dm:b:u': 2 });
  t.is(await s.read('u', 'dm:b:u', 1000), 7, 'past the end clamps to the newest seq');
  t.deepEqual(s.unread('u'), { total: 1, convs: { 'dm:a:u': 1 } });
  t.is(await s.read('u', 'dm:nobody:u', 3), undefined, 'no such conversation');
  await s.append(dm('b', 'u')).durable;
  t.deepEqual(s.unread('u'), { total: 2, convs: { 'dm:a:u': 1, 'dm:b:u': 1 } });
  await s.close();
  const { s: s2 } = await open({}, file);
  t.deepEqual(s2.unread('u'), { total: 2, convs: { 'dm:a:u': 1, 'dm:b:u': 1 } }, 'the same after reopening');
  await s2.close();
});

test('read to a seq whose entry is not yet committed counts it', async (t) => {
  const { s } = await open();
  await s.append(dm('p', 'v')).durable;          // v:1
  s.append(dm('p', 'v'));                          // v:2 pending
  s.append(dm('w', 'v'));                          // v:3 pending, other conv
  t.is(await s.read('v', 'dm:p:v', 2), 2);        // the conversation's newest: answered from memory
  s.append(dm('p', 'v'));                          // v:4 pending
  s.append(dm('p', 'v'));                          // v:5 pending
  t.is(await s.read('v', 'dm:p:v', 4), 4, 'DB path with pending rows');
  t.deepEqual(s.unread('v').convs, { 'dm:p:v': 1, 'dm:v:w': 1 });
  await s.flush();
  await s.close();
});

test('history walks one conversation backwards with more; reopen continues seqs', async (t) => {
  const { s, file } = await open();
  for (let i = 0; i < 5; i++) await s.append([...dm('k', 'l'), ...dm('k', 'm')]).durable;
  const h = await s.history('k', 'dm:k:l', undefined, 3);
  t.deepEqual(h.entries.map((e) => e.seq), [9, 7, 5]);
  t.true(h.more);
  const h2 = await s.history('k', 'dm:k:l', 5, 3);
  t.deepEqual(h2.entries.map((e) => e.seq), [3, 1]);
  t.false(h2.more);
  s.setLastSeen('k', 12345);
  await s.close();
  const { s: s2 } = await open({}, file);
  t.is(s2.lastSeq('k'), 10);
  t.is(s2.committedSeq('k'), 10);
  t.is(s2.lastSeen('k'), 12345);
  t.deepEqual(s2.append(dm('k', 'l')).entries.map((e) => e.seq), [11, 6]);
  await s2.flush();
  await s2.close();
});

test('outbox rows are written with the entries, listed until done, and survive reopening', async (t) => {
  const { s, file } = await open();
  const [e] = dm('ob-a', 'ob-b');
  await s.append([e!], [{ user: 'ob-a', mid: e!.mid, dest: 'ob-b', item: { hello: 'world', n: 1 } }]).durable;
  const [f] = dm('ob-a', 'ob-c');
  await s.append([f!], [{ user: 'ob-a', mid: f!.mid, dest: 'ob-c', item: [1, 2] }]).durable;
  t.deepEqual((await s.outbox()).map((r) => [r.mid, r.dest, r.item]).sort(), [[e!.mid, 'ob-b', { hello: 'world', n: 1 }], [f!.mid, 'ob-c', [1, 2]]].sort());
  s.outboxDone([{ user: 'ob-a', mid: f!.mid, dest: 'ob-c' }]);
  await s.flush();
  await s.close();
  const { s: s2 } = await open({}, file);
  t.deepEqual((await s2.outbox()).map((r) => r.dest), ['ob-b']);
  await s2.close();
});

test('outbox rows whose sender entry is gone (replaced or dropped) are not listed, and are deleted', async (t) => {
  const { s } = await open();
  const [e] = dm('og-a', 'og-b');
  await s.append([e!], [{ user: 'og-a', mid: e!.mid, dest: 'og-b', item: 1 }]).durable;
  // a row for an entry that is not (any longer) in the sender's timeline
  const [g] = dm('og-c', 'og-b');
  await s.append([g!], [{ user: 'og-c', mid: 'not-this-one', dest: 'og-b', item: 2 }]).durable;
  t.deepEqual((await s.outbox()).map((r) => r.user), ['og-a']);
  await s.dropUsers(['og-a']);
  t.deepEqual(await s.outbox(), []);
  await s.close();
});

test('readMarks: per user the newest mid of the conversation at or below the read cursor', async (t) => {
  const { s } = await open();
  const mids: string[] = [];
  for (const [f, to] of [['a', 'u'], ['a', 'u'], ['b', 'u'], ['a', 'u']] as const) {
    const { entries, durable } = s.append(dm(f, to));
    mids.push(entries[0]!.mid);
    await durable;
  }
  const last = s.append(dm('u', 'a')); // u:5, a:4
  await last.durable;
  t.deepEqual(await s.readMarks('dm:a:u', ['u', 'a', 'nobody']), new Map(), 'nobody has read anything');
  await s.read('u', 'dm:a:u', 3); // through seq 3, which is dm:b:u: the newest of dm:a:u below it is seq 2
  await s.read('a', 'dm:a:u', 100);
  t.deepEqual(await s.readMarks('dm:a:u', ['u', 'a', 'u']), new Map([['u', mids[1]!], ['a', last.entries[0]!.mid]]));
  // An entry not yet committed counts as well.
  const pending = s.append(dm('a', 'u'));
  await s.read('u', 'dm:a:u', 6);
  t.is((await s.readMarks('dm:a:u', ['u'])).get('u'), pending.entries[1]!.mid);
  await s.flush();
  await s.close();
});

test('entriesByKey lists the entries whose dedup key has the prefix, in seq order', async (t) => {
  const { s } = await open();
  const base = { conv: 'g:g1', from: 'a', group: 'g1', body: '{}', ts: 1 };
  await s.append([
    { ...base, user: 'g:g1', mid: 'M1', dkey: 'e:M1' },
    { ...base, user: 'g:g1', mid: 'M2', dkey: 'c:a:c1' },
    { ...base, user: 'g:g1', mid: 'M3', dkey: 'e:M3' },
    { ...base, user: 'g:g2', mid: 'M4', dkey: 'e:M4' },
  ]).durable;
  t.deepEqual((await s.entriesByKey('g:g1', 'e:')).map((e) => [e.seq, e.mid]), [[1, 'M1'], [3, 'M3']]);
  t.deepEqual((await s.entriesByKey('g:g1', 'c:')).map((e) => e.mid), ['M2']);
  await s.close();
});

test('bodies, names and cids with quotes, SQL, NUL and astral characters come back exactly, committed and imported', async (t) => {
  // A transaction is one SQL text with its rows inlined as JSON literals (db.ts transaction):
  // nothing a client sends may end a literal early or change a statement.
  const nasty = [`it's`, `''`, `'); DROP TABLE entries; --`, 'a\u0000b', '\\\'\\"', '😀 é \u2028', `x'||'y`];
  const { s } = await open();
  const { s: r } = await open();
  const sent: StoredEntry[] = [];
  for (const [i, text] of nasty.entries()) {
    const user = `u'${i}`;
    const [own, copy] = dm(user, `v"${i}`, `cid ${text}`);
    const appended = s.append([{ ...own!, body: text, conv: `dm:${text}` }, { ...copy!, body: text, conv: `dm:${text}` }]);
    sent.push(...appended.entries);
    await appended.durable;
  }
  for await (const page of s.exportUsers(() => true)) await r.importData(page);
  for (const store of [s, r]) {
    for (const e of sent) {
      const got = (await store.sync(e.user, 0, 10)).entries;
      t.is(got.length, 1, `${e.user} has its entry`);
      t.is(got[0]!.body, e.body);
      t.is(got[0]!.conv, e.conv);
      t.is(got[0]!.mid, e.mid);
    }
  }
  await s.close();
  await r.close();
});

test('sqlValue: numbers and NULL as SQL literals, strings quoted with quotes doubled, NUL and lone surrogates read from JSON', (t) => {
  t.is(sqlValue(null), 'NULL');
  t.is(sqlValue(42), '42');
  t.is(sqlValue(-1.5), '-1.5');
  t.is(sqlValue(Number.NaN), 'NULL', 'as JSON would have it');
  t.is(sqlValue(`it's`), `'it''s'`);
  t.is(sqlValue(`'); DROP TABLE entries; --`), `'''); DROP TABLE entries; --'`);
  t.is(sqlValue('😀 \\ "'), `'😀 \\ "'`);
  t.is(sqlValue('a\u0000b'), `('["a\\u0000b"]'->>0)`);
  t.is(sqlValue('x\ud800'), `('["x\\ud800"]'->>0)`);
});

test('a large transaction goes to SQLite in calls of at most EXEC_CHARS, and a conflict in its last call rolls back all of it', async (t) => {
  const rows = Array.from({ length: 3000 }, (_, i) => [i, `row ${i} ${'x'.repeat(100)}`]);
  const inserts = insertSql('INSERT INTO t (id, v)', '', rows, 1000);
  t.true(inserts.length > 3, `${inserts.length} statements: cut by size, not only by 1,000 rows`);
  for (const st of inserts) t.true(st.length <= EXEC_CHARS);
  const calls = batches(['BEGIN', ...inserts, 'COMMIT']);
  t.true(calls.length > 1);
  t.true(calls.every((c) => c.length <= EXEC_CHARS));
  t.deepEqual(batches(['BEGIN', 'SELECT 1', 'COMMIT']), ['BEGIN;\nSELECT 1;\nCOMMIT']);
  const db = await openDb(':memory:');
  try {
    await db.job((c) => c.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)'));
    await db.job((c) => transaction(c, inserts));
    t.deepEqual(await db.job((c) => c.all('SELECT count(*) AS n, sum(id) AS s FROM t')), [{ n: 3000, s: (2999 * 3000) / 2 }]);
    // Another 3,000 rows, the last of which collides: none of the new ones stays.
    const more = insertSql('INSERT INTO t (id, v)', '', [...rows.map(([i, v]) => [Number(i) + 3000, v!]), [0, 'dup']], 1000);
    await t.throwsAsync(db.job((c) => transaction(c, more)), { message: /UNIQUE/ });
    t.deepEqual(await db.job((c) => c.all('SELECT count(*) AS n FROM t')), [{ n: 3000 }]);
    // And the connection is usable after the rollback.
    await db.job((c) => transaction(c, ["INSERT INTO t (id, v) VALUES (-1, 'after')"]));
    t.deepEqual(await db.job((c) => c.all('SELECT count(*) AS n FROM t')), [{ n: 3001 }]);
  } finally {
    await db.close();
  }
});
