// The router on in-memory stand-ins: a ring whose owners the test sets, a local home that records
// what it runs, and a peer link that answers what the test tells it to. Time is a ManualClock, so
// retries happen exactly when the test moves the clock or changes the ring.
import test from 'ava';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock/index.ts';
import type { Clock } from '../../src/clock/index.ts';
import { RETRY_MS } from '../../src/channel/timing.ts';
import { createRouter } from '../../src/cluster/router.ts';
import type { Router } from '../../src/cluster/router.ts';
import { createPeerDispatch } from '../../src/cluster/dispatch.ts';
import type { PeerDispatch } from '../../src/cluster/dispatch.ts';
import type { Ring } from '../../src/ring/index.ts';
import type { Home } from '../../src/home/home.ts';
import type { Groups } from '../../src/group-home/groups.ts';
import type { Social } from '../../src/social/social.ts';
import type { Delivery, PeerRequest } from '../../src/protocol/peer.ts';
import { UnavailableError } from '../../src/protocol/errors.ts';
import { Lane } from '../../src/gateway/lane.ts';
import { homeOnStore, removeStores } from '../helpers/store.ts';

test.after.always(removeStores);

const PAGE = { msgs: [{ seq: 1, mid: 'm1', conv: 'd:alice:bob', from: 'alice', body: 'hi', ts: 1 }], more: false };

/** Node `a` of a cluster a, b, c; the test moves keys between them with `own`. */
function rig(o: { answer?: (peer: string, req: PeerRequest) => unknown; signal?: AbortSignal; dispatch?: PeerDispatch } = {}) {
  const clock = new ManualClock(1_000_000);
  const owners = new Map<string, string>();
  let version = 1;
  const ring = (): Ring => ({
    version: `v${version}`, members: ['a', 'b', 'c'], vnodes: 1, replicas: 1,
    owner: (k) => owners.get(k),
    owners: (k) => [owners.get(k)!],
    has: (m) => ['a', 'b', 'c'].includes(m),
    layout: () => ({ arcs: [], share: {} }),
  });
  // The cluster's wait for a ring change: ends on the next change or after `ms` on the clock.
  let changed: (() => void)[] = [];
  const ringChange = (ms: number, signal?: AbortSignal) => new Promise<void>((ok) => {
    changed.push(ok);
    (clock as Clock).sleep(ms, signal).then(ok, ok);
  });
  const changeRing = (moves: Record<string, string>) => {
    for (const [k, n] of Object.entries(moves)) owners.set(k, n);
    version++;
    const w = changed;
    changed = [];
    for (const ok of w) ok();
  };
  const ran: string[] = [];
  const heldLanes = new Set<string>();
  const fencedLanes: string[] = [];
  const local = {
    sync: async (user: string, after: number, limit: number) => {
      ran.push(`sync ${user} ${after} ${limit}`);
      return PAGE;
    },
    deliver: async (items: Delivery[]) => void ran.push(...items.map((d) => `deliver ${d.user}`)),
    // A send is refused while the test says this home does not serve yet.
    send: async (from: string, _to: string, cid: string, _body: string, _g: unknown, at?: { epoch: number }) => {
      if (!local.serving) throw new UnavailableError(`${from} is not served here yet`);
      ran.push(`send ${cid} epoch ${at?.epoch}`);
      return { mid: `m-${cid}`, seq: ran.length, ts: 1 };
    },
    serving: true,
    // The lanes the test says this home still holds a send of (home/fences.ts).
    lanes: {
      arrives: () => false,
      overtakes: (at: { lane: string } | undefined) => !!at && heldLanes.has(at.lane),
      passing: <T>(_m: unknown, _to: string, p: Promise<T>) => p,
      refused: (at: { lane: string } | undefined) => void (at && fencedLanes.push(at.lane)),
    },
  };
  const social = { admit: async () => undefined } as unknown as Social;
  const sent: { peer: string; req: PeerRequest; timeoutMs: number | undefined }[] = [];
  const router: Router = createRouter({
    self: 'a', ring, joined: () => true, locals: { local: local as unknown as Home, groups: {} as Groups, social },
    peerOf: (name) => `peer-${name}`,
    link: {
      request: async (peer, req, opts) => {
        sent.push({ peer, req, timeoutMs: opts?.timeoutMs });
        return o.answer?.(peer, req) ?? { t: 'fail', code: 'unavailable', message: 'no answer set' };
      },
    },
    log: pino({ level: 'silent' }), ringChange, clock,
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.dispatch ? { dispatch: o.dispatch } : {}),
  });
  return { router, clock, owners, changeRing, ran, sent, heldLanes, fencedLanes, local };
}

