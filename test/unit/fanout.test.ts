// The fan-out (src/group-home/fanout.ts) with in-memory stand-ins for the ring, the local home
// and the peer request function, on a manual clock: copies for members homed here go to the
// local home and the others in one request per home node; a node that refuses is asked again
// after RETRY_MS with only what it did not take, until the deadline; aborting the node's signal
// ends a fan-out that is waiting to retry.
import test from 'ava';
import { createFanout, REQUEST_COPIES } from '../../src/group-home/fanout.ts';
import type { Fanout } from '../../src/group-home/fanout.ts';
import { ManualClock } from '../../src/clock/index.ts';
import { CALL_DEADLINE_MS, RETRY_MS } from '../../src/channel/timing.ts';
import type { Ring } from '../../src/ring/index.ts';
import type { Home } from '../../src/home/home.ts';
import type { Router } from '../../src/cluster/router.ts';
import type { FanItem, PeerRequest } from '../../src/protocol/peer.ts';

const SELF = 'n1';
/** The home node of each user. */
const homeOf: Record<string, string> = { alice: 'n1', bob: 'n1', carol: 'n2', dave: 'n2', erin: 'n3' };

type Sent = { peer: string; items: FanItem[]; timeoutMs: number | undefined };
type Rig = {
  fan: Fanout; clock: ManualClock; ctl: AbortController;
  /** Batches the local home took, and requests sent to peers. */
  local: FanItem[][]; sent: Sent[];
  /** How a peer answers a request (default: every copy taken). */
  answer: (peer: string, items: FanItem[]) => unknown;
};

function rig(homes: Record<string, string> = homeOf): Rig {
  const r = { local: [], sent: [], clock: new ManualClock(1_000_000), ctl: new AbortController() } as unknown as Rig;
  r.answer = (_peer, items) => ({ t: 'done', value: items.map(() => []) });
  const ring = { version: 'r1', owner: (u: string) => homes[u] } as Pick<Ring, 'version' | 'owner'> as Ring;
  const local = {
    deliverFan: async (items: FanItem[]) => {
      r.local.push(items);
      return items.map(() => []);
    },
  } as Pick<Home, 'deliverFan'> as Home;
  r.fan = createFanout({
    self: SELF, ring: () => ring, joined: () => true, locals: { local }, router: {} as Router,
    peerOf: (name) => `peer-${name}`,
    request: async (peer, msg: PeerRequest, opts) => {
      if (msg.t !== 'fanout') throw new Error(`unexpected ${msg.t}`);
      r.sent.push({ peer, items: msg.items, timeoutMs: opts?.timeoutMs });
      return r.answer(peer, msg.items);
    },
    // No ring change in these tests: a retry waits for the clock.
    ringChange: () => new Promise<void>(() => undefined),
    clock: r.clock, signal: r.ctl.signal,
  });
  return r;
}

