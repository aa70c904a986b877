// Entries a home commits while it holds no session for a connected device are pushed to nobody.
// The gateway catches that device up once the session is registered there again: the home
// answers the registration with the user's newest seq, and the gateway reads what it did not
// push. Here the gap is made on purpose: the device's gateway is frozen (SIGSTOP) until the home
// expires the session, messages are sent to the device, and the gateway resumes. And as it
// happens in a failover: the home dies and the ring moves the user while messages keep coming.
// The device is a raw client, which repairs nothing by itself: what it gets, the gateway pushed.
import test from 'ava';
import { cleanup, retrying, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import type { MsgEvent } from '../../src/protocol/frames.ts';
import { startCluster } from '../helpers/cluster.ts';

test.after.always(cleanup);

const PRESENCE_TIMEOUT_MS = 1500;

test('a gateway frozen past the presence timeout catches its device up with what the home committed meanwhile, each seq once, in order', async (t) => {
  t.timeout(90_000);
  // A long suspicion window: the frozen gateway stays a member, so no ring change is involved.
  const cluster = await startCluster(3, ['--presence-timeout', String(PRESENCE_TIMEOUT_MS), '--suspect-after', '60000', '--confirm-timeout', '60000']);
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  const ring = cluster.ring();
  // bob and alice have no copy on the gateway that freezes, so every send is confirmed meanwhile.
  const away = (prefix: string, home: TestNode) => {
    for (let i = 0; ; i++) {
      const owners = ring.owners(`${prefix}${i}`, 2);
      if (owners[0] === home.opts.name && !owners.includes(b.opts.name!)) return `${prefix}${i}`;
    }
  };
  const bob = away('cu-bob', a);
  const alice = away('cu-alice', c);
  const { c: device } = await b.login(bob, 'phone');
  const got: MsgEvent[] = [];
  device.on('msg', (m: MsgEvent) => got.push(m));
  const { c: sender } = await c.login(alice, 'laptop');
  await sender.send(bob, 'cu-0', 'before');
  await until(() => got.length === 1, 'bob to get the first message live');

  b.proc!.kill('SIGSTOP');
  try {
    await until(async () => (await sender.presence([bob])).users[bob]?.online === false, "bob's home to expire his session", 20_000, 100);
    for (let i = 1; i <= 5; i++) await sender.send(bob, `cu-${i}`, `while frozen ${i}`);
    t.is(got.length, 1, 'nothing reached the frozen gateway');
  } finally {
    b.proc!.kill('SIGCONT');
  }
  // The gateway renews, the home lacks the session, the gateway registers it again and reads
  // the five entries it never pushed.
  await until(() => got.length >= 6, () => `bob to be caught up (has ${got.map((m) => m.seq).join(',')})`, 20_000);
  await sender.send(bob, 'cu-6', 'after');
  await until(() => got.length >= 7, 'bob to get the next message live');
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7], 'each seq once, in order, no gap');
  t.deepEqual(got.map((m) => m.body), ['before', ...[1, 2, 3, 4, 5].map((i) => `while frozen ${i}`), 'after']);
  const metrics = (await b.get('/metrics')).text;
  t.regex(metrics, /im_push_catchups_total\{[^}]*reason="registered"[^}]*\} [1-9]/);
});

test('a device whose home dies while messages keep coming gets every one, each once, in order, from its surviving gateway', async (t) => {
  t.timeout(90_000);
  const cluster = await startCluster(3);
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  const bob = cluster.nameOn(a, 'cf-bob');
  const alice = cluster.nameOn(c, 'cf-alice');
  const { c: device } = await b.login(bob, 'phone');
  const got: MsgEvent[] = [];
  device.on('msg', (m: MsgEvent) => got.push(m));
  const { c: sender } = await c.login(alice, 'laptop');
  const N = 40;
  const sending = (async () => {
    for (let i = 0; i < N; i++) {
      await retrying(() => sender.send(bob, `cf-${i}`, `m${i}`));
      if (i === 10) void a.kill();
    }
  })();
  await sending;
  await until(() => got.length >= N, () => `bob to get ${N} (has ${got.length}: ${got.map((m) => m.seq).join(',')})`, 30_000);
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(got.map((m) => m.body), Array.from({ length: N }, (_, i) => `m${i}`), 'each once, in order');
  t.deepEqual(got.map((m) => m.seq), Array.from({ length: N }, (_, i) => i + 1), 'no gap');
});
