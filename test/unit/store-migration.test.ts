// Moving users between stores on real SQLite files: export, import (idempotent, conflicts, gaps),
// drop, paging, consistency with concurrent appends, and a throughput figure.
import test from 'ava';
import { dm, openStore, removeStores } from '../helpers/store.ts';
import { ConflictError, DEDUP_KEY, GapError } from '../../src/store/index.ts';
import type { ExportPage, NewEntry, Store } from '../../src/store/index.ts';

test.after.always(removeStores);

const open = (file?: string) => openStore({}, file);

let n = 0;
/** A group message: one entry per member, the sender's keyed by cid. */
function gm(group: string, from: string, members: string[]): NewEntry[] {
  const mid = `m${String(++n).padStart(8, '0')}`;
  const cid = `c${++n}`;
  return members.map((user) => ({
    user, mid, conv: `g:${group}`, from, group, body: `g${n}`, ts: n,
    dkey: user === from ? DEDUP_KEY.cid(cid) : DEDUP_KEY.mid(mid),
  }));
}

/** Traffic among a, b, c, d with reads, acks and last seen. */
async function fill(s: Store): Promise<void> {
  for (let i = 0; i < 30; i++) {
    s.append(dm('a', 'b'));
    s.append(dm('c', 'a'));
    s.append(dm('b', 'd'));
    s.append(gm('team', i % 2 ? 'a' : 'c', ['a', 'b', 'c', 'd']));
  }
  await s.flush();
  await s.read('a', 'dm:a:c', 20);
  await s.read('b', 'g:team', 50);
  s.ack('a', 'phone', 40);
  s.ack('a', 'laptop', 10);
  s.ack('b', 'phone', 7);
  s.ack('c', 'phone', 9);
  s.setLastSeen('a', 1111);
  s.setLastSeen('c', 3333);
  await s.flush();
}

const DEVICES = ['phone', 'laptop'];
/** Everything a client can see of a user. */
async function view(s: Store, user: string) {
  const sync = (await s.sync(user, 0, 1_000_000)).entries;
  const convs = [...new Set(sync.map((e) => e.conv))].sort();
  const history: Record<string, number[]> = {};
  for (const c of convs) history[c] = (await s.history(user, c, undefined, 1_000_000)).entries.map((e) => e.seq);
  return {
    sync, history, unread: s.unread(user), lastSeen: s.lastSeen(user), lastSeq: s.lastSeq(user),
    committed: s.committedSeq(user), acked: DEVICES.map((d) => s.acked(user, d)),
  };
}

async function move(from: Store, to: Store, select: (u: string) => boolean, opts?: { after?: Record<string, number>; pageRows?: number }): Promise<ExportPage[]> {
  const pages: ExportPage[] = [];
  for await (const page of from.exportUsers(select, opts)) {
    pages.push(page);
    await to.importData(page);
  }
  return pages;
}

/** The pages of an export, not imported anywhere. */
async function collect(from: Store, select: (u: string) => boolean, opts?: { after?: Record<string, number>; pageRows?: number }): Promise<ExportPage[]> {
  const pages: ExportPage[] = [];
  for await (const page of from.exportUsers(select, opts)) pages.push(page);
  return pages;
}

const moved = (u: string) => u === 'a' || u === 'b';

test('export from A and import into B gives the moved users the same view, and nothing of the others', async (t) => {
  const { s: a } = await open();
  const { s: b, file: bFile } = await open();
  await fill(a);
  await move(a, b, moved);
  for (const u of ['a', 'b']) t.deepEqual(await view(b, u), await view(a, u), u);
  t.true(b.unread('a').total > 0 && b.acked('a', 'phone') === 40 && b.lastSeen('a') === 1111, 'the fill is not trivial');
  for (const u of ['c', 'd']) {
    t.is(b.lastSeq(u), 0);
    t.deepEqual((await b.sync(u, 0, 10)).entries, []);
  }
  t.deepEqual([...b.knownUsers()].sort(), ['a', 'b']);
  t.deepEqual(b.userSeqs(() => true), a.userSeqs(moved));

  // Dedup keys came along: a retried send is found, on either kind of key.
  const first = (await a.sync('a', 0, 1)).entries[0]!;
  const found = await b.findDedup([{ user: 'a', dkey: first.dkey }]);
  t.is(found.get(`a\0${first.dkey}`)?.mid, first.mid);

  // Appends continue the imported seqs, and unread keeps counting from the imported counters.
  const before = b.unread('a').convs['dm:a:c'] ?? 0;
  const { entries, durable } = b.append(dm('c', 'a'));
  await durable;
  t.is(entries[1]!.seq, a.lastSeq('a') + 1);
  t.is(b.unread('a').convs['dm:a:c'], before + 1);

  // All of it is on disk.
  const want = await view(b, 'a');
  await b.close();
  const { s: b2 } = await open(bFile);
  t.deepEqual(await view(b2, 'a'), want);
  await Promise.all([a.close(), b2.close()]);
});

