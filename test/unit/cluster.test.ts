// The cluster glue on a stand-in transport (it records dials and hands the test the inbound
// handlers) and a real membership: peer requests are validated, authorized and dispatched through
// the one table; the join retry loop runs on a ManualClock and ends when the signal aborts.
import test from 'ava';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock/index.ts';
import { createCluster } from '../../src/cluster/cluster.ts';
import type { ClusterInit } from '../../src/cluster/cluster.ts';
import { createMembership } from '../../src/membership/index.ts';
import type { PeerNet } from '../../src/transport/index.ts';

function rig(init: Partial<ClusterInit> = {}, signal?: AbortSignal) {
  const clock = new ManualClock(1_000_000);
  const inbound: { request?: (from: string, raw: unknown) => Promise<unknown>; message?: (from: string, raw: unknown) => void } = {};
  const dialed: string[] = [];
  const net = {
    peerId: 'pa', addrs: [], listening: [],
    dial: async (addr: string) => {
      dialed.push(addr);
      throw new Error('no route to the seed');
    },
    addAddrs: () => undefined,
    connected: () => false,
    send: () => undefined,
    request: async () => {
      throw new Error('no route');
    },
    onMessage: (h: (from: string, raw: unknown) => void) => void (inbound.message = h),
    onRequest: (h: (from: string, raw: unknown) => Promise<unknown>) => void (inbound.request = h),
    onPeer: () => undefined,
    stats: () => [],
    stop: async () => undefined,
  } as unknown as PeerNet;
  const membership = createMembership({ name: 'a', peer: 'pa', addrs: [], url: 'http://a', incarnation: 1 }, {}, { clock });
  const refused: string[] = [];
  const invalid: string[] = [];
  const cluster = createCluster(
    { seeds: [], maxBody: 1000, gossipMs: 3_600_000, ...init },
    {
      net, membership, log: pino({ level: 'silent' }), clock,
      onRefused: (type, reason) => void refused.push(`${type}:${reason}`),
      onInvalidFrame: (from) => void invalid.push(from),
      ...(signal ? { signal } : {}),
    },
  );
  const ask = (from: string, req: unknown) => inbound.request!(from, req);
  /** `b` (peer pb) gossips its own entry: it becomes a member of a's table. */
  const meetB = () => inbound.message!('pb', { t: 'gossip', entries: [{ name: 'b', peer: 'pb', addrs: [], url: 'http://b', incarnation: 1, heartbeat: 1, status: 'alive' }] });
  return { cluster, clock, ask, meetB, dialed, refused, invalid };
}

const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

test('membership answers its own requests from the table; others need a member, then their handler', async (t) => {
  const r = rig();
  t.deepEqual(await r.ask('pz', { t: 'ping' }), { t: 'done', value: false }, 'ping is open to anyone with the swarm key, and says a stranger is no member (it vouches for nobody)');
  const renew = { t: 'renew', gateway: 'b', conns: [] };
  t.like(await r.ask('pz', renew), { t: 'fail', code: 'unavailable' });
  t.deepEqual(r.refused, ['renew:not_member']);
  r.meetB();
  t.deepEqual(await r.ask('pb', { t: 'ping' }), { t: 'done', value: true }, 'a member\'s ping is answered yes: it vouches for b (the write lease)');
  t.deepEqual(await r.ask('pb', renew), { t: 'fail', code: 'unavailable', message: 'starting' }, 'no handler yet');
  r.cluster.onRequest(async (name, req) => ({ t: 'done', value: `fallback ${name} ${req.t}` }));
  t.deepEqual(await r.ask('pb', renew), { t: 'done', value: 'fallback b renew' });
  r.cluster.dispatch.on('renew', async (name, req, peer) => ({ t: 'done', value: `table ${name} ${req.gateway} ${peer}` }));
  t.deepEqual(await r.ask('pb', renew), { t: 'done', value: 'table b b pb' }, 'a registered handler comes before the fallback');
  t.throws(() => r.cluster.dispatch.on('ping', async () => ({ t: 'done' })), { message: /already has a handler/ });
  t.like(await r.ask('pb', { t: 'renew', gateway: 7 }), { t: 'fail', code: 'bad_request' });
  t.deepEqual(r.invalid, ['pb']);
});

test('a handoff that names another target is refused before its handler', async (t) => {
  const r = rig();
  r.meetB();
  let served = 0;
  r.cluster.dispatch.on('handoff', async () => {
    served++;
    return { t: 'done' };
  });
  const handoff = { t: 'handoff', target: 'c', members: ['a', 'b', 'c'], from: '', to: null, after: {}, freeze: false, limit: 10 };
  t.like(await r.ask('pb', handoff), { t: 'fail', code: 'forbidden' });
  t.is(served, 0);
  t.deepEqual(r.refused, ['handoff:not_target']);
});

test('the join retries through its seeds on the clock, and stops once the signal aborts', async (t) => {
  const ctl = new AbortController();
  const r = rig({ seeds: ['/ip4/10.0.0.9/tcp/1/p2p/pz'] }, ctl.signal);
  r.cluster.start();
  await settle();
  t.is(r.dialed.length, 1);
  t.is(r.clock.waiting, 1, 'parked in the pause between rounds');
  await r.clock.advance(499);
  await settle();
  t.is(r.dialed.length, 1);
  await r.clock.advance(1);
  await settle();
  t.is(r.dialed.length, 2, 'a round every 500 ms');
  let ringChanged = false;
  void r.cluster.ringChange(60_000).then(() => (ringChanged = true));
  ctl.abort();
  await settle();
  t.is(r.clock.waiting, 0, 'no sleep left: the join loop ended and ringChange waits resolved');
  t.true(ringChanged);
  await r.clock.advance(10_000);
  await settle();
  t.is(r.dialed.length, 2, 'nothing dials after the abort');
  t.false(r.cluster.joined());
});
