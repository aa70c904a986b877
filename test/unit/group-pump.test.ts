// The group home's pump (src/group-home/group-pump.ts) on a real store, a stand-in fan-out and a
// manual clock: a page the members' homes did not take is handed out again after a pause on the
// clock; a post waits for its fan-out at most the deadline; aborting the node's signal ends the
// pump's retries and answers the posts waiting for it.
import test from 'ava';
import pino from 'pino';
import { createGroups } from '../../src/group-home/groups.ts';
import type { Groups } from '../../src/group-home/groups.ts';
import { ManualClock } from '../../src/clock/index.ts';
import { COPY_DEADLINE_MS } from '../../src/channel/timing.ts';
import { createMidGenerator, midTime } from '../../src/home/ids.ts';
import type { FanItem, GroupPost, PostResult } from '../../src/protocol/peer.ts';
import { openStore, removeStores } from '../helpers/store.ts';

test.after.always(removeStores);

type Rig = { g: Groups; clock: ManualClock; ctl: AbortController; calls: FanItem[][]; fan: (items: FanItem[]) => Promise<void> };

async function rig(): Promise<Rig> {
  const { s: store } = await openStore();
  const r = { clock: new ManualClock(Date.now()), ctl: new AbortController(), calls: [] } as unknown as Rig;
  r.fan = async () => undefined;
  r.g = createGroups({
    store, owns: () => true, replicated: async () => undefined, nextMid: createMidGenerator('PMPTEST0'), midTime, maxMembers: 100,
    fanout: (items) => {
      r.calls.push(items);
      return r.fan(items);
    },
    // No ring change in these tests: a retry waits for the clock.
    ringChange: () => new Promise<void>(() => undefined),
    relay: async () => undefined, log: pino({ level: 'silent' }),
    clock: r.clock, signal: r.ctl.signal,
  });
  return r;
}

const post = (cid: string): GroupPost => ({ from: 'alice', cid, mid: `M${cid.padStart(8, '0')}`, body: `body ${cid}`, ts: 1 });
/** Waits (in real time, briefly) until `ok` holds: the store commits on its own schedule. */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 2));
}
const codeOf = (r: PostResult) => ('code' in r ? r.code : 'sent');

test('a page the members\' homes refused goes out again after the pause on the clock, and the post is answered', async (t) => {
  const r = await rig();
  await r.g.op('alice', 'create', 'g1', ['bob']);
  r.fan = async () => {
    throw new Error('bob\'s home is down');
  };
  const answer = r.g.post('g1', [post('p1')]);
  await until(() => r.calls.length === 1 && r.clock.waiting > 0);
  t.is(r.calls.length, 1);
  await r.clock.advance(99);
  t.is(r.calls.length, 1, 'the first pause is 100 ms');
  r.fan = async () => undefined;
  await r.clock.advance(1);
  const [res] = await answer;
  t.is(codeOf(res!), 'sent');
  t.deepEqual(r.calls.map((c) => c.map((it) => it.cid)), [['p1'], ['p1']], 'the same page again');
});

test('a post whose fan-out outlasts COPY_DEADLINE_MS on the clock is answered unavailable', async (t) => {
  const r = await rig();
  await r.g.op('alice', 'create', 'g2', ['bob']);
  const held = Promise.withResolvers<void>();
  r.fan = () => held.promise;
  const answer = r.g.post('g2', [post('p2')]);
  await until(() => r.calls.length === 1 && r.clock.waiting === 1);
  await r.clock.advance(COPY_DEADLINE_MS - 1);
  let settled = false;
  void answer.then(() => void (settled = true));
  await new Promise((ok) => setImmediate(ok));
  t.false(settled, 'not before the deadline');
  await r.clock.advance(1);
  const [res] = await answer;
  t.is(codeOf(res!), 'unavailable');
  t.regex((res as { message: string }).message, /did not all take the message in time/);
  held.resolve();
});

test('aborting the signal ends the pump\'s retries and answers the post waiting for it', async (t) => {
  const r = await rig();
  await r.g.op('alice', 'create', 'g3', ['bob']);
  r.fan = async () => {
    throw new Error('bob\'s home is down');
  };
  const answer = r.g.post('g3', [post('p3')]);
  await until(() => r.calls.length === 1 && r.clock.waiting === 2);
  t.is(r.clock.waiting, 2, 'the post\'s deadline and the pump\'s pause');
  t.is(r.g.progress().pumping, 1);
  r.ctl.abort();
  const err = await t.throwsAsync(answer);
  t.is(err?.name, 'UnavailableError');
  t.regex(err!.message, /stopping/);
  await until(() => r.g.progress().pumping === 0);
  t.is(r.g.progress().pumping, 0, 'the pump ended');
  t.is(r.clock.waiting, 0, 'nothing waits on the clock');
  await r.clock.advance(60_000);
  t.is(r.calls.length, 1, 'no retry after the abort');
});
