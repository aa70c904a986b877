// A node joins a cluster under traffic: it copies the users it will own before the ring switches,
// so their timelines keep their history and seqs, and no confirmed message is lost.
import test from 'ava';
import { cleanup, readAll, token } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import { createRing } from '../../src/ring/index.ts';
import { ImClient, ImError } from '../../src/client/client.ts';
import type { Entry, SentReply } from '../../src/protocol/frames.ts';

test.after.always(cleanup);

const USERS = Array.from({ length: 24 }, (_, i) => `hu${i}`);

/** Sends like a careful client: `unavailable` is retried with the same cid until confirmed. */
async function sendSure(c: ImClient, to: string, cid: string, body: string, unavailable: number[]): Promise<SentReply> {
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await c.send(to, cid, body);
      if (Date.now() - t0 > 0 && unavailable.length < 10_000) unavailable.push(Date.now() - t0);
      return r;
    } catch (e) {
      if (!(e instanceof ImError) || e.code !== 'unavailable') throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('a node joining under traffic takes over its users with their whole history', async (t) => {
  const cluster = await startCluster(3);
  const nodes = cluster.nodes as TestNode[];
  // Every user sends from a connection on some node; history first.
  const clients = new Map<string, ImClient>();
  for (const [i, u] of USERS.entries()) clients.set(u, (await nodes[i % 3]!.login(u)).c);
  const confirmed: { from: string; to: string; mid: string; seq: number; body: string }[] = [];
  const waits: number[] = [];
  let n = 0;
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
  await burst('before', 5);
  const before = new Map<string, Entry[]>();
  for (const u of USERS) before.set(u, await readAll(clients.get(u)!));

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

  // Every timeline, read from a fresh device on the newcomer: seqs 1..n, each mid once, the old
  // history unchanged at its old seqs, and every confirmed message in both timelines.
  const reader = await n4.client();
  for (const u of USERS) {
    const c = await n4.client();
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
    const sentBy = confirmed.filter((m) => m.from === u);
    t.is(own.length, sentBy.length, `${u}: each confirmed send once in the sender's timeline`);
    c.close();
  }
  reader.close();
});
