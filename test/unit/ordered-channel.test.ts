// OrderedChannel: per destination one batch in flight, batches cut by count and size, queued
// items taken back on demand; the KeyedBatcher and the router's deliveries stand on it.
import test from 'ava';
import { OrderedChannel } from '../../src/channel/ordered.ts';

function gated() {
  const sent: [string, number[]][] = [];
  const gates: (() => void)[] = [];
  const ch = new OrderedChannel<number>(async (dest, batch) => {
    sent.push([dest, batch]);
    await new Promise<void>((r) => gates.push(r));
  }, { maxItems: 3, weigh: (n) => n, budget: 10 });
  const release = async () => {
    gates.shift()!();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { ch, sent, release };
}

test('one batch in flight per destination; what comes meanwhile goes next, cut by count and by size', async (t) => {
  const { ch, sent, release } = gated();
  ch.push('a', 1);
  for (const n of [2, 3, 4, 5]) ch.push('a', n);
  ch.push('b', 9);
  t.deepEqual(sent, [['a', [1]], ['b', [9]]], 'b does not wait for a');
  await release();
  // 2+3+4 = 9 fits the budget of 10 and the count of 3; 5 waits for the next batch.
  t.deepEqual(sent[2], ['a', [2, 3, 4]]);
  await release();
  await release();
  t.deepEqual(sent[3], ['a', [5]]);
  t.is(ch.busy, 1);
  await release();
  t.is(ch.busy, 0);
});

test('an item heavier than the budget goes alone; withdraw takes back queued items only, destination by destination', async (t) => {
  const { ch, sent, release } = gated();
  ch.push('a', 50);
  for (const n of [1, 2, 3]) ch.push('a', n);
  for (const n of [4, 6, 8]) ch.push('b', n);
  t.deepEqual(sent, [['a', [50]], ['b', [4]]]);
  // In flight (50, 4) stays; queued even ones come back, a's before b's, each in queue order.
  t.deepEqual(ch.withdraw((n) => n % 2 === 0), [2, 6, 8]);
  await release();
  t.deepEqual(sent[2], ['a', [1, 3]]);
  await release();
  t.is(sent.length, 3, 'b has nothing left to send');
});
