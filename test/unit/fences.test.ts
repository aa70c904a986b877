// A connection's sends stay in order across a refusal the gateway cannot call back: the home
// fences the lane's epoch when it refuses a send, refuses the later sends of that epoch, and takes
// them again in the lane's next epoch (src/home/fences.ts, src/gateway/lane.ts). Against a real
// home on a real SQLite store, with the home's ownership of the sender switched on cue.
import test from 'ava';
import { Fences, MAX_FENCES, MAX_SEEN } from '../../src/home/fences.ts';
import { Lane } from '../../src/gateway/lane.ts';
import { UnavailableError } from '../../src/protocol/errors.ts';
import { homeOnStore, removeStores } from '../helpers/store.ts';

test.after.always(removeStores);

test('a refusal fences its epoch; a later epoch passes and lifts the fence; other lanes are untouched', (t) => {
  const f = new Fences();
  t.false(f.blocks({ lane: 'a', epoch: 0 }));
  f.refused({ lane: 'a', epoch: 0 });
  t.true(f.blocks({ lane: 'a', epoch: 0 }));
  t.false(f.blocks({ lane: 'b', epoch: 0 }));
  t.false(f.blocks({ lane: 'a', epoch: 1 }));
  t.false(f.blocks(undefined), 'a send without a mark (an older gateway) is never fenced');
  f.taken({ lane: 'a', epoch: 0 }); // blocked itself: the fence stays
  t.true(f.blocks({ lane: 'a', epoch: 0 }));
  f.taken({ lane: 'a', epoch: 1 });
  t.is(f.size, 0);
  t.false(f.blocks({ lane: 'a', epoch: 0 }));
});

test('fences are bounded: past MAX_FENCES lanes the oldest goes', (t) => {
  const f = new Fences();
  for (let i = 0; i <= MAX_FENCES; i++) f.refused({ lane: `l${i}`, epoch: 0 });
  t.is(f.size, MAX_FENCES);
  t.false(f.blocks({ lane: 'l0', epoch: 0 }));
  t.true(f.blocks({ lane: `l${MAX_FENCES}`, epoch: 0 }));
});

test('a lane moves to the next epoch when a send of its current one is refused, never back', (t) => {
  const lane = new Lane();
  const m0 = lane.mark();
  t.is(m0.epoch, 0);
  t.is(m0.lane, lane.id);
  t.not(new Lane().id, lane.id);
  lane.refused(m0);
  lane.refused(m0); // the next send of the same epoch, refused too
  t.is(lane.mark().epoch, 1);
  lane.refused({ lane: lane.id, epoch: 0 }); // a late answer for an old epoch
  t.is(lane.mark().epoch, 1);
});

test('a home that refuses a send and serves again a moment later takes the same connection\'s next sends only after the refused one', async (t) => {
  let serving = false;
  const { home } = await homeOnStore({ owns: (u) => u !== 'alice' || serving });
  const lane = new Lane();
  // Three sends of one connection on their way together, in epoch 0; alice is not served yet.
  const at0 = lane.mark();
  const first = home.send('alice', 'bob', 'c1', 'one', undefined, at0);
  await t.throwsAsync(first, { instanceOf: UnavailableError });
  lane.refused(at0);
  // The home serves again before the next two arrive: they are refused all the same.
  serving = true;
  await t.throwsAsync(home.send('alice', 'bob', 'c2', 'two', undefined, at0), { instanceOf: UnavailableError, message: /earlier send of this connection/ });
  await t.throwsAsync(home.send('alice', 'bob', 'c3', 'three', undefined, at0), { instanceOf: UnavailableError });
  // Retried in the lane's order and its next epoch, they are taken, in that order.
  const at1 = lane.mark();
  t.is(at1.epoch, 1);
  for (const [cid, body] of [['c1', 'one'], ['c2', 'two'], ['c3', 'three']] as const) await home.send('alice', 'bob', cid, body, undefined, at1);
  // Another connection of alice's was never fenced.
  await home.send('alice', 'bob', 'c4', 'four', undefined, new Lane().mark());
  const page = await home.sync('alice', 0, 10);
  t.deepEqual(page.msgs.map((m) => m.body), ['one', 'two', 'three', 'four']);
});

