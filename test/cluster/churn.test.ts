// Churn under traffic: restart after a crash, a node frozen past its death and resumed, a rolling
// restart, and randomized schedules of joins, leaves, kills and restarts (seed printed; replay
// with CHURN_SEED, longer with CHURN_STEPS; `npm run soak` runs eight seeds of 12 steps).
// Afterwards every timeline is read back and checked against the full history of confirmed sends.
import { setTimeout } from 'node:timers/promises';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { cleanup, readAll, token, until } from '../helpers/node.ts';
import { ImClient, ImError } from '../../src/client/client.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import { BURNERS, startBurners } from '../helpers/burner.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { checkContacts, checkInvariants, ContactDriver, prng, Sender } from '../helpers/churn.ts';
import type { Confirmed } from '../helpers/churn.ts';

test.after.always(cleanup);

const CLIENTS = 20;
const STEPS = Number(process.env.CHURN_STEPS ?? 6);
// Default seeds: two schedules that once found bugs; npm run soak passes more.
const SEEDS = (process.env.CHURN_SEED ?? '577887,22').split(',').map(Number);

type Migrations = { replicationQueued: number; replicationBehind: number; handoffsOut: string[] };

/** Waits until the live nodes agree, no handoff is running and every replica is in sync again
 * after the last change (`replicationBehind`: live writes under traffic do not count). With
 * `idle` (no traffic) it also waits for every queued or in-flight replication batch. */
async function settled(cluster: TestCluster, idle = false): Promise<void> {
  await cluster.converged(30_000);
  let busy = '';
  await until(async () => {
    for (const n of cluster.live()) {
      const m = ((await cluster.view(n)) as unknown as { migrations?: Migrations } | undefined)?.migrations;
      if (!m || m.replicationBehind > 0 || m.handoffsOut.length > 0 || (idle && m.replicationQueued > 0)) {
        busy = `${n.opts.name}: ${JSON.stringify(m)}`;
        return false;
      }
    }
    return true;
  }, () => `replication and handoffs to finish (last busy: ${busy})`, 30_000, 100);
}

const GROUPS = 3;

/** Logs in as `user` on a live node (retrying while the cluster settles) and runs `fn`. */
async function as<T>(cluster: TestCluster, user: string, fn: (c: ImClient) => Promise<T>): Promise<T> {
  const c = await ImClient.connect(cluster.live()[0]!.url);
  try {
    await c.login({ token: await token(user), device: 'setup' });
    return await fn(c);
  } finally {
    c.close();
  }
}

async function withTraffic(t: ExecutionContext, cluster: TestCluster, seed: number, body: (confirmed: Confirmed[]) => Promise<void>): Promise<void> {
  const rand = prng(seed);
  const users = Array.from({ length: CLIENTS }, (_, i) => `c${seed}u${i}`);
  const confirmed: Confirmed[] = [];
  // Groups of about a third of the users each, spread over the nodes; their members send to the
  // group every third message, the rest are 1:1.
  const groups = new Map<string, string[]>();
  for (let k = 0; k < GROUPS; k++) {
    const members = users.filter((_, i) => i % GROUPS === k);
    await as(cluster, members[0]!, (c) => c.group('create', `c${seed}g${k}`, members.slice(1)));
    groups.set(`g:c${seed}g${k}`, members);
  }
  const senders = users.map((u, i) => new Sender(u, [users[(i + 1) % CLIENTS]!, `g:c${seed}g${i % GROUPS}`, users[(i + 7) % CLIENTS]!], cluster, confirmed, rand));
  // Contact changes beside the messages: pairs of users befriend, unfriend and follow each other.
  const drivers = Array.from({ length: CLIENTS / 4 }, (_, i) => new ContactDriver(users[2 * i]!, users[2 * i + 1]!, cluster, rand));
  const running = [...senders.map((s) => s.run()), ...drivers.map((d) => d.run())];
  try {
    await until(() => confirmed.length >= CLIENTS * 3, 'traffic to flow', 20_000);
    await body(confirmed);
    const n = confirmed.length;
    await until(() => confirmed.length >= n + CLIENTS * 2, 'traffic after the churn', 20_000);
  } finally {
    for (const s of senders) s.stop();
    for (const d of drivers) d.stop();
    const ended = await Promise.allSettled(running);
    for (const s of senders) s.close();
    const failed = ended.find((r) => r.status === 'rejected');
    if (failed) {
      // What the nodes said about contact changes and their outboxes, for the post-mortem.
      for (const n of cluster.nodes) t.log(`${n.opts.name}:\n${n.log.filter((l) => /social|outbox|contact/i.test(l)).slice(-15).join('\n')}`);
      throw (failed as PromiseRejectedResult).reason;
    }
  }
  await settled(cluster, true);
  const waits = senders.flatMap((s) => s.waits);
  t.log(`seed ${seed}: ${confirmed.length} confirmed sends, ${senders.reduce((a, s) => a + s.reconnects, 0)} reconnects, longest wait for a confirmed send ${Math.max(...waits)} ms`);
  await checkInvariants(t, cluster, users, confirmed, groups);
  t.log(`seed ${seed}: ${drivers.reduce((n, d) => n + d.plan.confirmed, 0)} confirmed contact changes (${drivers.reduce((n, d) => n + d.retries, 0)} retries)`);
  await checkContacts(t, cluster, drivers);
  // Group state survived the churn: owner and members as created.
  for (const [g, members] of groups) {
    const info = await as(cluster, members[1]!, (c) => c.groupInfo(g.slice(2)));
    t.deepEqual({ owner: info.owner, members: info.members }, { owner: members[0], members }, `${g} after the churn`);
  }
}

