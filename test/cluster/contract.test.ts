// The client protocol (docs/PROTOCOL.md) with the parties on different nodes of a three-node cluster.
import test from 'ava';
import { cleanup, readAll, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import type { MsgEvent, PresenceEvent, ServerFrame } from '../../src/protocol/frames.ts';

let cluster: TestCluster;
let n1: TestNode, n2: TestNode, n3: TestNode;
test.before(async () => {
  cluster = await startCluster(3, ['--max-in-flight', '1000']); // 300 sends in flight on one connection
  [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
});
test.after.always(cleanup);

/** A user name whose home (by the cluster's ring) is the given node. */
const userOn = (node: TestNode, prefix: string): string => cluster.nameOn(node, prefix);

test('a message between users homed and connected on different nodes', async (t) => {
  const alice = userOn(n1, 'alice');
  const bob = userOn(n3, 'bob');
  // alice connects to n2 (neither home), bob to n1 (alice's home, not his)
  const { c: a } = await n2.login(alice);
  const { c: b } = await n1.login(bob);
  const got = b.waitFor<MsgEvent>((f) => f.op === 'msg');
  const echo = a.waitFor<MsgEvent>((f) => f.op === 'msg');
  const sent = await a.send(bob, 'x1', 'hello across the ring');
  t.like(await got, { mid: sent.mid, from: alice, to: bob, body: 'hello across the ring', seq: 1 });
  t.like(await echo, { mid: sent.mid, seq: sent.seq });
  t.deepEqual((await b.sync(0)).msgs.map((m) => m.mid), [sent.mid]);
  t.deepEqual((await b.unread()).convs, { [`dm:${[alice, bob].sort().join(':')}`]: 1 });
});

test('dup from another device on another node; order with 300 in flight across nodes', async (t) => {
  const alice = userOn(n2, 'ord-a');
  const bob = userOn(n3, 'ord-b');
  const { c: a1 } = await n1.login(alice, 'phone');
  const { c: a2 } = await n3.login(alice, 'laptop');
  const { c: b } = await n2.login(bob);
  const first = await a1.send(bob, 'same', 'once');
  const again = await a2.send(bob, 'same', 'once');
  t.like(again, { dup: true, mid: first.mid, seq: first.seq });
  const sends = Array.from({ length: 300 }, (_, i) => a1.send(bob, `o${i}`, String(i)));
  const sent = await Promise.all(sends);
  t.deepEqual(sent.map((s) => s.seq), Array.from({ length: 300 }, (_, i) => i + 2));
  const timeline = await readAll(b);
  t.deepEqual(timeline.map((e) => e.body), ['once', ...Array.from({ length: 300 }, (_, i) => String(i))]);
  t.deepEqual(timeline.map((e) => e.seq), Array.from({ length: 301 }, (_, i) => i + 1));
});

test('replay on another node from the acked cursor, then live, no gap no repeat', async (t) => {
  const alice = userOn(n1, 'rp-a');
  const bob = userOn(n2, 'rp-b');
  const { c: a } = await n3.login(alice);
  for (let i = 1; i <= 5; i++) await a.send(bob, `p${i}`, `m${i}`);
  const { c: b1 } = await n1.login(bob, 'phone');
  await b1.ack(3);
  b1.close();
  const more = Array.from({ length: 30 }, (_, i) => a.send(bob, `q${i}`, `n${i}`));
  const b2 = await n3.client();
  const seen: number[] = [];
  b2.on('msg', (m) => seen.push(m.seq));
  const w = await b2.login({ token: await token(bob), device: 'phone' });
  t.is(w.acked, 3);
  await Promise.all(more);
  await until(() => seen.length >= 32, 'all entries after the cursor');
  t.deepEqual(seen, Array.from({ length: 32 }, (_, i) => i + 4));
});

test('history, read and unread across nodes; the read event reaches a device on another node', async (t) => {
  const alice = userOn(n3, 'hr-a');
  const bob = userOn(n1, 'hr-b');
  const conv = `dm:${[alice, bob].sort().join(':')}`;
  const { c: a } = await n2.login(alice);
  const { c: b1 } = await n2.login(bob, 'phone');
  const { c: b2 } = await n3.login(bob, 'laptop');
  for (let i = 1; i <= 4; i++) await a.send(bob, `h${i}`, `m${i}`);
  const h = await b1.history(conv, undefined, 3);
  t.deepEqual(h.msgs.map((m) => m.body), ['m4', 'm3', 'm2']);
  t.true(h.more);
  const ev = b2.waitFor((f) => f.op === 'read');
  await b1.read(conv, 2);
  t.deepEqual(await ev, { op: 'read', conv, seq: 2 });
  const u = await b2.unread();
  t.deepEqual(u.convs, { [conv]: 2 });
  t.is(u.total, 2);
  const e = await t.throwsAsync(b1.history(`dm:${[alice, 'zz-other'].sort().join(':')}`));
  t.regex(e!.message, /^forbidden/);
});

test('presence and watch across nodes', async (t) => {
  const watcher = userOn(n1, 'pw-w');
  const target = userOn(n2, 'pw-t');
  const { c: w } = await n3.login(watcher);
  const events: PresenceEvent[] = [];
  w.on('event', (f: ServerFrame) => {
    if (f.op === 'presence') events.push(f as PresenceEvent);
  });
  await w.request({ op: 'watch', users: [target] });
  const { c: t1 } = await n1.login(target, 'one');
  await until(() => events.length === 1, 'online event');
  const p = await w.presence([target, watcher]);
  t.deepEqual(p.users[target], { online: true, devices: ['one'] });
  t.deepEqual(p.users[watcher], { online: true, devices: ['d1'] });
  t1.close();
  await until(() => events.length === 2, 'offline event');
  t.deepEqual(events.map((e) => e.online), [true, false]);
  const after = await w.presence([target]);
  t.false(after.users[target]!.online);
  t.is(typeof (after.users[target] as { last_seen: number }).last_seen, 'number');
});

test('a second login of the same device on another node replaces the first', async (t) => {
  const user = userOn(n3, 'rep');
  const { c: first } = await n1.login(user, 'phone');
  const goaway = first.waitFor((f) => f.op === 'goaway');
  const { c: second } = await n2.login(user, 'phone');
  t.deepEqual(await goaway, { op: 'goaway', reason: 'replaced' });
  await first.closedWith();
  const p = await second.presence([user]);
  t.deepEqual(p.users[user], { online: true, devices: ['phone'] });
});

test.serial('every node computes the same owners and serves /cluster with all members up', async (t) => {
  const views = await Promise.all(cluster.nodes.map((n) => cluster.view(n)));
  const versions = new Set(views.map((v) => v!.ring.version));
  t.is(versions.size, 1);
  for (const v of views) {
    t.deepEqual(v!.members.map((m) => [m.name, m.state]), [['n1', 'up'], ['n2', 'up'], ['n3', 'up']]);
    t.is(v!.ring.vnodes, 160);
    t.regex(v!.members[0]!.url, /^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
  }
  // a call from n1's gateway to a user homed on n2 is a forward, and shows in n1's peer traffic
  const { c } = await n1.login(userOn(n2, 'metrics'));
  await c.sync(0);
  const m = await n1.get('/metrics');
  t.regex(m.text, /im_peer_frames\{peer="n2",dir="out",node="n1"\} [1-9]\d*/);
  t.regex(m.text, /im_peer_forwards_total\{kind="forward",node="n1"\} [1-9]\d*/);
});