test('a send whose recipient\'s gate cannot answer now fences the connection as a refused write does', async (t) => {
  let gateDown = true;
  const { home } = await homeOnStore({
    owns: () => true,
    social: {
      presenceFor: () => undefined, presenceChanged: () => undefined, load: async () => undefined,
      // bob's home does not answer for the first send; the cache says yes for carol at once.
      gate: (_from: string, to: string) => (to === 'carol' ? true : gateDown ? Promise.reject(new UnavailableError("bob's home did not answer")) : Promise.resolve()),
    } as never,
  });
  const lane = new Lane();
  const at0 = lane.mark();
  const first = home.send('alice', 'bob', 'c1', 'to bob', undefined, at0);
  const second = home.send('alice', 'carol', 'c2', 'to carol', undefined, at0);
  await t.throwsAsync(first, { instanceOf: UnavailableError });
  await t.throwsAsync(second, { instanceOf: UnavailableError, message: /earlier send of this connection/ });
  lane.refused(at0);
  gateDown = false;
  await home.send('alice', 'bob', 'c1', 'to bob', undefined, lane.mark());
  await home.send('alice', 'carol', 'c2', 'to carol', undefined, lane.mark());
  t.deepEqual((await home.sync('alice', 0, 10)).msgs.map((m) => m.body), ['to bob', 'to carol']);
});

test('a send the ring moved away may not be passed on ahead of an earlier send of its connection refused or still held here', async (t) => {
  let serving = true;
  const { home } = await homeOnStore({ owns: (u) => u !== 'alice' || serving });
  const lane = new Lane();
  const at0 = lane.mark();
  t.false(home.lanes.overtakes(at0, 'b'), 'nothing of the lane here: a later send may be passed on');
  t.false(home.lanes.overtakes(undefined, 'b'), 'a send without a mark is passed on');
  // The home stops serving alice (a handoff freeze) while her first send is on its way: refused.
  serving = false;
  await t.throwsAsync(home.send('alice', 'bob', 'c1', 'one', undefined, at0), { instanceOf: UnavailableError });
  // The ring then names another home; the connection's next send reaches this node: it must not
  // go ahead to the new home while the first one comes back.
  t.true(home.lanes.overtakes(at0, 'b'));
  t.true(home.lanes.overtakes(at0, 'b'), 'nor the ones after it');
  t.false(home.lanes.overtakes({ lane: lane.id, epoch: 1 }, 'b'), 'the retries, in the next epoch, go on');
  t.false(home.lanes.overtakes(new Lane().mark(), 'b'), 'another connection is untouched');
  // A send still held here (taken, waiting for its copies) keeps a later one from being passed on
  // in any epoch, until it is answered.
  serving = true;
  let release!: () => void;
  const copies = new Promise<void>((ok) => (release = ok));
  let waiting = false;
  const slow = await homeOnStore({ owns: () => true, replicated: () => ((waiting = true), copies) });
  const other = new Lane();
  const pending = slow.home.send('alice', 'bob', 'c1', 'one', undefined, other.mark());
  while (!waiting) await new Promise((r) => setImmediate(r));
  t.true(slow.home.lanes.overtakes(other.mark(), 'b'));
  release();
  await pending;
  t.false(slow.home.lanes.overtakes({ lane: other.id, epoch: 1 }, 'b'));
});

