// Bodies at the 16 KiB limit on a cluster: every peer message stays under the peer frame limit
// (4 MiB) however many of them a page, a batch or a handoff would otherwise carry. Before, a
// sync across nodes, and a join or a leave with a few MB of such timelines, failed for good.
import test from 'ava';
import { cleanup, readAll, retrying } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import { createRing } from '../../src/ring/index.ts';
import type { ImClient } from '../../src/client/client.ts';

test.after.always(cleanup);

const body = (i: number) => `${i} `.padEnd(16384, 'x');

test('1,200 sends of 16 KiB, syncs of 300 of them across nodes, then a join and a leave', async (t) => {
  const cluster = await startCluster(3, ['--max-in-flight', '2000']); // 1,200 sends in flight
  const [n1, n2, n3] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const ring = createRing(cluster.nodes.map((n) => n.opts.name!));
  const users = Array.from({ length: 8 }, (_, i) => `big${i}`);
  const cs: ImClient[] = await Promise.all(users.map(async (u) => {
    // Each user connects to a node that is not its home: every read crosses the peer link.
    const node = cluster.nodes.find((n) => n.opts.name !== ring.owner(u))!;
    return (await node.login(u)).c;
  }));
  // 150 sends per user, 10 in flight per connection, each resent with its cid on `unavailable`
  // as a client does (the test runs beside others on 2 cores).
  await Promise.all(cs.map((c, k) => {
    let next = 0;
    const lane = async () => {
      while (next < 150) {
        const i = next++;
        await retrying(() => c.send(users[(k + 1) % 8]!, `b${i}`, body(i)));
      }
    };
    return Promise.all(Array.from({ length: 10 }, lane));
  }));
  for (const [k, c] of cs.entries()) {
    const tl = await readAll(c);
    t.is(tl.length, 300, `${users[k]}'s timeline (150 sent, 150 received) in pages that fit`);
  }
  const n4 = await cluster.add();
  t.is(await n1.stop(), 0, 'the leave hands everything over');
  await cluster.converged();
  for (const u of users) {
    const { c } = await [n2, n3, n4][users.indexOf(u) % 3]!.login(u, 'after');
    const tl = await readAll(c);
    t.deepEqual(tl.map((e) => e.seq), Array.from({ length: 300 }, (_, i) => i + 1), `${u} after the join and the leave`);
  }
  for (const n of cluster.live()) await n.kill();
});
