// A sender's home that crashes after storing a message but before the recipient's home had its
// copy hands the copy over after restarting, with no client retry (the outbox); and if it never
// comes back, the replica that becomes the sender's home does (the outbox is replicated).
import test from 'ava';
import { cleanup, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import type { ImClient } from '../../src/client/client.ts';
import { startCluster } from '../helpers/cluster.ts';
import { createRing } from '../../src/ring/index.ts';

test.after.always(cleanup);

test('a copy stuck when its sender home dies reaches the recipient once that home is back', async (t) => {
  const cluster = await startCluster(3);
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  const ring = createRing(['n1', 'n2', 'n3']);
  const on = (node: TestNode, prefix: string) => {
    for (let i = 0; ; i++) if (ring.owner(`${prefix}${i}`) === node.opts.name) return `${prefix}${i}`;
  };
  const alice = on(a, 'ob-alice');
  const bob = on(b, 'ob-bob');
  // alice's own timeline is read at her home (a); bob's at his (b), through the neutral node c.
  const { c: sender } = await a.login(alice, 'phone');
  const { c: reader } = await a.login(alice, 'tablet');

  // A conversation under way: bob's home has admitted alice's messages (a yes her home keeps).
  await sender.send(bob, 'before-1', 'hello bob');
  await b.kill(); // bob's home is down: the copy cannot be handed over (and nothing is in flight to it)
  void sender.send(bob, 'stuck-1', 'across a crash').catch(() => undefined);
  await until(async () => (await reader.sync(0)).msgs.some((m) => m.body === 'across a crash'), "alice's entry committed at her home");
  await a.kill(); // the sender's home dies too, before the copy was handed over
  // Both come back before anyone declared them dead, so bob's home is b again.
  await b.start(b.port);
  await a.start(a.port);
  await cluster.converged(20_000);

  const viewer = await c.client();
  await viewer.login({ token: await token(bob), device: 'check' });
  const got = await until(async () => {
    try {
      return (await viewer.sync(0)).msgs.find((m) => m.body === 'across a crash');
    } catch {
      return undefined; // bob's home may still be settling after its freeze
    }
  }, "bob's copy", 20_000, 200).catch((e) => {
    t.log(a.log.filter((l) => /outbox|ring|join|deliver|warn/i.test(l)).slice(-30).join('\n'));
    throw e;
  });
  t.is(got!.from, alice);
  // The copy can be visible at bob's home a moment before the replaying node logs it.
  await until(() => a.log.some((l) => l.includes('outbox replayed')), 'the restarted home to log its outbox replay');
  // n1 was started without --join (it founded the cluster): on restart it rejoined the members
  // it remembered instead of founding a cluster of its own that would own every key.
  t.true(a.log.some((l) => l.includes('rejoining the members this node knew')));
  t.false(a.log.some((l) => l.includes('starting a new cluster alone')));
});

// The sender's home keeps the copy in its outbox until the recipient's home has it, and that row
// is replicated with the sender's entry. Were it only on the home, a home that dies for good
// between storing the entry (on every copy: the sender's other devices already see it) and
// handing the copy over would leave the two sides of the conversation different forever,
// unless the client happened to resend. Here the client cannot: its connection died with the home.
test('a copy stuck when its sender home dies for good is handed over by the replica that becomes home', async (t) => {
  const cluster = await startCluster(3);
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  const ring = cluster.ring();
  let alice = '';
  for (let i = 0; !alice; i++) if (ring.owners(`obr-alice${i}`, 2).join() === 'n1,n2') alice = `obr-alice${i}`;
  const bob = cluster.nameOn(c, 'obr-bob');
  t.is(createRing(['n2', 'n3']).owner(bob), 'n3', "bob's home stays n3 once n1 is gone");
  // The sender is on its home's gateway: when a dies, so does the send (no retry anywhere).
  const { c: sender } = await a.login(alice, 'phone');
  const { c: tablet } = await b.login(alice, 'tablet');

  await sender.send(bob, 'before-2', 'hello bob'); // a conversation under way (admitted by bob's home)
  await c.kill(); // bob's home is down: the copy cannot be handed over
  void sender.send(bob, 'stuck-2', 'past a home that never comes back').catch(() => undefined);
  // Readable on alice's tablet only once her replica (b) has the entry.
  await until(async () => (await tablet.sync(0)).msgs.some((m) => m.body === 'past a home that never comes back'), "alice's entry on every copy");
  await a.kill(); // the sender's home dies for good, before the copy was handed over
  await c.start(c.port);

  // b alone heard no majority (it turned clients away, goaway minority) until c was back.
  let viewer: ImClient | undefined;
  const copies = await until(async () => {
    try {
      if (!viewer || viewer.closed) {
        viewer = await b.client();
        await viewer.login({ token: await token(bob), device: 'check' });
      }
      const got = (await viewer.sync(0)).msgs.filter((m) => m.body === 'past a home that never comes back');
      return got.length ? got : undefined;
    } catch {
      return undefined; // bob's home may be settling
    }
  }, "bob's copy, handed over by alice's new home", 30_000, 200).catch((e) => {
    t.log(b.log.filter((l) => /outbox|ring changed|died|warn/i.test(l)).slice(-20).join('\n'));
    throw e;
  });
  t.is(copies!.length, 1);
  t.is(copies![0]!.from, alice);
  await until(() => b.log.some((l) => l.includes('outbox replayed')), 'the new home to log its outbox replay');
});

// A contact change goes to the other user's home through the same outbox: its row must survive
// the sender home's crash and the replay that follows (a replay drops rows whose entry is gone
// from the sender's log, and a copy once had a mid of its own, so it was dropped as if replaced).
test('a contact change stuck when its sender home dies reaches the other side once that home is back', async (t) => {
  const cluster = await startCluster(3);
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  const alice = cluster.nameOn(a, 'oc-alice');
  const bob = cluster.nameOn(b, 'oc-bob');
  type Req = Parameters<ImClient['request']>[0];
  const state = async (cl: ImClient, other: string) =>
    ((await cl.request({ op: 'contacts' } as Req)) as unknown as { contacts: { user: string; state: string }[] }).contacts.find((k) => k.user === other)?.state ?? 'none';
  const { c: ac } = await c.login(alice);
  const { c: bc } = await c.login(bob);
  await ac.request({ op: 'contact_request', user: bob } as Req);
  await until(async () => (await state(bc, alice)) === 'pending', 'the request at bob');
  await bc.request({ op: 'contact_accept', user: alice } as Req);
  await until(async () => (await state(ac, bob)) === 'friend', 'friends at alice');

  await b.kill(); // bob's home is down: the removal cannot be handed over
  await ac.request({ op: 'contact_remove', user: bob } as Req); // needs no admission: ok once durable at alice's home
  await a.kill(); // alice's home dies too, with the copy still to hand over
  await b.start(b.port);
  await a.start(a.port);
  await cluster.converged(20_000);
  const viewer = await c.client();
  await viewer.login({ token: await token(bob), device: 'check' });
  await until(async () => {
    try {
      return (await state(viewer, alice)) === 'none';
    } catch {
      return false; // bob's home may still be settling
    }
  }, 'the removal at bob', 30_000, 200).catch((e) => {
    t.log(a.log.filter((l) => /outbox|social|warn/i.test(l)).slice(-20).join('\n'));
    throw e;
  });
  t.pass();
});
