// The group home (src/group-home/groups.ts) on a real store with a recording fan-out: posts past the
// group's rate or fan-out backlog are refused `rate_limited` and append nothing; the log gets a
// member snapshot every N events and a load reads only the latest snapshot and what follows;
// every message goes to exactly the members at its seq, also when the pump restarts behind a
// snapshot; typing to a large group is held to its frame budget.
import test from 'ava';
import pino from 'pino';
import { createGroups } from '../../src/group-home/groups.ts';
import type { Groups, GroupsComponents } from '../../src/group-home/groups.ts';
import { createMidGenerator, midTime } from '../../src/home/ids.ts';
import type { FanItem, GroupPost, PostResult } from '../../src/protocol/peer.ts';
import type { Store } from '../../src/store/index.ts';
import { openStore, removeStores } from '../helpers/store.ts';

test.after.always(removeStores);

type Home = {
  g: Groups; store: Store; fanned: FanItem[]; limited: string[]; snapshots: number; loaded: number[];
  /** Holds the fan-out until `release()`. */
  hold(): void; release(): void; relayed: number;
};

async function home(o: Partial<GroupsComponents> = {}): Promise<Home> {
  const { s } = await openStore();
  const h = { fanned: [] as FanItem[], limited: [] as string[], snapshots: 0, loaded: [] as number[], relayed: 0 } as Home;
  // Counts the rows each load of the log's events reads.
  const store: Store = Object.create(s);
  store.entriesByKey = async (user, prefix) => {
    const rows = await s.entriesByKey(user, prefix);
    h.loaded.push(rows.length);
    return rows;
  };
  let gate: PromiseWithResolvers<void> | undefined;
  h.hold = () => (gate = Promise.withResolvers());
  h.release = () => gate?.resolve();
  const mid = createMidGenerator('ABCDEFGH');
  h.store = store;
  h.g = createGroups({
    store, owns: () => true, replicated: async () => undefined, nextMid: mid, midTime, maxMembers: 20_000,
    fanout: async (items) => {
      if (gate) await gate.promise;
      h.fanned.push(...items.map((it) => ({ ...it, users: [...it.users] })));
    },
    ringChange: (ms) => new Promise((r) => setTimeout(r, ms)),
    relay: async (users) => void (h.relayed += users.length),
    onLimited: (r) => h.limited.push(r), onSnapshot: () => h.snapshots++,
    log: pino({ level: 'silent' }),
    ...o,
  });
  return h;
}

let n = 0;
const post = (from: string, cid: string, body = `body ${cid}`): GroupPost => ({ from, cid, mid: `M${String(++n).padStart(8, '0')}`, body, ts: Date.now() });
const refusedCode = (r: PostResult) => ('code' in r ? r.code : 'sent');

test('posts past the group\'s rate are rate_limited with a retry time and append nothing; the cid stays free', async (t) => {
  const h = await home({ limits: { rate: 1, burst: 3 } });
  await h.g.op('alice', 'create', 'g1', ['bob']);
  const before = h.store.lastSeq('g:g1');
  const rs = await h.g.post('g1', Array.from({ length: 6 }, (_, i) => post('alice', `r${i}`)));
  t.deepEqual(rs.map(refusedCode), ['sent', 'sent', 'sent', 'rate_limited', 'rate_limited', 'rate_limited']);
  t.regex((rs[3] as { message: string }).message, /over 1 messages\/s; retry in \d+ ms/);
  t.is(h.store.lastSeq('g:g1'), before + 3, 'only the three sent are in the log');
  t.deepEqual(h.fanned.map((f) => f.cid), ['r0', 'r1', 'r2']);
  t.deepEqual(h.limited, ['rate', 'rate', 'rate']);
  // Later, the same cid goes in as a new message (nothing was kept of the refused one).
  await new Promise((r) => setTimeout(r, 1100));
  const again = await h.g.post('g1', [post('alice', 'r3')]);
  t.is(refusedCode(again[0]!), 'sent');
  t.is(h.store.lastSeq('g:g1'), before + 4);
});

