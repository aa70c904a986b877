// A user's state travels as data: outbox rows (copies still to hand over) go with the sender's
// entry and their clearing follows, and a snapshot of any size is cut into parts that import
// like the whole.
import test from 'ava';
import { dm, openStore, removeStores } from '../helpers/store.ts';
import { cutSnapshot, snapshotChars, snapshotRows, splitSnapshot } from '../../src/store/index.ts';
import type { Changed, ExportedEntry, ExportPage, Store, UserSnapshot } from '../../src/store/index.ts';

test.after.always(removeStores);

/** A store whose commits are replayed into `replica` as the replicator would: the entries, and
 * a snapshot of the changed state with the outbox rows added and cleared. */
async function pair() {
  const { s: replica } = await openStore();
  const commits: { entries: ExportedEntry[]; changed: Changed }[] = [];
  const { s: home } = await openStore({ onCommit: (entries, changed) => commits.push({ entries, changed }) });
  const ship = async () => {
    for (const { entries, changed } of commits.splice(0)) {
      const users = new Set([...entries.map((e) => e.user), ...changed.users, ...changed.outbox.map((o) => o.user), ...changed.cleared.map((k) => k.user)]);
      const page: ExportPage = { entries, users: [] };
      for (const u of users) {
        const snap = home.snapshot(u, changed.convs.filter(([x]) => x === u).map(([, c]) => c), [])!;
        const ob = changed.outbox.filter((o) => o.user === u).map((o) => o.row);
        const cl = changed.cleared.filter((k) => k.user === u).map((k) => ({ mid: k.mid, dest: k.dest }));
        if (ob.length) snap.outbox = ob;
        if (cl.length) snap.cleared = cl;
        page.users.push(snap);
      }
      await replica.importEach(page);
    }
  };
  return { home, replica, ship };
}

test('an outbox row is committed with its sender entry, reported with it, and its clearing follows', async (t) => {
  const { home, replica, ship } = await pair();
  const [mine, copy] = dm('alice', 'bob');
  const row = { user: 'alice', mid: mine!.mid, dest: 'bob', item: { ...copy } };
  await home.append([mine!], [row]).durable;
  await ship();
  t.deepEqual((await replica.outbox()).map((r) => [r.user, r.mid, r.dest]), [['alice', mine!.mid, 'bob']]);
  t.deepEqual((await replica.outbox())[0]!.item, { ...copy });
  // The replica's full snapshot of alice lists the row (it would hand it over as her home).
  t.deepEqual(replica.snapshot('alice')!.outbox, [{ mid: mine!.mid, dest: 'bob', item: { ...copy } }]);
  home.outboxDone([{ user: 'alice', mid: mine!.mid, dest: 'bob' }]);
  await home.flush();
  await ship();
  t.deepEqual(await home.outbox(), []);
  t.deepEqual(await replica.outbox(), []);
  t.is(replica.snapshot('alice')!.outbox, undefined);
  await Promise.all([home.close(), replica.close()]);
});

test('an export carries the outbox rows, and a store reopened keeps them in its snapshots', async (t) => {
  const { s: a, file } = await openStore();
  const { s: b } = await openStore();
  const [mine, copy] = dm('carol', 'dave');
  await a.append([mine!], [{ user: 'carol', mid: mine!.mid, dest: 'dave', item: copy }]).durable;
  for await (const page of a.exportUsers((u) => u === 'carol')) await b.importData(page);
  t.deepEqual((await b.outbox()).map((r) => r.mid), [mine!.mid]);
  await a.close();
  const { s: again } = await openStore({}, file);
  t.is(again.snapshot('carol')!.outbox?.length, 1);
  await Promise.all([again.close(), b.close()]);
});

/** One user who talked to `n` others: n conversations (and 2n entries over both sides). */
async function chatty(s: Store, user: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 2000) {
    const items = [];
    for (let j = i; j < Math.min(n, i + 2000); j++) items.push(dm(user, `random-recipient-id-number-${j}`)[0]!);
    await s.append(items).durable;
  }
}