/** Lets the promise callbacks that are due run (the router's awaits between attempts). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

test('a call for a user owned here runs on the local home, and no peer is asked', async (t) => {
  const r = rig();
  r.owners.set('alice', 'a');
  t.deepEqual(await r.router.sync('alice', 5, 10), PAGE);
  t.deepEqual(r.ran, ['sync alice 5 10']);
  t.is(r.sent.length, 0);
});

test('a call for a user owned elsewhere goes to that peer, and its done value is checked by the table', async (t) => {
  let value: unknown = PAGE;
  const r = rig({ answer: () => ({ t: 'done', value }) });
  r.owners.set('bob', 'b');
  t.deepEqual(await r.router.sync('bob', 0, 50), PAGE);
  t.deepEqual(r.ran, []);
  t.is(r.sent.length, 1);
  t.is(r.sent[0]!.peer, 'peer-b');
  t.deepEqual(r.sent[0]!.req, { t: 'call', key: 'bob', rv: 'v1', hops: 0, call: { fn: 'sync', user: 'bob', after: 0, limit: 50 } });
  t.is(r.sent[0]!.timeoutMs, 5000);
  value = { more: false, msgs: [{ seq: -1, mid: 'm1', body: 'x' }] };
  await t.throwsAsync(r.router.sync('bob', 0, 50), { message: 'malformed sync reply from b' });
  // A refusal travels as null; the caller gets undefined (no refusal).
  value = null;
  t.is(await r.router.admitAt('bob', 'alice', 'dm'), undefined);
  value = { code: 'forbidden', message: 'blocked' };
  t.deepEqual(await r.router.admitAt('bob', 'alice', 'dm'), { code: 'forbidden', message: 'blocked' });
});

test('a refusal of the home comes back as the error of its code', async (t) => {
  let reply: unknown = { t: 'fail', code: 'forbidden', message: 'no' };
  const r = rig({ answer: () => reply });
  r.owners.set('bob', 'b');
  await t.throwsAsync(r.router.sync('bob', 0, 1), { name: 'ForbiddenError', message: 'no' });
  reply = { t: 'fail', code: 'rate_limited', message: 'slow down' };
  const e = await t.throwsAsync(r.router.sync('bob', 0, 1), { name: 'ClientError' });
  t.is((e as Error & { code: string }).code, 'rate_limited');
  reply = { t: 'fail', code: 'internal', message: 'bug' };
  await t.throwsAsync(r.router.sync('bob', 0, 1), { message: 'b answered internal: bug' });
  t.is(r.sent.length, 3, 'none of them is retried');
});

test('not_owner is retried after RETRY_MS, and goes to the new owner when the ring changes', async (t) => {
  const r = rig({ answer: (peer) => (peer === 'peer-c' ? { t: 'done', value: PAGE } : { t: 'fail', code: 'not_owner', message: 'moved' }) });
  r.owners.set('bob', 'b');
  let answer: unknown;
  const p = r.router.sync('bob', 0, 10).then((v) => (answer = v));
  await settle();
  t.deepEqual(r.sent.map((s) => s.peer), ['peer-b']);
  await r.clock.advance(RETRY_MS - 1);
  await settle();
  t.is(r.sent.length, 1, 'no retry before RETRY_MS');
  await r.clock.advance(1);
  await settle();
  t.deepEqual(r.sent.map((s) => s.peer), ['peer-b', 'peer-b'], 'retried on the same ring after RETRY_MS');
  r.changeRing({ bob: 'c' });
  await p;
  t.deepEqual(r.sent.map((s) => s.peer), ['peer-b', 'peer-b', 'peer-c'], 'the ring change ends the wait: no clock move needed');
  t.is((r.sent[2]!.req as { rv: string }).rv, 'v2');
  t.deepEqual(answer, PAGE);
});

test('a call still refused at the deadline fails unavailable', async (t) => {
  const r = rig({ answer: () => ({ t: 'fail', code: 'not_owner', message: 'moved' }) });
  r.owners.set('bob', 'b');
  const p = r.router.sync('bob', 0, 10);
  p.catch(() => undefined);
  await settle();
  for (let i = 0; i < 30; i++) await r.clock.advance(RETRY_MS);
  await t.throwsAsync(p, { name: 'UnavailableError', message: /the home of bob is not reachable \(b: moved\)/ });
  t.true(r.sent.length > 20 && r.sent.length <= 28, `${r.sent.length} attempts in 8 s`);
});

test('aborting the signal ends the retry loop with UnavailableError, and nothing retries after', async (t) => {
  const ctl = new AbortController();
  const r = rig({ answer: () => ({ t: 'fail', code: 'not_owner', message: 'moved' }), signal: ctl.signal });
  r.owners.set('bob', 'b');
  const p = r.router.sync('bob', 0, 10);
  p.catch(() => undefined);
  await settle();
  t.is(r.sent.length, 1);
  t.is(r.clock.waiting, 1, 'parked in the retry pause');
  ctl.abort();
  await t.throwsAsync(p, { name: 'UnavailableError', message: /stopping/ });
  t.is(r.clock.waiting, 0);
  await r.clock.advance(60_000);
  t.is(r.sent.length, 1, 'no attempt after the abort');
});

test('a copy its home keeps refusing is given back as unavailable once the signal aborts', async (t) => {
  const ctl = new AbortController();
  const r = rig({ answer: (_p, req) => ({ t: 'done', value: (req as { items: unknown[] }).items.map(() => 'not_owner') }), signal: ctl.signal });
  r.owners.set('bob', 'b');
  const d: Delivery = { user: 'bob', mid: 'm1', conv: 'd:alice:bob', from: 'alice', to: 'bob', body: 'hi', ts: 1 };
  const p = r.router.deliverRemote(d);
  p.catch(() => undefined);
  await settle();
  t.is(r.sent.length, 1);
  await r.clock.advance(RETRY_MS);
  await settle();
  t.is(r.sent.length, 2, 'retried after RETRY_MS');
  ctl.abort();
  await t.throwsAsync(p, { name: 'UnavailableError' });
  await r.clock.advance(60_000);
  t.is(r.sent.length, 2);
});

test('the router registers the types it serves in the dispatch table; the rest go elsewhere', async (t) => {
  const dispatch = createPeerDispatch();
  const r = rig({ dispatch });
  r.owners.set('alice', 'a');
  r.owners.set('bob', 'b');
  t.true(dispatch.has('call') && dispatch.has('deliver') && dispatch.has('renew'));
  t.false(dispatch.has('handoff'));
  const call = (key: string, hops: number): PeerRequest => ({ t: 'call', key, rv: 'v1', hops, call: { fn: 'sync', user: key, after: 0, limit: 1 } });
  t.deepEqual(await dispatch.handle('b', call('alice', 0), 'peer-b'), { t: 'done', value: PAGE });
  t.like(await dispatch.handle('b', call('bob', 1), 'peer-b'), { t: 'fail', code: 'not_owner' }, 'a forwarded call is not forwarded again');
  const handoff: PeerRequest = { t: 'absorb', page: { users: [], entries: [] } };
  t.like(await dispatch.handle('b', handoff, 'peer-b'), { t: 'fail', code: 'unavailable', message: 'starting' });
  dispatch.otherwise(async () => ({ t: 'done', value: 'elsewhere' }));
  t.deepEqual(await dispatch.handle('b', handoff, 'peer-b'), { t: 'done', value: 'elsewhere' });
  t.throws(() => dispatch.on('call', async () => ({ t: 'done' })), { message: /already has a handler/ });
});

test('a send for a user the ring moved away is passed on, unless an earlier send of its connection is still here', async (t) => {
  const dispatch = createPeerDispatch();
  const r = rig({ dispatch, answer: () => ({ t: 'done', value: { mid: 'm9', seq: 9, ts: 1 } }) });
  r.owners.set('alice', 'b'); // node a's ring has moved alice to b
  const send = (lane: string): PeerRequest => ({
    t: 'call', key: 'alice', rv: 'v0', hops: 0, call: { fn: 'send', from: 'alice', to: 'bob', cid: `c-${lane}`, body: 'x', at: { lane, epoch: 0 } },
  });
  t.like(await dispatch.handle('c', send('free'), 'peer-c'), { t: 'done' });
  t.deepEqual(r.sent.map((x) => x.peer), ['peer-b'], 'passed on to the new home');
  r.heldLanes.add('busy');
  const refused = await dispatch.handle('c', send('busy'), 'peer-c');
  t.like(refused, { t: 'fail', code: 'unavailable' });
  t.regex((refused as { message: string }).message, /earlier send of this connection/);
  t.is(r.sent.length, 1, 'not passed on: it would land ahead of the earlier one');
  t.deepEqual(r.fencedLanes, []);
  // Refused where it was passed on to: the lane is fenced here too, so that a later send of it
  // does not go another way first.
  const d2 = createPeerDispatch();
  const r2 = rig({ dispatch: d2, answer: () => ({ t: 'fail', code: 'not_owner', message: 'not yet' }) });
  r2.owners.set('alice', 'b');
  t.like(await d2.handle('c', send('moved'), 'peer-c'), { t: 'fail', code: 'not_owner' });
  t.deepEqual(r2.fencedLanes, ['moved']);
});

test('a send refused by the home on this node goes again from its turn: the connection\'s later sends wait for it', async (t) => {
  const r = rig();
  r.owners.set('alice', 'a');
  const lane = new Lane();
  r.local.serving = false;
  const first = r.router.send('alice', 'bob', 'c1', 'one', lane);
  await settle();
  t.deepEqual(r.ran, [], 'refused: not served here yet');
  // The home serves again before the connection's next send arrives (in the lane's next epoch).
  r.local.serving = true;
  const second = r.router.send('alice', 'bob', 'c2', 'two', lane);
  await settle();
  t.deepEqual(r.ran, [], 'the later send waits behind the refused one');
  await r.clock.advance(RETRY_MS);
  t.like(await first, { mid: 'm-c1' });
  t.like(await second, { mid: 'm-c2' });
  t.deepEqual(r.ran, ['send c1 epoch 1', 'send c2 epoch 1'], 'in the order they were made');
  // Still refused at the deadline: the client hears unavailable.
  r.local.serving = false;
  const third = r.router.send('alice', 'bob', 'c3', 'three', lane);
  third.catch(() => undefined);
  await settle();
  for (let i = 0; i < 30; i++) await r.clock.advance(RETRY_MS);
  await t.throwsAsync(third, { name: 'UnavailableError', message: /the home of alice is not reachable \(a: alice is not served here yet\)/ });
});

test('a send the link lost while the next one reached the home goes again first: they land in the order they were made', async (t) => {
  const { home } = await homeOnStore({ owns: () => true });
  let lose: ((e: Error) => void) | undefined;
  const tries: string[] = [];
  // Node b's home behind the link: c1's first attempt is lost (its stream closed under it), the
  // rest arrive and are answered as the peer server answers them.
  const r = rig({
    answer: (_peer, req) => {
      if (req.t !== 'call' || req.call.fn !== 'send') return undefined;
      const c = req.call;
      tries.push(c.cid);
      if (c.cid === 'c1' && !lose) return new Promise((_ok, no) => (lose = no));
      return home.send(c.from, c.to, c.cid, c.body, undefined, c.at).then(
        (value) => ({ t: 'done', value }),
        (e: Error) => ({ t: 'fail', code: 'unavailable', message: e.message }),
      );
    },
  });
  r.owners.set('alice', 'b');
  const lane = new Lane();
  const first = r.router.send('alice', 'bob', 'c1', 'one', lane);
  await settle();
  const second = r.router.send('alice', 'bob', 'c2', 'two', lane);
  await settle();
  t.deepEqual(tries, ['c1', 'c2'], 'both on their way to b at once');
  lose!(new Error('stream closed'));
  await settle();
  await r.clock.advance(RETRY_MS);
  t.like(await first, { seq: 1 });
  t.like(await second, { seq: 2 });
  t.deepEqual((await home.sync('alice', 0, 10)).msgs.map((m) => m.body), ['one', 'two']);
});

/** A copy of alice's message `n` for bob. */
const copyOf = (n: number): Delivery => ({ user: 'bob', mid: `m${n}`, conv: 'd:alice:bob', from: 'alice', to: 'bob', body: `${n}`, ts: n });
const mids = (req: PeerRequest) => (req as { items: Delivery[] }).items.map((d) => d.mid);

