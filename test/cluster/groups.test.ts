// Groups, typing and receipts (docs/PROTOCOL.md sections 6 and 7) on a three-node cluster:
// members, owners and the group's home on different nodes; every op and error; one order for all
// members; membership changes ordered with messages; a 2,000-member group; typing and receipts
// across nodes.
import test from 'ava';
import sqlite3 from 'sqlite3';
import { join } from 'node:path';
import { cleanup, readAll, retrying, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import { startBurners } from '../helpers/burner.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import type { ImClient } from '../../src/client/client.ts';
import { ImError } from '../../src/client/client.ts';
import type { Entry, MsgEvent, ReceiptEvent, TypingEvent } from '../../src/protocol/frames.ts';

const MAX_MEMBERS = 2500;
let cluster: TestCluster;
let n1: TestNode, n2: TestNode, n3: TestNode;
test.before(async () => {
  cluster = await startCluster(3, ['--max-members', String(MAX_MEMBERS), '--max-in-flight', '1000']); // up to 300 sends in flight
  [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
});
test.after.always(cleanup);

const ring = () => cluster.ring();
/** A name with the given prefix whose key (a user, or `g:` + it for a group) is homed on `node`. */
const on = (node: TestNode, prefix: string, group = false): string => cluster.nameOn(node, prefix, group);
async function refused(t: import('ava').ExecutionContext, p: Promise<unknown>, code: ImError['code']): Promise<void> {
  const e = await t.throwsAsync(p, { instanceOf: ImError });
  t.is((e as ImError).code, code, (e as Error).message);
}
const groupMsgs = (tl: Entry[], group: string) => tl.filter((e) => e.conv === `g:${group}`);

test('every group op and every error, with the group, its owner and members on different nodes', async (t) => {
  const g = on(n3, 'ops', true);
  const alice = on(n1, 'ops-a');
  const bob = on(n2, 'ops-b');
  const carol = on(n3, 'ops-c');
  const dave = on(n1, 'ops-d');
  const { c: a } = await n2.login(alice);
  const { c: b } = await n3.login(bob);
  const { c: cc } = await n1.login(carol);
  const { c: d } = await n1.login(dave);

  await refused(t, a.groupInfo(g), 'not_found');
  await refused(t, a.group('add', g, [bob]), 'not_found');
  await refused(t, a.group('remove', g, [bob]), 'not_found');
  await refused(t, a.groupLeave(g), 'not_found');
  await refused(t, a.sendGroup(g, 'nf1', 'nobody here'), 'not_found');
  await refused(t, a.typing({ group: g }), 'not_found');
  await refused(t, a.receipts(`g:${g}`), 'not_found');

  t.like(await a.group('create', g, [bob]), { op: 'ok' });
  await refused(t, b.group('create', g, [carol]), 'conflict');
  t.like(await b.groupInfo(g), { op: 'group', group: g, owner: alice, members: [alice, bob] });
  await refused(t, cc.groupInfo(g), 'forbidden');
  await refused(t, cc.sendGroup(g, 'x1', 'not a member'), 'forbidden');
  await refused(t, cc.typing({ group: g }), 'forbidden');
  await refused(t, cc.receipts(`g:${g}`), 'forbidden');
  await refused(t, cc.groupLeave(g), 'forbidden');
  await refused(t, b.group('add', g, [carol]), 'forbidden');
  await refused(t, b.group('remove', g, [alice]), 'forbidden');
  await refused(t, a.group('add', g, []), 'bad_request');
  await refused(t, a.group('remove', g, []), 'bad_request');
  await refused(t, a.group('add', g, ['no spaces']), 'bad_request');
  await refused(t, a.group('remove', g, [alice]), 'bad_request');
  await refused(t, a.group('add', g, Array.from({ length: MAX_MEMBERS + 1 }, (_, i) => `m${i}`)), 'too_large');
  await refused(t, a.group('add', g, Array.from({ length: MAX_MEMBERS - 1 }, (_, i) => `m${i}`)), 'too_large');
  t.deepEqual((await a.groupInfo(g)).members, [alice, bob], 'refused ops changed nothing');

  const before = Date.now();
  t.like(await a.group('add', g, [carol, dave, bob]), { op: 'ok' });
  const full = await cc.groupInfo(g);
  t.deepEqual(full.members, [alice, bob, carol, dave]);
  t.deepEqual(Object.keys(full.joined!).sort(), [alice, bob, carol, dave].sort());
  t.true(full.joined![carol]! >= before && full.joined![carol]! >= full.joined![alice]!, 'joined: when each member joined');
  const s1 = await cc.sendGroup(g, 'hello', 'hi all');
  t.like(await cc.sendGroup(g, 'hello', 'hi all'), { dup: true, mid: s1.mid, seq: s1.seq });
  t.like(await a.group('remove', g, [dave, 'never-a-member']), { op: 'ok' });
  await refused(t, d.sendGroup(g, 'x2', 'removed'), 'forbidden');
  // The owner leaves: the earliest-joined member (bob) owns the group.
  t.like(await a.groupLeave(g), { op: 'ok' });
  t.like(await b.groupInfo(g), { owner: bob, members: [bob, carol] });
  await refused(t, cc.group('add', g, [alice]), 'forbidden');
  await b.group('add', g, [alice]);
  t.deepEqual((await a.groupInfo(g)).members, [bob, carol, alice]);
  for (const c of [b, cc, a]) await c.groupLeave(g);
  await refused(t, b.groupInfo(g), 'not_found');
  t.like(await d.group('create', g, []), { op: 'ok' }, 'a deleted group can be created again');
  t.like(await d.groupInfo(g), { owner: dave, members: [dave] });

  // The message is in the timelines of the members of then, with the group set and no `to`.
  for (const [c, u] of [[a, alice], [b, bob], [cc, carol], [d, dave]] as [ImClient, string][]) {
    const got = groupMsgs(await readAll(c), g);
    t.deepEqual(got.map((e) => e.mid), [s1.mid], `${u}'s timeline`);
    t.like(got[0], { group: g, from: carol, body: 'hi all', conv: `g:${g}` });
    t.false('to' in got[0]!);
  }
  const own = groupMsgs(await readAll(cc), g)[0]!;
  t.is(own.seq, s1.seq, 'sent.seq is the entry in the sender\'s own timeline');
  // The group's home reports it, with nothing left to hand out.
  const view = await until(async () => {
    const v = (await (await fetch(`${n3.http}/cluster`)).json()) as { groups: { owned: number; fanoutBehind: number } };
    return v.groups.fanoutBehind === 0 ? v.groups : undefined;
  }, 'the group home to have handed everything out');
  t.true(view!.owned >= 1);
  t.regex((await n3.get('/metrics')).text, /^im_group_fanout_behind\{[^}]*\} 0$/m);
});

test('every member sees the group\'s messages in one order; unread, read and history cover groups', async (t) => {
  const g = on(n1, 'ord', true);
  const users = [on(n1, 'ord-a'), on(n2, 'ord-b'), on(n3, 'ord-c'), on(n2, 'ord-d')];
  const nodes = [n2, n3, n1, n1];
  const cs = await Promise.all(users.map((u, i) => nodes[i]!.login(u).then((r) => r.c)));
  await cs[0]!.group('create', g, users.slice(1));
  // Three senders on three nodes, 40 messages each, all in flight at once.
  // Resent on `unavailable` with the same cid, as a client does (a busy machine can outlast a deadline).
  const sends = await Promise.all(cs.slice(0, 3).flatMap((c, k) => Array.from({ length: 40 }, (_, i) => retrying(() => c.sendGroup(g, `o${k}-${i}`, `${k}:${i}`)))));
  const orders = await Promise.all(cs.map(async (c) => groupMsgs(await readAll(c), g).map((e) => e.body)));
  t.is(orders[0]!.length, 120);
  for (const o of orders.slice(1)) t.deepEqual(o, orders[0]);
  // Each connection's own messages in the order it sent them.
  for (let k = 0; k < 3; k++) {
    t.deepEqual(orders[0]!.filter((b) => b.startsWith(`${k}:`)), Array.from({ length: 40 }, (_, i) => `${k}:${i}`));
  }
  // Each sender's `sent` names its own copy.
  const tl0 = await readAll(cs[0]!);
  for (const s of sends.slice(0, 40)) t.is(tl0.find((e) => e.seq === s.seq)?.mid, s.mid);

  const conv = `g:${g}`;
  const d = cs[3]!;
  t.is((await d.unread()).convs[conv], 120, 'the silent member has every message unread');
  t.is((await cs[0]!.unread()).convs[conv], 80, 'a sender\'s own messages are not unread');
  const dTl = groupMsgs(await readAll(d), g);
  await d.read(conv, dTl[99]!.seq);
  t.is((await d.unread()).convs[conv], 20);
  const hist = await d.history(conv, undefined, 10);
  t.deepEqual(hist.msgs.map((e) => e.mid), dTl.slice(-10).reverse().map((e) => e.mid));
  t.true(hist.more);
});

test('a member added mid-stream gets exactly the later messages; a removed one nothing after', async (t) => {
  const g = on(n2, 'mid', true);
  const owner = on(n3, 'mid-o');
  const early = on(n1, 'mid-e');
  const late = on(n3, 'mid-l');
  const { c: o } = await n1.login(owner);
  const { c: e } = await n2.login(early);
  const { c: l } = await n3.login(late);
  await o.group('create', g, [early]);
  // Sends and changes resent on `unavailable` as a client does (both are idempotent).
  const sending = Array.from({ length: 60 }, (_, i) => retrying(() => o.sendGroup(g, `s${i}`, String(i))));
  await retrying(() => o.sendGroup(g, 'mark1', 'before changes'));
  const changes = Promise.all([retrying(() => o.group('add', g, [late])), retrying(() => o.group('remove', g, [early]))]);
  const more = Array.from({ length: 60 }, (_, i) => retrying(() => o.sendGroup(g, `t${i}`, String(60 + i))));
  await Promise.all([...sending, changes, ...more]);
  const all = groupMsgs(await readAll(o), g).map((m) => m.body);
  const seenEarly = groupMsgs(await readAll(e), g).map((m) => m.body);
  const seenLate = groupMsgs(await readAll(l), g).map((m) => m.body);
  t.is(all.length, 121);
  // Both changes were made in one batch, between two messages: early has a prefix of the
  // order, late the rest; together exactly the whole, with no message both or neither had.
  t.deepEqual(seenEarly, all.slice(0, seenEarly.length));
  t.deepEqual(seenLate, all.slice(all.length - seenLate.length));
  t.is(seenEarly.length + seenLate.length, all.length);
  t.true(seenEarly.includes('before changes'));
  t.false(seenLate.includes('before changes'));
  t.true(seenLate.includes('119'));
  // Sent after the changes were confirmed: only the new member has it.
  await o.sendGroup(g, 'after', 'after');
  t.true(groupMsgs(await readAll(l), g).some((m) => m.body === 'after'));
  t.false(groupMsgs(await readAll(e), g).some((m) => m.body === 'after'));
});

/** The users whose timeline holds `mid`, on one node's database (home and replica copies). */
async function holders(n: TestNode, mid: string): Promise<string[]> {
  const db = new sqlite3.Database(join(n.data, 'store.db'), sqlite3.OPEN_READONLY);
  try {
    return await new Promise<string[]>((ok, ko) => db.all<{ user: string }>('SELECT user FROM entries WHERE mid = ?', [mid], (e, rows) => (e ? ko(e) : ok(rows.map((r) => r.user)))));
  } finally {
    db.close();
  }
}

test('a 2,000-member group message reaches every member\'s timeline on its home and replica', async (t) => {
  const g = on(n2, 'big', true);
  const owner = on(n1, 'big-o');
  const members = Array.from({ length: 1999 }, (_, i) => `big-m${i}`);
  const { c: o } = await n3.login(owner);
  const watcher = members.find((m) => ring().owner(m) === n1.opts.name)!;
  const { c: w } = await n2.login(watcher);
  await o.group('create', g, members);
  t.is((await o.groupInfo(g)).members.length, 2000);
  const pushed = w.waitFor<MsgEvent>((f) => f.op === 'msg' && f.conv === `g:${g}`, 15_000);
  const sent = await o.sendGroup(g, 'big1', 'to two thousand');
  t.like(await pushed, { mid: sent.mid, from: owner, group: g });
  const r = ring();
  const copies = new Map<string, number>();
  for (const n of cluster.nodes) for (const u of await holders(n, sent.mid)) copies.set(u, (copies.get(u) ?? 0) + 1);
  const missing = [owner, ...members].filter((u) => copies.get(u) !== 2);
  t.deepEqual(missing.slice(0, 5), [], `${missing.length} members without two copies`);
  for (const n of cluster.nodes) {
    const here = new Set(await holders(n, sent.mid));
    const owned = [owner, ...members].filter((u) => r.owner(u) === n.opts.name);
    t.true(owned.every((u) => here.has(u)), `${n.opts.name} holds the copy of each member it is home of`);
  }
});

test('typing reaches the other party\'s and the members\' devices on other nodes, rate-limited', async (t) => {
  const g = on(n3, 'ty', true);
  const alice = on(n1, 'ty-a');
  const bob = on(n2, 'ty-b');
  const carol = on(n3, 'ty-c');
  const { c: a } = await n3.login(alice);
  const { c: b } = await n1.login(bob);
  const { c: b2 } = await n3.login(bob, 'd2');
  const { c: cc } = await n2.login(carol);
  await a.group('create', g, [bob, carol]);
  const dm = `dm:${[alice, bob].sort().join(':')}`;
  const both = [b, b2].map((c) => c.waitFor<TypingEvent>((f) => f.op === 'typing' && f.conv === dm));
  t.like(await a.typing({ to: bob }), { op: 'ok' });
  for (const p of both) t.like(await p, { op: 'typing', from: alice, conv: dm });
  const inGroup = [b, cc].map((c) => c.waitFor<TypingEvent>((f) => f.op === 'typing' && f.conv === `g:${g}`));
  let echoed = false;
  a.on('event', (f) => {
    if (f.op === 'typing') echoed = true;
  });
  await a.typing({ group: g });
  for (const p of inGroup) t.like(await p, { from: alice, conv: `g:${g}` });
  // Never stored: nothing new in anyone's timeline.
  t.is(groupMsgs(await readAll(b), g).length, 0);
  const burst = await Promise.allSettled(Array.from({ length: 8 }, () => a.typing({ to: bob })));
  t.true(burst.some((r) => r.status === 'rejected' && (r.reason as ImError).code === 'rate_limited'));
  // Without an id, notices over the limit are dropped silently; the connection stays usable.
  let errors = 0;
  a.on('event', (f) => {
    if (f.op === 'error') errors++;
  });
  for (let i = 0; i < 5; i++) a.post({ op: 'typing', to: bob });
  t.like(await a.request({ op: 'ping' }), { op: 'pong' });
  t.is(errors, 0);
  t.false(echoed, 'the typer does not get its own notice');
});

test('receipts: events to the other party and members when a read cursor moves, and the query', async (t) => {
  const g = on(n1, 'rc', true);
  const alice = on(n2, 'rc-a');
  const bob = on(n3, 'rc-b');
  const carol = on(n1, 'rc-c');
  const { c: a } = await n1.login(alice);
  const { c: b } = await n2.login(bob);
  const { c: cc } = await n3.login(carol);
  const dm = `dm:${[alice, bob].sort().join(':')}`;
  const m1 = await a.send(bob, 'r1', 'one');
  const m2 = await a.send(bob, 'r2', 'two');
  const got = a.waitFor<ReceiptEvent>((f) => f.op === 'receipt' && f.conv === dm);
  const bTl = await readAll(b);
  await b.read(dm, bTl.find((e) => e.mid === m1.mid)!.seq);
  t.like(await got, { by: bob, mid: m1.mid });
  t.deepEqual((await a.receipts(dm)).read, { [bob]: m1.mid });
  await refused(t, cc.receipts(dm), 'forbidden');

  await a.group('create', g, [bob, carol]);
  const s = await b.sendGroup(g, 'gr1', 'group hello');
  await b.sendGroup(g, 'gr2', 'group again');
  const seen = [a, b].map((c) => c.waitFor<ReceiptEvent>((f) => f.op === 'receipt' && f.conv === `g:${g}`));
  const cTl = groupMsgs(await readAll(cc), g);
  await cc.read(`g:${g}`, cTl[0]!.seq);
  for (const p of seen) t.like(await p, { by: carol, mid: s.mid });
  await a.read(`g:${g}`, 1e9);
  const r = await b.receipts(`g:${g}`);
  t.is(r.read[carol], s.mid);
  t.is(r.read[alice], groupMsgs(await readAll(a), g).at(-1)!.mid);
  t.false(bob in r.read, 'a member who read nothing of it is left out');
  // bob reads the 1:1 conversation to its end: alice's devices hear of the newest message.
  const again = a.waitFor<ReceiptEvent>((f) => f.op === 'receipt' && f.conv === dm && f.mid === m2.mid);
  await b.read(dm, 1e9);
  t.like(await again, { by: bob, mid: m2.mid });
});

test('a user not homed anywhere near still gets group messages after logging in elsewhere', async (t) => {
  const g = on(n2, 'late', true);
  const owner = on(n3, 'late-o');
  const member = on(n1, 'late-m');
  const { c: o } = await n1.login(owner);
  await o.group('create', g, [member]);
  const sent = await o.sendGroup(g, 'l1', 'while offline');
  const { c: m } = await n3.login(member);
  await until(async () => groupMsgs(await readAll(m), g).some((e) => e.mid === sent.mid), 'the offline member\'s copy');
  t.pass();
});

// Serial: ava runs it before the file's other tests, so its burners load the machine for it alone.
test.serial('one connection mixing 1:1 and group messages keeps its order at a recipient of both', async (t) => {
  // With the cores kept busy: the race this found (the outbox replay handing over a copy that
  // waited behind a group post) needed a send to outlast the replay timer.
  const burners = startBurners();
  t.teardown(() => burners.stop());
  const g = on(n3, 'mix', true);
  const alice = on(n1, 'mix-a');
  const bob = on(n2, 'mix-b');
  const { c: a } = await n2.login(alice);
  const { c: b } = await n3.login(bob);
  await a.group('create', g, [bob]);
  // All in flight at once, alternating in runs: 1:1, 1:1, group, group, 1:1, group, ...
  const plan = Array.from({ length: 60 }, (_, i) => (i % 5 < 2 || i % 7 === 0 ? 'dm' : 'group'));
  // Resent with the same cid after `unavailable`, as a client does (a busy machine can take
  // longer than the router's deadline); a resend joins the send still under way.
  await Promise.all(plan.map((k, i) => retrying(() => (k === 'dm' ? a.send(bob, `x${i}`, String(i)) : a.sendGroup(g, `x${i}`, String(i))))));
  const got = (await readAll(b)).filter((e) => e.from === alice).map((e) => Number(e.body));
  t.deepEqual(got, plan.map((_, i) => i));
});

test('300 group messages of 16 KiB in flight at once from one connection all go through, in order', async (t) => {
  const g = on(n1, 'fat', true);
  const alice = on(n2, 'fat-a');
  const bob = on(n3, 'fat-b');
  const { c: a } = await n3.login(alice);
  const { c: b } = await n1.login(bob);
  await a.group('create', g, [bob]);
  const body = (i: number) => `${i} `.padEnd(16384, 'x');
  await Promise.all(Array.from({ length: 300 }, (_, i) => retrying(() => a.sendGroup(g, `f${i}`, body(i)))));
  const got = groupMsgs(await readAll(b), g).map((e) => Number(e.body.slice(0, e.body.indexOf(' '))));
  t.deepEqual(got, Array.from({ length: 300 }, (_, i) => i));
});