const item = (mid: string, users: string[]): FanItem => ({ mid, conv: 'g:g1', from: 'alice', group: 'g1', body: `body ${mid}`, ts: 1, users });
/** Lets the fan-out run until it waits on something (a request answered, a pause begun). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((ok) => setImmediate(ok));
};
const usersOf = (items: FanItem[]) => items.map((it) => [it.mid, it.users]);

test('copies for members homed here go to the local home, the others in one request per home node', async (t) => {
  const r = rig();
  await r.fan.fanout([item('m1', ['alice', 'carol', 'erin', 'bob']), item('m2', ['dave', 'bob'])]);
  t.deepEqual(r.local.map(usersOf), [[['m1', ['alice', 'bob']], ['m2', ['bob']]]]);
  const byPeer = Object.fromEntries(r.sent.map((s) => [s.peer, usersOf(s.items)]));
  t.deepEqual(byPeer, { 'peer-n2': [['m1', ['carol']], ['m2', ['dave']]], 'peer-n3': [['m1', ['erin']]] });
  t.is(r.sent.length, 2, 'one request per node, not per member');
  t.is(r.clock.waiting, 0, 'nothing to retry');
});

test('a large group\'s message goes to a node in requests of at most REQUEST_COPIES copies, in order', async (t) => {
  const users = Array.from({ length: REQUEST_COPIES + 100 }, (_, i) => `u${i}`);
  const r = rig(Object.fromEntries(users.map((u) => [u, 'n2'])));
  await r.fan.fanout([item('m1', users), item('m2', users.slice(0, 10))]);
  t.deepEqual(r.sent.map((s) => s.items.map((it) => it.users.length)), [[REQUEST_COPIES], [100, 10]]);
  t.deepEqual(r.sent.flatMap((s) => s.items.filter((it) => it.mid === 'm1').flatMap((it) => it.users)), users);
});

test('a node that refuses is asked again after RETRY_MS, for the copies it did not take only', async (t) => {
  const r = rig();
  let refusals = 1;
  r.answer = (peer, items) => {
    if (peer === 'peer-n2' && refusals-- > 0) return { t: 'done', value: items.map((it) => it.users.filter((u) => u === 'dave')) };
    return { t: 'done', value: items.map(() => []) };
  };
  let done = false;
  const p = r.fan.fanout([item('m1', ['alice', 'carol', 'dave', 'erin'])]).then(() => void (done = true));
  await settle();
  t.is(r.sent.length, 2);
  t.is(r.clock.waiting, 1, 'parked in the pause before the retry');
  t.is(r.sent[0]!.timeoutMs, 5000, 'a request waits at most 5 s, within the deadline');
  await r.clock.advance(RETRY_MS - 1);
  await settle();
  t.is(r.sent.length, 2, 'not before RETRY_MS');
  t.false(done);
  await r.clock.advance(1);
  await settle();
  await p;
  t.deepEqual(r.sent.slice(2).map((s) => [s.peer, usersOf(s.items)]), [['peer-n2', [['m1', ['dave']]]]]);
  t.is(r.local.length, 1, 'the local copies were taken the first time');
});

test('a node that keeps failing is given up after CALL_DEADLINE_MS: unavailable, with the copies left', async (t) => {
  const r = rig();
  r.answer = (peer, items) => (peer === 'peer-n3' ? { t: 'fail', code: 'unavailable', message: 'busy' } : { t: 'done', value: items.map(() => []) });
  const p = r.fan.fanout([item('m1', ['carol', 'erin'])]);
  let err: Error | undefined;
  p.catch((e: Error) => void (err = e));
  await settle();
  let waited = 0;
  while (!err && waited <= CALL_DEADLINE_MS + RETRY_MS) {
    await r.clock.advance(RETRY_MS);
    waited += RETRY_MS;
    await settle();
  }
  t.is(err?.name, 'UnavailableError');
  t.regex(err!.message, /^1 member copies could not be delivered/);
  t.true(waited >= CALL_DEADLINE_MS && waited < CALL_DEADLINE_MS + RETRY_MS, `gave up after ${waited} ms`);
  t.is(r.sent.filter((s) => s.peer === 'peer-n2').length, 1, 'the node that took its copy was not asked again');
  t.is(r.clock.waiting, 0);
});

test('aborting the signal ends a fan-out waiting to retry: the caller gets unavailable, nothing retries', async (t) => {
  const r = rig();
  r.answer = () => ({ t: 'fail', code: 'unavailable', message: 'busy' });
  const p = r.fan.fanout([item('m1', ['alice', 'carol'])]);
  await settle();
  t.is(r.clock.waiting, 1);
  const asked = r.sent.length;
  r.ctl.abort();
  const err = await t.throwsAsync(p);
  t.is(err?.name, 'UnavailableError');
  t.regex(err!.message, /stopping/);
  t.is(r.clock.waiting, 0, 'no pause left waiting');
  await r.clock.advance(10 * RETRY_MS);
  await settle();
  t.is(r.sent.length, asked, 'no request after the abort');
  // A fan-out started after the stop does not begin a retry loop either.
  await t.throwsAsync(r.fan.fanout([item('m2', ['carol'])]), { name: 'UnavailableError' });
});

test('fan-outs of several groups to one node share its channel: one request in flight, the copies that came meanwhile go together next', async (t) => {
  const r = rig();
  const gates: (() => void)[] = [];
  const answer = r.answer;
  r.answer = (peer, items) => new Promise((ok) => gates.push(() => ok(answer(peer, items))));
  const first = r.fan.fanout([item('m1', ['carol'])]);
  await settle();
  const second = r.fan.fanout([item('m2', ['dave']), { ...item('m3', ['carol']), conv: 'g:g2', group: 'g2' }]);
  const third = r.fan.fanout([{ ...item('m4', ['dave']), conv: 'g:g3', group: 'g3' }]);
  await settle();
  t.is(r.sent.length, 1, 'the other groups wait while a request to n2 is in flight');
  gates.shift()!();
  await settle();
  t.deepEqual(r.sent.map((s) => usersOf(s.items)), [[['m1', ['carol']]], [['m2', ['dave']], ['m3', ['carol']], ['m4', ['dave']]]]);
  gates.shift()!();
  await Promise.all([first, second, third]);
  t.is(r.sent.length, 2);
});
