// A node joins a cluster under traffic: it copies the users it will own before the ring switches,
// so their timelines keep their history and seqs, and no confirmed message is lost.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { cleanup } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { assertInvariants, prng, readTimelines, Sender } from '../helpers/churn.ts';
import type { Confirmed } from '../helpers/churn.ts';
import { createRing } from '../../src/ring/index.ts';
import type { Entry } from '../../src/protocol/frames.ts';

const USERS = Array.from({ length: 24 }, (_, i) => `hu${i}`);

let cluster: TestCluster;
/** One careful client per user (test/helpers/churn.ts: the SDK's session, resending the same cid
 * until confirmed), each kept on one node, with a short fixed retry so that `waits` measure the
 * cluster and not the backoff. */
const senders = new Map<string, Sender>();
const confirmed: Confirmed[] = [];
const waits = () => [...senders.values()].flatMap((s) => s.waits);

test.after.always(async () => {
  for (const s of senders.values()) s.close();
  await cleanup();
});

/** Every user sends `count` messages to the next users, each confirmed before the next. */
const burst = async (count: number) => {
  await Promise.all(USERS.map(async (u, i) => {
    for (let k = 0; k < count; k++) await senders.get(u)!.send(USERS[(i + 1 + k) % USERS.length]!);
  }));
};

/** No client lost its connection (their nodes stay up); every timeline, read from a fresh
 * device, holds the invariants (test/helpers/invariants.ts) against every confirmed send so far;
 * besides, the history taken before is unchanged at its old seqs, and a user's own sends are
 * exactly its confirmed ones (every send here was confirmed). */
async function checkAll(t: ExecutionContext, via: TestNode, before: Map<string, Entry[]>): Promise<void> {
  t.is([...senders.values()].reduce((n, s) => n + s.reconnects, 0), 0, 'no client had to reconnect');
  const timelines = await readTimelines(via, USERS);
  assertInvariants(t, timelines, confirmed);
  for (const [u, tl] of timelines) {
    const old = before.get(u)!;
    t.deepEqual(tl.slice(0, old.length).map((e) => [e.seq, e.mid]), old.map((e) => [e.seq, e.mid]), `${u}: history kept`);
    const own = tl.filter((e) => e.from === u && e.to !== u);
    t.is(own.length, confirmed.filter((m) => m.from === u).length, `${u}: each confirmed send once in the sender's timeline`);
  }
}

test.serial('a node joining under traffic takes over its users with their whole history', async (t) => {
  cluster = await startCluster(3);
  const nodes = cluster.nodes as TestNode[];
  // Every user sends from a connection on nodes 1 and 3 (node 2 leaves in the next test).
  const rand = prng(14);
  for (const [i, u] of USERS.entries()) {
    const url = nodes[i % 2 ? 2 : 0]!.url;
    senders.set(u, new Sender(u, [], cluster, confirmed, rand, { urls: () => [url], backoffMs: { min: 50, max: 50 } }));
  }
  await burst(5);
  const before = await readTimelines(nodes[0]!, USERS);

  // Keep sending while the fourth node copies and joins.
  let stop = false;
  const traffic = (async () => {
    while (!stop) await burst(1);
  })();
  const t0 = performance.now();
  const n4 = await cluster.add();
  t.log(`join with handoff: converged ${Math.round(performance.now() - t0)} ms after the start`);
  stop = true;
  await traffic;
  await burst(2);

  const ring = createRing(cluster.nodes.map((x) => x.opts.name!));
  const moved = USERS.filter((u) => ring.owner(u) === n4.opts.name);
  t.true(moved.length > 0, 'some users moved to the newcomer');
  t.log(`${moved.length} of ${USERS.length} users moved to ${n4.opts.name}; ${confirmed.length} confirmed sends; longest wait for a confirmed send ${Math.max(...waits())} ms`);
  t.true(n4.log.some((l) => l.includes('handoff: final copy done')));
  // Operators see what moved: the counters match the log, and no copy is left in flight.
  const done = JSON.parse(n4.log.find((l) => l.includes('this node now holds what it will own'))!) as { entries: number; users: number };
  t.true(done.entries > 0);
  const metrics = await (await fetch(`${n4.http}/metrics`)).text();
  t.regex(metrics, new RegExp(`^im_handoff_entries_total\\{[^}]*\\} ${done.entries}$`, 'm'));
  t.regex(metrics, /^im_handoffs_in_flight\{[^}]*\} 0$/m);
  const view = (await cluster.view(n4)) as unknown as { migrations: { copying: unknown } };
  t.is(view.migrations.copying, null);

  await checkAll(t, n4, before);
});

test.serial('a node leaving gracefully under traffic hands its users over first', async (t) => {
  const leaver = cluster.nodes[1]!;
  const ringBefore = createRing(cluster.nodes.map((x) => x.opts.name!));
  const its = USERS.filter((u) => ringBefore.owner(u) === leaver.opts.name);
  t.true(its.length > 0, `${leaver.opts.name} is home to some users`);
  const before = await readTimelines(cluster.nodes[0]!, USERS);
  let stop = false;
  const traffic = (async () => {
    while (!stop) await burst(1);
  })();
  const t0 = performance.now();
  t.is(await leaver.stop(), 0);
  t.log(`graceful leave with handoff: exited ${Math.round(performance.now() - t0)} ms after SIGTERM`);
  await cluster.converged();
  stop = true;
  await traffic;
  await burst(2);
  t.true(leaver.log.some((l) => l.includes('leave: every user this node owned or replicated is now with its next holders')));
  t.log(`${its.length} users moved off ${leaver.opts.name}; ${confirmed.length} confirmed sends in all; longest wait ${Math.max(...waits())} ms`);
  await checkAll(t, cluster.nodes[0]!, before);
});

test.serial('a home killed under traffic fails over to its replicas with nothing confirmed lost', async (t) => {
  const victim = cluster.nodes.find((x) => x.opts.name === 'n4')!;
  const ringBefore = createRing(cluster.live().map((x) => x.opts.name!));
  const its = USERS.filter((u) => ringBefore.owner(u) === 'n4');
  t.true(its.length > 0, 'n4 is home to some users');
  // Let replication of everything so far settle: every send above was confirmed, so it is on
  // the replicas already; take the histories now.
  const before = await readTimelines(cluster.nodes[0]!, USERS);
  let stop = false;
  let firstAfterKill = 0;
  let killedAt = 0;
  const traffic = (async () => {
    while (!stop) {
      await burst(1);
      if (killedAt && !firstAfterKill) firstAfterKill = Date.now();
    }
  })();
  await new Promise((r) => setTimeout(r, 200)); // some traffic in flight when the kill lands
  killedAt = Date.now();
  await victim.kill();
  await cluster.converged(20_000);
  const agreed = Date.now() - killedAt;
  stop = true;
  await traffic;
  await burst(2);
  t.log(`crash: ${its.length} users failed over from n4; survivors agree after ${agreed} ms; first full round of confirmed sends after the kill at ${firstAfterKill - killedAt} ms; longest wait ${Math.max(...waits())} ms`);
  await checkAll(t, cluster.nodes[0]!, before);
});