test('posts past the fan-out backlog (entries, or bytes of member copies) are rate_limited and append nothing', async (t) => {
  const h = await home({ limits: { backlog: 3, backlogBytes: 1 << 30 } });
  await h.g.op('alice', 'create', 'g2', ['bob', 'carol']);
  h.hold();
  const first = h.g.post('g2', [post('alice', 'b0'), post('alice', 'b1'), post('alice', 'b2')]);
  const rs = await h.g.post('g2', [post('alice', 'b3'), post('bob', 'b4')]);
  t.deepEqual(rs.map(refusedCode), ['rate_limited', 'rate_limited']);
  t.regex((rs[0] as { message: string }).message, /group g2 has 3 messages not yet handed to its members; retry in \d+ ms/);
  const seq = h.store.lastSeq('g:g2');
  h.release();
  t.deepEqual((await first).map(refusedCode), ['sent', 'sent', 'sent']);
  t.is(h.store.lastSeq('g:g2'), seq, 'the refused posts appended nothing');
  t.deepEqual(h.limited, ['backlog', 'backlog']);
  t.deepEqual((await h.g.post('g2', [post('alice', 'b3')])).map(refusedCode), ['sent'], 'room again once fanned out');

  // Bytes: each message counts (body + 256) bytes per member; 3 members.
  const hb = await home({ limits: { backlog: 1000, backlogBytes: 3 * (1000 + 256) * 2 } });
  await hb.g.op('alice', 'create', 'g3', ['bob', 'carol']);
  hb.hold();
  const big = 'x'.repeat(1000);
  const held = hb.g.post('g3', [post('alice', 'y0', big), post('alice', 'y1', big), post('alice', 'y2', big)]);
  const more = await hb.g.post('g3', [post('alice', 'y3', big)]);
  t.is(refusedCode(more[0]!), 'rate_limited');
  t.regex((more[0] as { message: string }).message, /KiB of member copies not yet handed/);
  hb.release();
  t.deepEqual((await held).map(refusedCode), ['sent', 'sent', 'rate_limited'], 'the third passed the bound within its batch');
});

test('a resend of a post already in the log is answered, not limited', async (t) => {
  const h = await home({ limits: { rate: 1, burst: 1 } });
  await h.g.op('alice', 'create', 'g4', ['bob']);
  const p = post('alice', 'once');
  t.deepEqual((await h.g.post('g4', [p])).map(refusedCode), ['sent']);
  const again = await h.g.post('g4', [{ ...p, mid: 'other' }]);
  t.deepEqual(again, [{ mid: p.mid }]);
});

test('the log gets member snapshots; a load reads the latest one and the events after it, and every message goes to the members at its seq', async (t) => {
  const every = 8;
  const h = await home({ snapshotEvery: every, limits: { rate: 1e6, burst: 1e6 } });
  const members = new Set(['owner']);
  await h.g.op('owner', 'create', 'g5', []);
  const expected = new Map<string, string[]>();
  for (let i = 0; i < 200; i++) {
    const u = `u${i % 23}`;
    if (members.has(u) && i % 3 === 0) {
      await h.g.op('owner', 'remove', 'g5', [u]);
      members.delete(u);
    } else if (!members.has(u)) {
      await h.g.op('owner', 'add', 'g5', [u]);
      members.add(u);
    }
    if (i % 2 === 0) {
      expected.set(`p${i}`, [...members]);
      t.deepEqual((await h.g.post('g5', [post('owner', `p${i}`)])).map(refusedCode), ['sent']);
    }
  }
  t.true(h.snapshots >= 10, `${h.snapshots} snapshots`);
  for (const f of h.fanned) t.deepEqual([...f.users].sort(), [...expected.get(f.cid!)!].sort(), `members of ${f.cid}`);
  t.is(h.fanned.length, expected.size);
  // A new home (or this one after a ring change) loads the group: one bounded read.
  h.loaded.length = 0;
  h.g.ringChanged();
  const info = (await h.g.op('owner', 'info', 'g5', []))!;
  t.deepEqual(new Set(info.members), members);
  t.is(info.owner, 'owner');
  t.is(h.loaded.length, 1);
  t.true(h.loaded[0]! <= every + 2, `a load read ${h.loaded[0]} events (a snapshot part and the events after it)`);
});