test('export with after gives only the tail; importing it catches up', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  await fill(a);
  await move(a, b, moved);
  const have = b.userSeqs(moved);
  for (let i = 0; i < 5; i++) a.append(dm('a', 'b'));
  a.ack('b', 'laptop', 1000);
  await a.flush();
  const pages = await move(a, b, moved, { after: Object.fromEntries(have) });
  const tail = pages.flatMap((p) => p.entries);
  t.deepEqual(tail.filter((e) => e.user === 'a').map((e) => e.seq), [1, 2, 3, 4, 5].map((i) => have.get('a')! + i));
  t.deepEqual(tail.filter((e) => e.user === 'b').map((e) => e.seq), [1, 2, 3, 4, 5].map((i) => have.get('b')! + i));
  t.deepEqual(pages.flatMap((p) => p.users.map((u) => u.user)), ['a', 'b'], 'snapshots of every selected user');
  for (const u of ['a', 'b']) t.deepEqual(await view(b, u), await view(a, u), u);
  t.is(b.acked('b', 'laptop'), a.lastSeq('b'));
  // Nothing new: only the snapshots.
  const none = await move(a, b, moved, { after: Object.fromEntries(b.userSeqs(moved)) });
  t.deepEqual(none.flatMap((p) => p.entries), []);
  await Promise.all([a.close(), b.close()]);
});

test('importing the same data twice changes nothing', async (t) => {
  const { s: a } = await open();
  const { s: b, file: bFile } = await open();
  await fill(a);
  const pages = await move(a, b, moved, { pageRows: 25 });
  t.true(pages.length > 3);
  const want = { a: await view(b, 'a'), b: await view(b, 'b') };
  for (const p of pages) await b.importData(p);
  await b.importData({ users: [], entries: pages.flatMap((p) => p.entries) }); // all in one batch
  t.deepEqual({ a: await view(b, 'a'), b: await view(b, 'b') }, want);
  // Older counters do not move anything back.
  await b.importData({ users: [{ user: 'a', seq: 1, lastSeen: 1, convs: [{ conv: 'dm:a:c', lastSeq: 1, ocum: 0, readSeq: 0, readCum: 0 }], cursors: [{ device: 'phone', acked: 1 }] }], entries: [] });
  t.deepEqual(await view(b, 'a'), want.a);
  await b.close();
  const { s: b2 } = await open(bFile);
  t.deepEqual(await view(b2, 'a'), want.a, 'and on disk');
  await Promise.all([a.close(), b2.close()]);
});

test('a conflicting entry throws ConflictError naming user and seq, and writes nothing of the batch', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  await fill(a);
  await move(a, b, moved);
  const want = await view(b, 'a');
  for (let i = 0; i < 3; i++) a.append(dm('a', 'd'));
  await a.flush();
  const tail = (await collect(a, moved, { after: Object.fromEntries(b.userSeqs(moved)) }))
    .flatMap((p) => p.entries);
  t.is(tail.length, 3);
  const old = (await b.sync('a', 4, 1)).entries[0]!;

  // Same seq, another mid.
  const e1 = await t.throwsAsync(b.importData({ users: [], entries: [...tail, { ...old, mid: 'other', ocum: 0 }] }), { instanceOf: ConflictError });
  t.is(e1.user, 'a');
  t.is(e1.seq, 5);
  t.deepEqual(await view(b, 'a'), want, 'the valid tail in the same batch was not written');

  // A new seq whose dedup key is stored at another seq: found by the unique index, rolled back.
  const stolen = { ...tail[0]!, dkey: old.dkey };
  const e2 = await t.throwsAsync(b.importData({ users: [], entries: [stolen, ...tail.slice(1)] }), { instanceOf: ConflictError });
  t.is(e2.seq, tail[0]!.seq);
  t.regex(e2.message, /dedup key/);
  t.deepEqual(await view(b, 'a'), want);

  // The same mid imported twice at one seq with different content in one batch.
  await t.throwsAsync(b.importData({ users: [], entries: [tail[0]!, { ...tail[0]!, mid: 'x' }] }), { instanceOf: ConflictError });

  // And the store still works: the real tail goes in, appends continue.
  await b.importData({ users: [], entries: tail });
  t.is(b.lastSeq('a'), a.lastSeq('a'));
  t.deepEqual((await b.sync('a', 0, 1000)).entries, (await a.sync('a', 0, 1000)).entries);
  await Promise.all([a.close(), b.close()]);
});