test('sends passed on to one node keep their order; a later one for another node, or taken here meanwhile, would not: refused and fenced', async (t) => {
  let serving = false;
  const { home } = await homeOnStore({ owns: () => serving });
  const lane = new Lane();
  const at = lane.mark();
  let answer!: () => void;
  const onItsWay = home.lanes.passing(at, 'b', new Promise<void>((ok) => (answer = ok)));
  t.false(home.lanes.overtakes(at, 'b'), 'the same way: the link to b is FIFO');
  t.true(home.lanes.overtakes(at, 'c'), 'another way could arrive first');
  // This node becomes the home while the first send is still on its way to b (whose answer may be a
  // refusal the gateway retries): the next one is not taken here ahead of it.
  serving = true;
  await t.throwsAsync(home.send('alice', 'bob', 'c2', 'two', undefined, { lane: lane.id, epoch: 0 }), { instanceOf: UnavailableError, message: /on its way to another node/ });
  answer();
  await onItsWay;
  // The retries come in the next epoch and are taken.
  t.is((await home.send('alice', 'bob', 'c1', 'one', undefined, { lane: lane.id, epoch: 1 })).seq, 1);
  t.is((await home.send('alice', 'bob', 'c2', 'two', undefined, { lane: lane.id, epoch: 1 })).seq, 2);
});

test('a send whose predecessor the link lost is refused and fences its epoch; the retries, in order, are taken', async (t) => {
  const { home } = await homeOnStore({ owns: () => true });
  const lane = new Lane();
  const s1 = lane.open(true);
  const s2 = lane.open(true);
  const s3 = lane.open(true);
  await Promise.all([lane.admit(s1, 'b'), lane.admit(s2, 'b'), lane.admit(s3, 'b')]);
  // s1 never reaches the home (its stream closed); s2 and s3, queued behind it, arrive on a new one.
  await t.throwsAsync(home.send('alice', 'bob', 'c2', 'two', undefined, lane.markOf(s2)), { instanceOf: UnavailableError, message: /did not arrive here/ });
  await t.throwsAsync(home.send('alice', 'bob', 'c3', 'three', undefined, lane.markOf(s3)), { instanceOf: UnavailableError, message: /earlier send of this connection/ });
  t.deepEqual((await home.sync('alice', 0, 10)).msgs, [], 'nothing taken ahead of the lost one');
  // The gateway learns of all three failures and retries them in its order.
  for (const s of [s1, s2, s3]) {
    lane.refused(lane.markOf(s));
    lane.retrying(s);
  }
  const again = [lane.admit(s1, 'b'), lane.admit(s2, 'b'), lane.admit(s3, 'b')];
  await Promise.all(again);
  for (const [s, cid, body] of [[s1, 'c1', 'one'], [s2, 'c2', 'two'], [s3, 'c3', 'three']] as const) {
    await home.send('alice', 'bob', cid, body, undefined, lane.markOf(s));
    lane.close(s);
  }
  t.deepEqual((await home.sync('alice', 0, 10)).msgs.map((m) => m.body), ['one', 'two', 'three']);
});

test('a send behind one that arrived is taken; what each lane last sent is bounded', (t) => {
  const f = new Fences();
  t.false(f.arrives({ lane: 'a', epoch: 0, n: 1 }));
  t.false(f.arrives({ lane: 'a', epoch: 0, n: 2, after: 1 }));
  t.false(f.arrives({ lane: 'a', epoch: 0, n: 3 }), 'nothing before it');
  t.false(f.arrives(undefined));
  t.false(f.arrives({ lane: 'a', epoch: 0 }), 'no attempt number (a call outside a lane turn)');
  t.is(f.size, 0, 'nothing fenced');
  for (let i = 0; i <= MAX_SEEN; i++) f.arrives({ lane: `l${i}`, epoch: 0, n: 1 });
  // lane a went first: forgotten, so a send behind its attempt 3 is refused until it is answered.
  t.true(f.arrives({ lane: 'a', epoch: 0, n: 4, after: 3 }));
  t.false(f.arrives({ lane: `l${MAX_SEEN}`, epoch: 0, n: 2, after: 1 }));
});
