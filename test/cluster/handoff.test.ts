// A node joins a cluster under traffic: it copies the users it will own before the ring switches,
// so their timelines keep their history and seqs, and no confirmed message is lost.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { cleanup, readAll, token } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { createRing } from '../../src/ring/index.ts';
import { ImClient, ImError } from '../../src/client/client.ts';
import type { Entry, SentReply } from '../../src/protocol/frames.ts';

test.after.always(cleanup);

const USERS = Array.from({ length: 24 }, (_, i) => `hu${i}`);

/** Sends like a careful client: `unavailable` is retried with the same cid until confirmed;
 * the time to confirmation goes into `waits`. */
async function sendSure(c: ImClient, to: string, cid: string, body: string, waits: number[]): Promise<SentReply> {
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await c.send(to, cid, body);
      waits.push(Date.now() - t0);
      return r;
    } catch (e) {
      if (!(e instanceof ImError) || e.code !== 'unavailable') throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

let cluster: TestCluster;
const clients = new Map<string, ImClient>();
const confirmed: { from: string; to: string; mid: string; seq: number; body: string }[] = [];
const waits: number[] = [];
let n = 0;
/** Every user sends `count` messages to the next users, confirmed (retrying unavailable). */
const burst = async (round: string, count: number) => {
  await Promise.all(USERS.map(async (u, i) => {
    for (let k = 0; k < count; k++) {
      const to = USERS[(i + 1 + k) % USERS.length]!;
      const body = `${round}-${u}-${k}-${n++}`;
      const r = await sendSure(clients.get(u)!, to, `${round}-${k}`, body, waits);
      confirmed.push({ from: u, to, mid: r.mid, seq: r.seq, body });
    }
  }));
};

/** Every timeline, read from a fresh device: seqs 1..n, each mid once, the history taken before
 * unchanged at its old seqs, and every confirmed message in both timelines. */
async function checkAll(t: ExecutionContext, via: TestNode, before: Map<string, Entry[]>): Promise<void> {
  for (const u of USERS) {
    const c = await via.client();
    await c.login({ token: await token(u), device: 'checker' });
    const tl = await readAll(c);
    t.deepEqual(tl.map((e) => e.seq), Array.from({ length: tl.length }, (_, i) => i + 1), `${u}: seqs 1..n`);
    t.is(new Set(tl.map((e) => e.mid)).size, tl.length, `${u}: no mid twice`);
    const old = before.get(u)!;
    t.deepEqual(tl.slice(0, old.length).map((e) => [e.seq, e.mid]), old.map((e) => [e.seq, e.mid]), `${u}: history kept`);
    const mids = new Set(tl.map((e) => e.mid));
    for (const m of confirmed) {
      if (m.from === u || m.to === u) t.true(mids.has(m.mid), `${u}: confirmed ${m.body} present`);
    }
    const own = tl.filter((e) => e.from === u && e.to !== u);
    t.is(own.length, confirmed.filter((m) => m.from === u).length, `${u}: each confirmed send once in the sender's timeline`);
    c.close();
  }
}

async function snapshot(): Promise<Map<string, Entry[]>> {
  const before = new Map<string, Entry[]>();
  for (const u of USERS) before.set(u, await readAll(clients.get(u)!));
  return before;
}

test.serial('a node joining under traffic takes over its users with their whole history', async (t) => {
  cluster = await startCluster(3);
  const nodes = cluster.nodes as TestNode[];
  // Every user sends from a connection on nodes 1 and 3 (node 2 leaves in the next test).
  for (const [i, u] of USERS.entries()) clients.set(u, (await nodes[i % 2 ? 2 : 0]!.login(u)).c);
  await burst('before', 5);
  const before = await snapshot();

  // Keep sending while the fourth node copies and joins.
  let stop = false;
  const traffic = (async () => {
    for (let r = 0; !stop; r++) await burst(`during${r}`, 1);
  })();
  const t0 = performance.now();
  const n4 = await cluster.add();
  t.log(`join with handoff: converged ${Math.round(performance.now() - t0)} ms after the start`);
  stop = true;
  await traffic;
  await burst('after', 2);

  const ring = createRing(cluster.nodes.map((x) => x.opts.name!));
  const moved = USERS.filter((u) => ring.owner(u) === n4.opts.name);
  t.true(moved.length > 0, 'some users moved to the newcomer');
  t.log(`${moved.length} of ${USERS.length} users moved to ${n4.opts.name}; ${confirmed.length} confirmed sends; longest wait for a confirmed send ${Math.max(...waits)} ms`);
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
  const before = await snapshot();
  let stop = false;
  const traffic = (async () => {
    for (let r = 0; !stop; r++) await burst(`leaving${r}`, 1);
  })();
  const t0 = performance.now();
  t.is(await leaver.stop(), 0);
  t.log(`graceful leave with handoff: exited ${Math.round(performance.now() - t0)} ms after SIGTERM`);
  await cluster.converged();
  stop = true;
  await traffic;
  await burst('left', 2);
  t.true(leaver.log.some((l) => l.includes('leave: every user this node owned or replicated is now with its next holders')));
  t.log(`${its.length} users moved off ${leaver.opts.name}; ${confirmed.length} confirmed sends in all; longest wait ${Math.max(...waits)} ms`);
  await checkAll(t, cluster.nodes[0]!, before);
});

test.serial('a home killed under traffic fails over to its replicas with nothing confirmed lost', async (t) => {
  const victim = cluster.nodes.find((x) => x.opts.name === 'n4')!;
  const ringBefore = createRing(cluster.live().map((x) => x.opts.name!));
  const its = USERS.filter((u) => ringBefore.owner(u) === 'n4');
  t.true(its.length > 0, 'n4 is home to some users');
  // Let replication of everything so far settle: every send above was confirmed, so it is on
  // the replicas already; take the histories now.
  const before = await snapshot();
  let stop = false;
  let firstAfterKill = 0;
  let killedAt = 0;
  const traffic = (async () => {
    for (let r = 0; !stop; r++) {
      await burst(`crash${r}`, 1);
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
  await burst('recovered', 2);
  t.log(`crash: ${its.length} users failed over from n4; survivors agree after ${agreed} ms; first full round of confirmed sends after the kill at ${firstAfterKill - killedAt} ms; longest wait ${Math.max(...waits)} ms`);
  await checkAll(t, cluster.nodes[0]!, before);
});