test('an import that would leave a gap throws GapError and writes nothing', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  await fill(a);
  const pages = await collect(a, moved, { pageRows: 10 });
  const entries = pages.flatMap((p) => p.entries).filter((e) => e.user === 'a');
  const g = await t.throwsAsync(b.importData({ users: [], entries: entries.slice(5) }), { instanceOf: GapError });
  t.is(g.user, 'a');
  t.is(g.expected, 1);
  t.is(g.got, 6);
  await t.throwsAsync(b.importData({ users: [], entries: [...entries.slice(0, 3), ...entries.slice(4, 8)] }), { instanceOf: GapError });
  const snap = pages.flatMap((p) => p.users).find((u) => u.user === 'a')!;
  await t.throwsAsync(b.importData({ users: [snap], entries: entries.slice(0, 3) }), { instanceOf: GapError }, 'a snapshot ahead of its entries');
  t.is(b.lastSeq('a'), 0);
  t.deepEqual((await b.sync('a', 0, 10)).entries, []);
  await Promise.all([a.close(), b.close()]);
});

test('importEach imports every user it can and reports each one it cannot, with nothing of theirs written', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  await fill(a);
  const everyone = (u: string) => ['a', 'b', 'c', 'd'].includes(u);
  // b already holds c, and a diverged copy of d (another mid at seq 2).
  await move(a, b, (u) => u === 'c' || u === 'd');
  const all = (await collect(a, everyone)).reduce<ExportPage>((x, p) => ({ users: [...x.users, ...p.users], entries: [...x.entries, ...p.entries] }), { users: [], entries: [] });
  const dOld = (await b.sync('d', 1, 1)).entries[0]!;
  const page: ExportPage = {
    // a: a snapshot without its entries (a gap); b: everything; c: everything again (idempotent);
    // d: one entry contradicting what b holds.
    users: all.users,
    entries: all.entries.filter((e) => e.user === 'b' || e.user === 'c').concat([{ ...dOld, mid: 'forked', ocum: 0 }]),
  };
  const wantC = await view(b, 'c');
  const wantD = await view(b, 'd');
  const rejected = await b.importEach(page);
  t.deepEqual([...rejected.keys()].sort(), ['a', 'd']);
  t.true(rejected.get('a') instanceof GapError);
  t.is((rejected.get('a') as GapError).expected, 1);
  t.true(rejected.get('d') instanceof ConflictError);
  t.deepEqual(await view(b, 'b'), await view(a, 'b'), 'b went in whole');
  t.deepEqual(await view(b, 'c'), wantC, 'c unchanged by the repeat');
  t.deepEqual(await view(b, 'd'), wantD, 'nothing of the conflicting user written');
  t.is(b.lastSeq('a'), 0, 'nothing of the gapped user written');

  // A collision found only by the unique index (a dedup key stored at another seq) rejects
  // that user alone.
  const { s: c2 } = await open();
  await move(a, c2, (u) => u === 'b');
  const bTail = all.entries.filter((e) => e.user === 'b').at(-1)!;
  const stolen = { ...bTail, seq: bTail.seq + 1, mid: 'new', dkey: (await c2.sync('b', 0, 1)).entries[0]!.dkey };
  const aEntries = all.entries.filter((e) => e.user === 'a');
  const r2 = await c2.importEach({ users: [], entries: [stolen, ...aEntries] });
  t.deepEqual([...r2.keys()], ['b']);
  t.regex(r2.get('b')!.message, /dedup key/);
  t.is(c2.lastSeq('a'), aEntries.length, 'the other user in the batch went in');
  t.is(c2.lastSeq('b'), bTail.seq);
  await Promise.all([a.close(), b.close(), c2.close()]);
});