test.serial('restart after a crash, under traffic', async (t) => {
  const cluster = await startCluster(3);
  await withTraffic(t, cluster, 1, async () => {
    const victim = cluster.nodes[1]!;
    await victim.kill();
    await settled(cluster);
    await victim.start(victim.port);
    await settled(cluster);
  });
  for (const n of cluster.live()) await n.kill();
});

test.serial('a node frozen until the others declare it dead, then resumed, under traffic', async (t) => {
  const cluster = await startCluster(3);
  await withTraffic(t, cluster, 3, async (confirmed) => {
    const victim = cluster.nodes[1]!;
    const others = cluster.nodes.filter((n) => n !== victim);
    type Woken = { joined?: boolean; lease?: boolean; ring?: { members: string[] }; members?: { name: string; incarnation?: number }[] };
    const incarnation = (v: Woken | undefined) => v?.members?.find((m) => m.name === victim.opts.name)?.incarnation;
    const asleepAs = incarnation((await cluster.view(victim)) as Woken | undefined);
    t.truthy(asleepAs, 'the node shows its own incarnation');
    // SIGSTOP: alive but silent, like a long pause or a partition; its clients hang.
    victim.proc!.kill('SIGSTOP');
    let woke: Promise<Woken | undefined> | undefined;
    try {
      await until(async () => {
        const views = await Promise.all(others.map((n) => cluster.view(n)));
        return views.every((v) => v && !v.ring.members.includes(victim.opts.name!));
      }, 'the others to drop the frozen node from their rings', 20_000, 100);
      // The new homes of its users take writes meanwhile: what it holds goes stale.
      const n = confirmed.length;
      await until(() => confirmed.length >= n + CLIENTS * 2, 'writes while it is frozen', 20_000);
      // Asked while it sleeps, this waits in its socket with the gossip that piled up, and is
      // read on waking right after that gossip: which must not give it the write lease back
      // before it learns the verdict (it would serve its stale copies as home). A loaded machine
      // may answer late, hence the long timeout.
      woke = fetch(`${victim.http}/cluster`, { signal: AbortSignal.timeout(30_000) }).then((r) => r.json() as Promise<Woken>, () => undefined);
      await setTimeout(300); // no condition to wait for: the request only has to be on its way
    } finally {
      victim.proc!.kill('SIGCONT');
    }
    const v = await woke;
    t.truthy(v, 'the woken node answered');
    // Still at the incarnation it slept with, it has not heard the verdict (which it refutes
    // with a higher one, and a rejoin comes after that): it must not hold the lease then.
    const unaware = incarnation(v) === asleepAs;
    t.false(unaware && !!v?.joined && v?.lease === true && !!v?.ring?.members.includes(victim.opts.name!),
      `on waking it held the lease in its old ring: ${JSON.stringify({ joined: v?.joined, lease: v?.lease, ring: v?.ring?.members, incarnation: incarnation(v), asleepAs })}`);
    // It comes back through the join copy.
    await settled(cluster);
    t.true(victim.log.some((l) => l.includes('rejoining through the data copy')), 'the resumed node rejoined through the copy');
  });
  for (const n of cluster.live()) await n.kill();
});

test.serial('a kill right after a join and right after a graceful leave, with no wait for re-replication', async (t) => {
  // A join copies, and a leave hands over, every user whose copies move, as replica as well as
  // home: at the ring switch every user already has R full copies, so one crash right after
  // it loses nothing.
  const cluster = await startCluster(3);
  await withTraffic(t, cluster, 4, async () => {
    const n4 = await cluster.add();
    await cluster.nodes[0]!.kill();
    await settled(cluster);
    await cluster.nodes[0]!.start(cluster.nodes[0]!.port);
    await settled(cluster);
    t.is(await cluster.nodes[1]!.stop(), 0);
    await cluster.converged(30_000);
    await n4.kill();
    await settled(cluster);
  });
  for (const n of cluster.live()) await n.kill();
});

