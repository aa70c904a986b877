// The lane that keeps one connection's calls in order across retries and ring changes.
import test from 'ava';
import { Lane } from '../../src/gateway/lane.ts';

/** Records the order in which admits resolve. */
function recorder() {
  const order: string[] = [];
  const admit = (lane: Lane, t: ReturnType<Lane['open']>, owner: string, name: string) =>
    lane.admit(t, owner).then(() => void order.push(name));
  return { order, admit };
}
const tick = () => new Promise((r) => setImmediate(r));

test('calls to the same home go at once, in order, however many are in flight', async (t) => {
  const lane = new Lane();
  const { order, admit } = recorder();
  const ts = [lane.open(), lane.open(), lane.open()];
  await Promise.all(ts.map((x, i) => admit(lane, x, 'n1', `c${i}`)));
  t.deepEqual(order, ['c0', 'c1', 'c2']);
  for (const x of ts) lane.close(x);
  t.is(lane.size, 0);
});

test('a call to another home waits until the earlier calls are answered', async (t) => {
  const lane = new Lane();
  const { order, admit } = recorder();
  const a = lane.open();
  const b = lane.open();
  await admit(lane, a, 'n1', 'a');
  void admit(lane, b, 'n2', 'b');
  await tick();
  t.deepEqual(order, ['a'], 'b waits: a is still on its way to n1');
  lane.close(a);
  await tick();
  t.deepEqual(order, ['a', 'b']);
});

test('a call that will be retried holds back every later call until it goes again', async (t) => {
  const lane = new Lane();
  const { order, admit } = recorder();
  const a = lane.open();
  const b = lane.open();
  await admit(lane, a, 'n1', 'a1');
  lane.retrying(a); // n1 died: a retries on the next ring
  void admit(lane, b, 'n2', 'b');
  await tick();
  t.deepEqual(order, ['a1']);
  await admit(lane, a, 'n2', 'a2'); // the retry goes first, to the new home
  await tick();
  t.deepEqual(order, ['a1', 'a2', 'b'], 'b follows it to the same home');
  lane.close(a);
  lane.close(b);
});

test('a later call opened before an earlier one has chosen its home waits for it', async (t) => {
  const lane = new Lane();
  const { order, admit } = recorder();
  const a = lane.open();
  const b = lane.open();
  void admit(lane, b, 'n1', 'b');
  await tick();
  t.deepEqual(order, []);
  await admit(lane, a, 'n1', 'a');
  await tick();
  t.deepEqual(order, ['a', 'b']);
});

test('a shut lane refuses the calls not yet on their way, and every later one', async (t) => {
  const lane = new Lane();
  const a = lane.open();
  const b = lane.open();
  const c = lane.open();
  await lane.admit(a, 'n1');
  lane.retrying(a); // a's home died: a waits to retry, b waits behind it
  const pb = lane.admit(b, 'n2');
  lane.shut(); // the client disconnected (it will resend on its next connection)
  await t.throwsAsync(pb, { name: 'LaneClosedError' });
  await t.throwsAsync(lane.admit(a, 'n2'), { name: 'LaneClosedError' }, 'the retry of a does not go either');
  await t.throwsAsync(lane.admit(c, 'n1'), { name: 'LaneClosedError' });
});

test('a lane numbers its sends as it lets them go, each behind the one before it, with the epoch of that moment', async (t) => {
  const lane = new Lane();
  const s1 = lane.open(true);
  const read = lane.open(); // a call that is not a send: no mark, and no link in the chain
  const s2 = lane.open(true);
  await Promise.all([lane.admit(s1, 'b'), lane.admit(read, 'b'), lane.admit(s2, 'b')]);
  const m1 = lane.markOf(s1);
  const m2 = lane.markOf(s2);
  t.like(m1, { lane: lane.id, epoch: 0, n: 1 });
  t.false('after' in m1, 'nothing unanswered before it');
  t.like(m2, { epoch: 0, n: 2, after: 1 }, 'sent behind s1, the read between does not count');
  t.is(read.mark, undefined);
  // s1 refused: the lane moves on, but s2 keeps the epoch it was let go with.
  lane.refused(m1);
  lane.retrying(s1);
  t.is(lane.markOf(s2).epoch, 0);
  lane.close(s2);
  lane.close(read);
  // Let go again: a new number, the new epoch, nothing before it.
  await lane.admit(s1, 'c');
  t.deepEqual(lane.markOf(s1), { lane: lane.id, epoch: 1, n: 3 });
});