test('imports refuse users with uncommitted local appends, and appends wait for an import to settle', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  await fill(a);
  const pages = await collect(a, moved);
  const all: ExportPage = { users: pages.flatMap((p) => p.users), entries: pages.flatMap((p) => p.entries) };

  const pending = b.append(dm('a', 'z'));
  await t.throwsAsync(b.importData(all), { message: /uncommitted local appends/ });
  await pending.durable;

  const { s: c } = await open();
  const importing = c.importData(all);
  t.throws(() => c.append(dm('a', 'z')), { message: /being imported/ });
  t.notThrows(() => c.append(dm('x', 'y')), 'other users are not held up');
  await importing;
  t.is(c.append(dm('a', 'z')).entries[0]!.seq, a.lastSeq('a') + 1);
  await c.flush();
  await Promise.all([a.close(), b.close(), c.close()]);
});

test('dropUsers removes everything of those users, durably, and nothing of the others', async (t) => {
  const { s: a, file } = await open();
  await fill(a);
  const keep = { c: await view(a, 'c'), d: await view(a, 'd') };
  const dkeys = (await a.sync('a', 0, 1000)).entries.map((e) => ({ user: 'a', dkey: e.dkey }));
  const count = a.lastSeq('a') + a.lastSeq('b');
  t.is(await a.dropUsers(['a', 'b']), count);
  const empty = async (s: Store) => {
    for (const u of ['a', 'b']) {
      t.deepEqual(await view(s, u), { sync: [], history: {}, unread: { total: 0, convs: {} }, lastSeen: undefined, lastSeq: 0, committed: 0, acked: [0, 0] });
    }
    t.is((await s.findDedup(dkeys)).size, 0);
    t.deepEqual([...s.knownUsers()].sort(), ['c', 'd']);
    t.deepEqual({ c: await view(s, 'c'), d: await view(s, 'd') }, keep);
  };
  await empty(a);
  await a.close();
  const { s: a2 } = await open(file);
  await empty(a2);
  t.is(a2.append(dm('a', 'c')).entries[0]!.seq, 1, 'a dropped user starts again from 1');
  await a2.flush();
  await a2.close();
});

// Appends made while a drop waits are refused (store-fence.test.ts); those made before it are
// committed first (the store's jobs run in order) and go with the rest.
test('dropUsers drops appends made before it, committed first', async (t) => {
  const { s } = await open();
  await s.append(dm('a', 'b')).durable;
  const pending = s.append(dm('a', 'b')).durable;
  t.is(await s.dropUsers(['a']), 2);
  await pending;
  t.is(s.lastSeq('a'), 0);
  t.deepEqual((await s.sync('a', 0, 10)).entries, []);
  t.is(s.lastSeq('b'), 2);
  await s.close();
});

test('export is one point in time: entries appended during it come with the next export', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  for (let i = 0; i < 10; i++) a.append(Array.from({ length: 10 }, () => dm('x', 'y')).flat());
  await a.flush();
  const seen: number[] = [];
  let appended = false;
  for await (const p of a.exportUsers((u) => u === 'x', { pageRows: 10 })) {
    seen.push(...p.entries.map((e) => e.seq));
    await b.importData(p);
    if (!appended) {
      appended = true;
      await a.append(dm('x', 'y')).durable;
      a.append(dm('x', 'y')); // pending while the rest is read
    }
  }
  t.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i + 1));
  await a.flush();
  await move(a, b, (u) => u === 'x', { after: Object.fromEntries(b.userSeqs((u) => u === 'x')) });
  t.deepEqual(await view(b, 'x'), await view(a, 'x'));
  await Promise.all([a.close(), b.close()]);
});

/** `count` entries in `user`'s timeline, appended in large batches. */
async function bulk(s: Store, user: string, count: number, peers = 10): Promise<void> {
  for (let i = 0; i < count; i += 5000) {
    const items: NewEntry[] = [];
    for (let j = i; j < Math.min(count, i + 5000); j++) {
      const from = `p${j % peers}`;
      const mid = `m${user}-${j}`;
      items.push({ user, mid, conv: `dm:${from}:${user}`, from, to: user, body: `hello ${j} `.repeat(4), ts: j, dkey: DEDUP_KEY.mid(mid) });
    }
    await s.append(items).durable;
  }
}

