// Five nodes on five "hosts" (network namespaces, test/helpers/netns.ts): the ring forms over the
// peer network with each node gossiping only its announce address, clients reach every node on its
// own client address, and one node cut off from its peers is declared dead, then comes back.
// Needs root and iproute2; elsewhere a single test says so and passes.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cleanup, retrying, until } from '../helpers/node.ts';
import { CLIENT_PORT, createBed, listNamespaces, netnsWhyNot, P2P_PORT } from '../helpers/netns.ts';
import type { Bed } from '../helpers/netns.ts';
import type { MsgEvent } from '../../src/protocol/frames.ts';

type View = { node: string; joined: boolean; members: { name: string; peer: string; url: string; addrs?: string[]; state: string }[] };

const why = await netnsWhyNot();
let bed: Bed | undefined;
test.after.always(async () => {
  await bed?.destroy();
  await cleanup();
});

if (why) {
  test('network-namespace tests need root and iproute2: not run here', (t) => {
    t.log(`network namespaces cannot be created here (${why}): the multi-host tests did not run`);
    t.pass();
  });
} else {
  test('five nodes in five namespaces: ring on announce addresses, a message n1 → n5, n3 isolated is declared dead and healed comes back', async (t) => {
    bed = await createBed({ nodes: 5, sideA: [1, 2] });
    const b = bed;
    const views = async () => (await Promise.all(b.nodes.map((n) => b.cluster.view(n)))) as (View | undefined)[];

    // Every node lists the five as up, each with its client URL and only its peer-network address.
    for (const v of await views()) {
      t.truthy(v?.joined, `${v?.node} joined`);
      t.deepEqual(v!.members.filter((m) => m.state === 'up').map((m) => m.name).sort(), ['n1', 'n2', 'n3', 'n4', 'n5'], `${v!.node}'s view`);
      for (const m of v!.members) {
        const h = b.host(Number(m.name.slice(1)));
        t.is(m.url, `ws://${h.clientIp}:${CLIENT_PORT}/ws`, `${v!.node} sees ${m.name}'s URL`);
        t.deepEqual(m.addrs, [`/ip4/${h.peerIp}/tcp/${P2P_PORT}/p2p/${m.peer}`], `${v!.node} sees ${m.name} gossip only its announce address`);
      }
    }
    for (const [k, n] of b.nodes.entries()) {
      const line = n.log.map((l) => { try { return JSON.parse(l) as { msg?: string; addrs?: string[] }; } catch { return {}; } }).find((j) => j.msg === 'peer host listening');
      t.deepEqual(line?.addrs, [n.p2p], `n${k + 1}'s peer host announces one address`);
      t.true(n.p2p.startsWith(`/ip4/10.77.0.${k + 1}/tcp/${P2P_PORT}/p2p/`), n.p2p);
    }

    // A user on node 1's client address writes to a user on node 5's.
    const { c: alice } = await b.node(1).login('alice');
    const { c: bob } = await b.node(5).login('bob');
    t.true(b.node(1).url.startsWith(`ws://${b.host(1).clientIp}:`));
    const got = bob.waitFor<MsgEvent>((f) => f.op === 'msg', 10_000);
    const sent = await retrying(() => alice.send('bob', 'c1', 'across hosts'));
    t.like(await got, { mid: sent.mid, from: 'alice', to: 'bob', body: 'across hosts' });

    // n3 loses its peer link: the four others declare it dead; its client link still answers.
    const cut = Date.now();
    await b.isolate(3);
    await until(async () => {
      const vs = await views();
      return [0, 1, 3, 4].every((k) => vs[k]?.members.find((m) => m.name === 'n3')?.state === 'dead');
    }, 'n1, n2, n4 and n5 to declare n3 dead', 20_000, 100);
    const deadAfter = Date.now() - cut;
    t.log(`n3 declared dead by all four others ${deadAfter} ms after its link went down`);
    t.true(deadAfter < 15_000, `declared dead after ${deadAfter} ms`);
    t.truthy(await b.cluster.view(b.node(3)), 'n3 still answers on its client address');

    // Healed, n3 is back in the ring on every node.
    await b.heal(3);
    const healed = Date.now();
    await b.cluster.converged(90_000);
    t.log(`ring converged with n3 ${Date.now() - healed} ms after the heal`);
    t.deepEqual(b.faults.map((f) => [f.op, f.target]), [['isolate', 3], ['heal', 3]]);
    t.true(b.faults[0]!.at <= b.faults[1]!.at);

    // Nothing of the bed is left: no namespace, and so none of its links in the root namespace.
    const prefix = b.prefix;
    await b.destroy();
    t.deepEqual(await listNamespaces(prefix), [], `namespaces ${prefix}* removed`);
    await until(() => !execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).includes(`imb${b.slot}n`), `the root ends of bed ${b.slot}'s client links to go`, 10_000, 100);
  });
}
