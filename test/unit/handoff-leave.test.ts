// A leaving home pushes each user it owns to the users' next holders (src/replica/handoff-leave.ts).
// The next home is the user's replica today and holds the timeline already: the leaver asks it
// what it holds (`holding`: a seq and a digest of the mids up to it per user) and sends it only
// what follows a proven seq. Whatever it is told, every next holder must end with the leaver's
// timeline. Three real stores; peer requests are direct calls of the receiving node's handoff.
import test from 'ava';
import { pino } from 'pino';
import { createHandoff } from '../../src/replica/handoff.ts';
import type { Handoff } from '../../src/replica/handoff.ts';
import type { Home } from '../../src/home/home.ts';
import type { PeerRequest } from '../../src/protocol/peer.ts';
import { createRing } from '../../src/ring/index.ts';
import type { Store } from '../../src/store/index.ts';
import { appendMids, openStore, removeStores, timelineMids } from '../helpers/store.ts';

test.after.always(removeStores);

const log = pino({ level: 'silent' });
const OPTS = { vnodes: 16, replicas: 2 };
const NAMES = ['a', 'b', 'c'];
const ring = createRing(NAMES, OPTS);
const after = createRing(['b', 'c'], OPTS);
/** Users the leaver `a` is home of: [user, its replica (the next home), the new replica]. */
const owned = Array.from({ length: 200 }, (_, i) => `u${i}`).filter((u) => ring.owner(u) === 'a')
  .map((u) => [u, ring.owners(u, 2)[1]!, after.owners(u, 2).find((n) => n !== ring.owners(u, 2)[1])!] as const);

const append = appendMids;
const mids = timelineMids;
const series = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}${String(i + 1).padStart(3, '0')}`);

/** Three nodes; `answer` may replace a receiver's answer to `holding`. Returns the stores, the
 * leaver's handoff and, per receiver and user, the seqs it was pushed. */
async function cluster(answer?: (to: string, users: string[], real: () => Promise<unknown>) => Promise<unknown>) {
  const stores: Record<string, Store> = {};
  for (const n of NAMES) stores[n] = (await openStore()).s;
  const pushed = new Map<string, number[]>();
  const home = { freeze: () => ({ release: () => undefined }) } as unknown as Home;
  const nodes: Record<string, Handoff> = {};
  for (const n of NAMES) {
    nodes[n] = createHandoff({
      ...OPTS, self: n, store: stores[n]!, home, ring: () => ring, peerOf: (x) => x, maxBody: 1 << 20, log,
      request: async (to, msg: PeerRequest) => {
        if (msg.t === 'holding') return answer ? answer(to, msg.users, () => nodes[to]!.holding(msg.users)) : nodes[to]!.holding(msg.users);
        if (msg.t !== 'absorb') throw new Error(`unexpected ${msg.t}`);
        for (const e of msg.page.entries) pushed.set(`${to} ${e.user}`, [...(pushed.get(`${to} ${e.user}`) ?? []), e.seq]);
        return nodes[to]!.absorb(msg.page);
      },
    });
  }
  return { stores, leaver: nodes.a!, pushed };
}

test('the next home, which holds the first 25 of 30 entries, is pushed only 26..30; the new replica all 30; both end as the leaver', async (t) => {
  t.true(owned.length > 10, 'the ring gives a users');
  const { stores, leaver, pushed } = await cluster();
  for (const [u, next] of owned) {
    await append(stores.a!, u, series(u, 30));
    await append(stores[next]!, u, series(u, 25));
  }
  await leaver.release(async () => undefined);
  for (const [u, next, fresh] of owned) {
    t.deepEqual(pushed.get(`${next} ${u}`), [26, 27, 28, 29, 30], `${u} to ${next}`);
    t.is(pushed.get(`${fresh} ${u}`)?.length, 30, `${u} to ${fresh}`);
    t.deepEqual(await mids(stores[next]!, u), series(u, 30));
    t.deepEqual(await mids(stores[fresh]!, u), series(u, 30));
  }
});

test('a copy that differs in the middle proves nothing: it is pushed whole and replaced by the leaver\'s', async (t) => {
  const { stores, leaver, pushed } = await cluster();
  for (const [u, next] of owned) {
    await append(stores.a!, u, series(u, 30));
    await append(stores[next]!, u, [...series(u, 9), `${u}-stale`, ...series(u, 30).slice(10)]);
  }
  await leaver.release(async () => undefined);
  for (const [u, next] of owned) {
    t.is(pushed.get(`${next} ${u}`)?.[0], 1, `${u} to ${next} from seq 1`);
    t.deepEqual(await mids(stores[next]!, u), series(u, 30));
  }
});

test('a node that cannot answer, or answers what it does not hold, still ends with the leaver\'s timeline', async (t) => {
  // b cannot answer; c claims the leaver's own digest up to 25 while it holds a stale seq 26.
  const { stores, leaver } = await cluster(async (to, users, real) => {
    if (to === 'b') throw new Error('no answer');
    const r = (await real()) as { value: [string, number, string][] };
    const truth = (await stores.a!.prefixDigests(r.value.map(([u]) => [u, 25])));
    return { t: 'done', value: r.value.map(([u]) => [u, 25, truth.get(u)]) };
  });
  for (const [u, next] of owned) {
    await append(stores.a!, u, series(u, 30));
    await append(stores[next]!, u, next === 'c' ? [...series(u, 25), `${u}-stale`] : series(u, 25));
  }
  t.true(owned.some(([, next]) => next === 'b') && owned.some(([, next]) => next === 'c'), 'both b and c are next homes');
  await leaver.release(async () => undefined);
  for (const [u, next] of owned) t.deepEqual(await mids(stores[next]!, u), series(u, 30), `${u} on ${next}`);
});

test('holding answers [user, committed seq, digest] for the users asked that this node holds', async (t) => {
  const { stores } = await cluster();
  const { s } = await openStore();
  await append(s, 'x1', ['m1', 'm2', 'm3']);
  await append(s, 'x2', ['n1']);
  const h = createHandoff({ ...OPTS, self: 'b', store: s, home: {} as Home, ring: () => ring, peerOf: () => undefined, maxBody: 1 << 20, log, request: async () => undefined });
  const r = (await h.holding(['x1', 'x2', 'nobody'])) as { t: string; value: [string, number, string][] };
  const d = await s.prefixDigests([['x1', 3], ['x2', 1]]);
  t.deepEqual(r, { t: 'done', value: [['x1', 3, d.get('x1')!], ['x2', 1, d.get('x2')!]] });
  t.truthy(stores.a);
});