test('a large user pages through with pageRows', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  await bulk(a, 'big', 20_000);
  const pages = await move(a, b, (u) => u === 'big', { pageRows: 1000 });
  t.is(pages.length, 20);
  for (const p of pages) t.true(p.entries.length <= 1000);
  t.deepEqual(pages.map((p) => p.users.length), [...Array(19).fill(0), 1], 'the snapshot comes with the last entries');
  t.deepEqual(pages.flatMap((p) => p.entries.map((e) => e.seq)), Array.from({ length: 20_000 }, (_, i) => i + 1));
  t.deepEqual(await view(b, 'big'), await view(a, 'big'));
  await Promise.all([a.close(), b.close()]);
});

test('throughput: export and import of 100k entries', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  for (let u = 0; u < 100; u++) await bulk(a, `u${u}`, 1000);
  const t0 = performance.now();
  const pages = await collect(a, () => true);
  const t1 = performance.now();
  for (const p of pages) await b.importData(p);
  const t2 = performance.now();
  const rows = pages.reduce((k, p) => k + p.entries.length, 0);
  t.is(rows, 100_000);
  const rate = (ms: number) => Math.round(rows / (ms / 1000)).toLocaleString('en');
  t.log(`100k entries in ${pages.length} pages: export ${(t1 - t0).toFixed(0)} ms (${rate(t1 - t0)}/s), ` +
    `import ${(t2 - t1).toFixed(0)} ms (${rate(t2 - t1)}/s), together ${rate(t2 - t0)} entries/s`);
  t.deepEqual(await view(b, 'u42'), await view(a, 'u42'));
  await Promise.all([a.close(), b.close()]);
});

test('a one-page export (maxUsers) selects and reads only as many users as one page of rows holds, and page by page from the last user moves them all', async (t) => {
  const { s: a } = await open();
  const { s: b } = await open();
  // 30 users with 20 messages each to a neighbour: about 41 rows per user (40 entries, a snapshot).
  const users = Array.from({ length: 30 }, (_, i) => `u${String(i).padStart(2, '0')}`);
  for (let i = 0; i < 20; i++) await a.append(users.flatMap((u, k) => dm(u, users[(k + 1) % users.length]!))).durable;
  let asked = 0;
  const select = (u: string) => {
    asked++;
    return users.includes(u);
  };
  let from = '';
  let pages = 0;
  for (;;) {
    asked = 0;
    let page: ExportPage | undefined;
    for await (const p of a.exportUsers((u) => u > from && select(u), { pageRows: 100, maxUsers: 2000 })) {
      page = p;
      break;
    }
    if (!page || page.users.length === 0) break;
    pages++;
    t.true(asked <= 4, `page ${pages}: ${asked} users selected for a page of 100 rows (before: every user after ${from || 'the start'})`);
    await b.importData(page);
    from = page.users.at(-1)!.user;
  }
  t.true(pages >= 10, `${pages} pages`);
  for (const u of users) t.deepEqual((await b.sync(u, 0, 1000)).entries.map((e) => e.mid), (await a.sync(u, 0, 1000)).entries.map((e) => e.mid), u);
});

test('one-page exports from a name see users that came after an earlier export and not those dropped since', async (t) => {
  const { s: a } = await open();
  const page = async (from: string): Promise<string[]> => {
    for await (const p of a.exportUsers((u) => u > from, { pageRows: 1000, maxUsers: 1000, from })) return p.users.map((u) => u.user);
    return [];
  };
  await a.append([...dm('m1', 'm2'), ...dm('p1', 'p2')]).durable;
  t.deepEqual(await page(''), ['m1', 'm2', 'p1', 'p2']);
  t.deepEqual(await page('m1'), ['m2', 'p1', 'p2']);
  await a.append([...dm('a1', 'n1'), ...dm('z1', 'z1')]).durable;
  t.deepEqual(await page(''), ['a1', 'm1', 'm2', 'n1', 'p1', 'p2', 'z1'], 'users that came since are there, in order');
  t.deepEqual(await page('m2'), ['n1', 'p1', 'p2', 'z1']);
  await a.dropUsers(['m2', 'p1']);
  t.deepEqual(await page('m1'), ['n1', 'p2', 'z1'], 'dropped users are gone');
  t.deepEqual(await page('zz'), []);
});