for (const outcome of ['refused', 'taken'] as const) {
  test(`a copy for a recipient the ring moved waits while earlier copies are still on their way to its former home (${outcome} there)`, async (t) => {
    // b answers only when the test says; c takes everything.
    let answerB!: (v: unknown) => void;
    const r = rig({
      answer: (peer, req) => {
        if (peer === 'peer-b') return new Promise((ok) => (answerB = ok));
        return { t: 'done', value: mids(req).map(() => 'ok') };
      },
    });
    r.owners.set('bob', 'b');
    const first = r.router.deliverRemote(copyOf(1));
    await settle();
    t.deepEqual(r.sent.map((s) => [s.peer, mids(s.req)]), [['peer-b', ['m1']]], 'm1 on its way to b');
    r.changeRing({ bob: 'c' });
    const second = r.router.deliverRemote(copyOf(2));
    await settle();
    t.is(r.sent.length, 1, 'm2 is not sent to c ahead of m1');
    answerB({ t: 'done', value: [outcome === 'taken' ? 'ok' : 'not_owner'] });
    await settle();
    if (outcome === 'refused') {
      await r.clock.advance(RETRY_MS);
      await settle();
    }
    await first;
    await second;
    const toC = r.sent.filter((s) => s.peer === 'peer-c').flatMap((s) => mids(s.req));
    t.deepEqual(toC, outcome === 'taken' ? ['m2'] : ['m1', 'm2'], 'in the order they were made');
  });
}