test.serial('a group outlives the kill of its home and a join: owner, members, order, every confirmed message; then membership changes', async (t) => {
  const cluster = await startCluster(3);
  const home = cluster.nodes[1]!;
  const g = cluster.nameOn(home, 'gk', true);
  const members = Array.from({ length: 8 }, (_, i) => `gk-u${i}`);
  const confirmed: Confirmed[] = [];
  let n = 0;
  /** Sends from a member, resending the same cid on unavailable (and after a reconnect). */
  const send = async (from: string) => {
    const cid = `gk-${n++}`;
    for (;;) {
      try {
        const r = await as(cluster, from, (c) => c.sendGroup(g, cid, cid));
        confirmed.push({ from, to: `g:${g}`, mid: r.mid, seq: r.seq, cid, conn: n });
        return;
      } catch (e) {
        if (e instanceof ImError && e.code !== 'unavailable') throw e;
      }
    }
  };
  await as(cluster, members[0]!, (c) => c.group('create', g, members.slice(1)));
  for (let i = 0; i < 16; i++) await send(members[i % members.length]!);
  await home.kill();
  await settled(cluster);
  t.like(await as(cluster, members[3]!, (c) => c.groupInfo(g)), { owner: members[0], members });
  for (let i = 0; i < 16; i++) await send(members[(i + 3) % members.length]!);
  await cluster.add();
  await settled(cluster);
  t.like(await as(cluster, members[5]!, (c) => c.groupInfo(g)), { owner: members[0], members });
  for (let i = 0; i < 16; i++) await send(members[(i + 5) % members.length]!);
  await settled(cluster, true);
  await checkInvariants(t, cluster, members, confirmed, new Map([[`g:${g}`, members]]));
  // Membership changes on the new ring: a member removed and one added, between two messages.
  const gone = members[7]!;
  const fresh = 'gk-new';
  const cut = confirmed.length;
  await as(cluster, members[0]!, async (c) => {
    await c.group('remove', g, [gone]);
    await c.group('add', g, [fresh]);
  });
  for (let i = 0; i < 8; i++) await send(members[i % 7]!);
  const mids = async (u: string) => as(cluster, u, async (c) => (await readAll(c)).filter((e) => e.conv === `g:${g}`).map((e) => e.mid));
  // Sends were one at a time, so the order confirmed is the group's order.
  t.deepEqual(await mids(gone), confirmed.slice(0, cut).map((m) => m.mid), 'the removed member has exactly the messages of before');
  t.deepEqual(await mids(fresh), confirmed.slice(cut).map((m) => m.mid), 'the new member has exactly the messages of after, in order');
  for (const node of cluster.live()) await node.kill();
});

test.serial('a rolling restart of every node, under traffic', async (t) => {
  const cluster = await startCluster(3);
  await withTraffic(t, cluster, 2, async () => {
    for (const n of [...cluster.nodes]) {
      t.is(await n.stop(), 0);
      await settled(cluster);
      await n.start(n.port);
      await settled(cluster);
    }
  });
  for (const n of cluster.live()) await n.kill();
});

for (const seed of SEEDS) {
  test.serial(`randomized joins, leaves, kills and restarts on up to 5 nodes (seed ${seed})`, async (t) => {
    t.log(`replay with CHURN_SEED=${seed}${STEPS !== 6 ? ` CHURN_STEPS=${STEPS}` : ''}`);
    // One core kept busy: races that need a slow event loop show up on an idle machine too (one
    // burner, not two: the file running beside this one must keep its deadlines).
    const burners = startBurners(Math.min(1, BURNERS), 600_000);
    t.teardown(() => burners.stop());
    const rand = prng(seed);
    const cluster = await startCluster(3);
    const down: TestNode[] = [];
    const steps: string[] = [];
    await withTraffic(t, cluster, seed, async () => {
      for (let i = 0; i < STEPS; i++) {
        const live = cluster.live();
        const options: string[] = [];
        if (live.length + down.length < 5) options.push('join');
        if (live.length > 3) options.push('leave', 'kill'); // never below 3 live: R = 2 with one spare
        if (live.length === 3 && down.length === 0) options.push('kill');
        if (down.length) options.push('restart');
        const what = options[Math.floor(rand() * options.length)]!;
        const pick = (ns: TestNode[]) => ns[Math.floor(rand() * ns.length)]!;
        if (what === 'join') {
          const n = await cluster.add({ wait: false });
          steps.push(`join ${n.opts.name}`);
        } else if (what === 'leave') {
          const n = pick(live);
          steps.push(`leave ${n.opts.name}`);
          await n.stop();
          down.push(n);
        } else if (what === 'kill') {
          const n = pick(live);
          steps.push(`kill ${n.opts.name}`);
          await n.kill();
          down.push(n);
        } else {
          const n = down.splice(Math.floor(rand() * down.length), 1)[0]!;
          steps.push(`restart ${n.opts.name}`);
          await n.start(n.port);
        }
        await settled(cluster); // one failure at a time: the cluster re-replicates before the next
      }
      t.log(`schedule: ${steps.join(', ')}`);
    });
    for (const n of cluster.live()) await n.kill();
  });
}
