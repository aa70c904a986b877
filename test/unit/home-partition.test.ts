// The home around a partition, with stand-in peers: a copy of data that was replaced meanwhile
// is never handed over, and a resend that joins a copy in flight cannot crash the node when the
// node then loses the user.
import test from 'ava';
import type { Delivery } from '../../src/protocol/peer.ts';
import { UnavailableError } from '../../src/protocol/errors.ts';
import { homeOnStore, removeStores } from '../helpers/store.ts';
import { until } from '../helpers/node.ts';

test.after.always(removeStores);

async function setup(deliver: (d: Delivery) => Promise<void>, replicated: () => Promise<void> = async () => undefined) {
  const { home, store } = await homeOnStore({
    owns: (u) => u === 'alice',
    replicating: () => true,
    replicated,
    deliverRemote: deliver,
  });
  return { home, store };
}

test('a copy whose sender data was dropped for another copy is not handed over again', async (t) => {
  const tries: string[] = [];
  const { home, store } = await setup(async (d) => {
    tries.push(d.body);
    throw new UnavailableError("bob's home is cut off");
  });
  const sent = home.send('alice', 'bob', 'c1', 'minted on the minority');
  sent.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  t.is(tries.length, 1, 'the copy was tried once');
  // The rejoin finds the majority's copy contradicting this one: alice's data is dropped here.
  await store.dropUsers(['alice']);
  await new Promise((r) => setTimeout(r, 1500));
  t.is(tries.length, 1, 'no further attempt once the data it came from was dropped');
  t.deepEqual(await store.outbox(), [], 'and its outbox row went with the data');
});

test('a resend joining a copy in flight leaves no unhandled rejection when the node loses the user', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  let release!: () => void;
  const delivered = new Promise<void>((r) => (release = r));
  let calls = 0;
  const { home } = await setup(() => delivered, async () => {
    // The first send's entry is on every copy; the resend's wait fails: the node lost the user.
    if (++calls > 1) throw new UnavailableError('alice moved to another node while this write was in flight');
  });
  const first = home.send('alice', 'bob', 'c1', 'hello');
  first.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  const again = home.send('alice', 'bob', 'c1', 'hello');
  await t.throwsAsync(again, { name: 'UnavailableError' });
  await new Promise((r) => setTimeout(r, 100));
  release();
  await first;
  process.off('unhandledRejection', onUnhandled);
  t.deepEqual(unhandled, []);
});

test('the outbox replay hands over no copy of a write that was never confirmed, and hands it over once it is', async (t) => {
  // The home was cut off from its replicas (no lease): the write is not confirmed, the client is
  // answered unavailable, and the copy stays in the outbox. Bob's home is reachable (as right
  // after the heal, before this node hears that the others gave alice to another home): the
  // replay must still hold the copy back, for the client may have sent the cid again to that
  // home, and its copy is the one bob must get (CI once saw him get both).
  const landed: string[] = [];
  let cutOff = true;
  let refused = 0;
  const { home } = await setup(async (d) => {
    landed.push(d.body);
  }, async () => {
    if (cutOff) {
      refused++;
      throw new UnavailableError('this node cannot hear a majority of the cluster: the write is not confirmed');
    }
  });
  await t.throwsAsync(home.send('alice', 'bob', 'c1', 'minted while cut off'), { name: 'UnavailableError' });
  // The copy waits for alice's replicas to confirm (see Outbox.handOver): the replay leaves it.
  t.deepEqual(await home.replayOutbox(), { delivered: 0, failed: 0 }, 'the replay left the copy that waits');
  await until(() => refused >= 3, "the copy to wait for alice's replicas again, twice, while cut off");
  t.deepEqual(landed, [], 'no copy of an unconfirmed write reached the recipient');
  cutOff = false;
  await until(() => landed.length > 0, 'the copy to be handed over once confirmed');
  t.deepEqual(landed, ['minted while cut off'], 'confirmed at last (this node kept the user), the copy is handed over');
});