test('a snapshot of 35,000 conversations exports in parts within the page budget and imports whole', async (t) => {
  const { s: a } = await openStore();
  const { s: b } = await openStore();
  await chatty(a, 'big', 35_000);
  const whole = a.snapshot('big')!;
  t.true(snapshotChars(whole) > 4 * 1024 * 1024, 'the whole snapshot exceeds a peer frame');
  const pages: ExportPage[] = [];
  for await (const page of a.exportUsers((u) => u === 'big', { pageChars: 256 * 1024 })) {
    pages.push(page);
    await b.importData(page);
  }
  const parts = pages.flatMap((p) => p.users);
  t.true(parts.length > 10);
  for (const p of pages) t.true(p.users.reduce((n, s) => n + snapshotChars(s), 0) <= 256 * 1024 + 1024);
  t.is(parts.reduce((n, s) => n + snapshotRows(s), 0), snapshotRows(whole));
  t.deepEqual(parts.map((p) => p.next ?? null).slice(-2, -1).map((x) => typeof x), ['number']);
  t.is(parts.at(-1)!.next, undefined);
  t.deepEqual(b.snapshot('big'), whole);
  t.deepEqual(b.unread('big'), a.unread('big'));
  await Promise.all([a.close(), b.close()]);
});

test('an export resumed with skip continues the snapshot where the last part ended', async (t) => {
  const { s: a } = await openStore();
  const { s: b } = await openStore();
  await chatty(a, 'big', 5000);
  const opts = { pageRows: 1000, pageChars: 64 * 1024 };
  // A copier that takes one page per request, as a newcomer does, resuming from `next`.
  const after: Record<string, number> = {};
  let skip: { user: string; rows: number } | undefined;
  for (let requests = 0; ; requests++) {
    t.true(requests < 100, 'the copy ends');
    let page: ExportPage | undefined;
    for await (const p of a.exportUsers((u) => u === 'big', { ...opts, after, ...(skip ? { skip } : {}) })) {
      page = p;
      break;
    }
    if (!page || (page.users.length === 0 && page.entries.length === 0)) break;
    await b.importData(page);
    for (const e of page.entries) after[e.user] = Math.max(after[e.user] ?? 0, e.seq);
    const last = page.users.at(-1);
    if (last?.next !== undefined) skip = { user: last.user, rows: last.next };
    else if (last) break;
  }
  t.deepEqual(b.snapshot('big'), a.snapshot('big'));
  await Promise.all([a.close(), b.close()]);
});

test('splitSnapshot and cutSnapshot: parts within the budget, rows in order, at least one row each', (t) => {
  const snap: UserSnapshot = {
    user: 'u', seq: 9, lastSeen: 5,
    convs: Array.from({ length: 50 }, (_, i) => ({ conv: `dm:u:x${i}`, lastSeq: i, ocum: i, readSeq: 0, readCum: 0 })),
    cursors: [{ device: 'phone', acked: 3 }],
    outbox: [{ mid: 'm1', dest: 'x1', item: { body: 'y'.repeat(5000) } }],
    cleared: [{ mid: 'm0', dest: 'x0' }],
  };
  const parts = splitSnapshot(snap, 2000);
  t.true(parts.length > 3);
  for (const p of parts) {
    t.true(snapshotRows(p) >= 1);
    t.true(snapshotRows(p) === 1 || snapshotChars(p) <= 2000);
    t.is(p.seq, 9);
    t.is(p.lastSeen, 5);
  }
  t.deepEqual(parts.flatMap((p) => p.convs), snap.convs);
  t.deepEqual(parts.flatMap((p) => p.cursors), snap.cursors);
  t.deepEqual(parts.flatMap((p) => p.outbox ?? []), snap.outbox);
  t.deepEqual(parts.flatMap((p) => p.cleared ?? []), snap.cleared);
  const { part, end } = cutSnapshot(snap, 10, 1e9, 5);
  t.is(end, 15);
  t.is(part.next, 15);
  t.deepEqual(part.convs, snap.convs.slice(10, 15));
  t.deepEqual(cutSnapshot(snap, 0, 1e9, Infinity).part, snap);
});
