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