test('a pump that restarts behind a snapshot sends each message to the members at its seq', async (t) => {
  const h = await home({ snapshotEvery: 3, limits: { rate: 1e6, burst: 1e6 } });
  await h.g.op('a', 'create', 'g6', ['b']);
  h.hold();
  // While the fan-out is held: a message, membership changes that make a snapshot, more messages.
  const answers = [h.g.post('g6', [post('a', 'm1')])];
  await new Promise((r) => setTimeout(r, 50));
  await h.g.op('a', 'add', 'g6', ['c']);
  answers.push(h.g.post('g6', [post('a', 'm2')]));
  await new Promise((r) => setTimeout(r, 20));
  await h.g.op('a', 'remove', 'g6', ['b']);
  await h.g.op('a', 'add', 'g6', ['d']);
  answers.push(h.g.post('g6', [post('a', 'm3')]));
  await new Promise((r) => setTimeout(r, 20));
  t.true(h.snapshots >= 1);
  // The ring changed meanwhile (the group stayed here): the pump's state is rebuilt from disk.
  h.g.ringChanged();
  h.release();
  await Promise.all(answers);
  const by = Object.fromEntries(h.fanned.map((f) => [f.cid, [...f.users].sort()]));
  t.deepEqual(by, { m1: ['a', 'b'], m2: ['a', 'b', 'c'], m3: ['a', 'c', 'd'] });
  // Restarted again, now past the snapshot: the state comes from the snapshot the cursor passed.
  h.hold();
  const m4 = h.g.post('g6', [post('a', 'm4')]);
  await new Promise((r) => setTimeout(r, 20));
  await h.g.op('a', 'add', 'g6', ['e']);
  const m5 = h.g.post('g6', [post('a', 'm5')]);
  await new Promise((r) => setTimeout(r, 20));
  h.g.ringChanged();
  h.release();
  await Promise.all([m4, m5]);
  const late = Object.fromEntries(h.fanned.map((f) => [f.cid, [...f.users].sort()]));
  t.deepEqual(late.m4, ['a', 'c', 'd']);
  t.deepEqual(late.m5, ['a', 'c', 'd', 'e']);
});

test('typing to a 10,000-member group is held to its frame budget; a small group is not', async (t) => {
  const h = await home({ limits: { typingFrames: 10_000 } });
  const many = Array.from({ length: 9_999 }, (_, i) => `m${i}`);
  await h.g.op('boss', 'create', 'big', many);
  await h.g.cast('big', 'm1', { kind: 'typing' });
  await h.g.cast('big', 'm2', { kind: 'typing' });
  const e = await t.throwsAsync(h.g.cast('big', 'm3', { kind: 'typing' }));
  t.is((e as Error & { code: string }).code, 'rate_limited');
  t.regex(e!.message, /typing budget of 10000 frames\/s \(9999 members to notify\); retry in \d+ ms/);
  t.is(h.relayed, 2 * 9_999);
  t.deepEqual(h.limited, ['typing']);
  // Receipts are not typing: they go.
  await h.g.cast('big', 'm3', { kind: 'receipt', mid: 'x' });
  await h.g.op('boss', 'create', 'small', ['x', 'y']);
  for (let i = 0; i < 100; i++) await h.g.cast('small', 'x', { kind: 'typing' });
  t.pass();
});

test('a post whose fan-out outlasts the deadline is answered unavailable alone; a refusal in its batch stays a refusal', async (t) => {
  const h = await home({ deadlineMs: 200, limits: { rate: 1, burst: 1 } });
  await h.g.op('alice', 'create', 'g7', ['bob']);
  h.hold();
  const rs = await h.g.post('g7', [post('alice', 'slow'), post('alice', 'over')]);
  t.is(refusedCode(rs[0]!), 'unavailable');
  t.regex((rs[0] as { message: string }).message, /did not all take the message in time/);
  t.is(refusedCode(rs[1]!), 'rate_limited');
  h.release();
  // It stays in the log and goes out; a resend answers it once every member has it.
  while (!h.fanned.some((f) => f.cid === 'slow')) await new Promise((r) => setTimeout(r, 10));
  const again = await h.g.post('g7', [post('alice', 'slow')]);
  t.is(refusedCode(again[0]!), 'sent');
});
