// KeyedBatcher: per key one batch at a time, items in the order added, per-item errors.
import test from 'ava';
import { KeyedBatcher } from '../../src/channel/batcher.ts';

test('one batch per key at a time; items added meanwhile go together, in order', async (t) => {
  const runs: [string, number[]][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const b = new KeyedBatcher<number, number>(async (key, items) => {
    runs.push([key, items]);
    if (runs.length === 1) await gate;
    return items.map((i) => i * 10);
  });
  const first = b.add('k', 1);
  await Promise.resolve();
  const later = [2, 3, 4].map((i) => b.add('k', i));
  const other = b.add('j', 9);
  t.is(await other, 90, 'another key does not wait');
  release();
  t.deepEqual(await Promise.all([first, ...later]), [10, 20, 30, 40]);
  t.deepEqual(runs, [['k', [1]], ['j', [9]], ['k', [2, 3, 4]]]);
  t.is(b.size, 0);
});

test('an Error in the answer fails that item alone; a thrown run fails the batch', async (t) => {
  const b = new KeyedBatcher<number, number>(async (_k, items) => {
    if (items.includes(0)) throw new Error('boom');
    return items.map((i) => (i % 2 ? new Error(`odd ${i}`) : i));
  });
  const [one, two] = await Promise.allSettled([b.add('k', 1), b.add('k', 2)]);
  t.is(one.status, 'rejected');
  t.deepEqual(two, { status: 'fulfilled', value: 2 });
  await t.throwsAsync(b.add('k', 0), { message: 'boom' });
  t.is(await b.add('k', 4), 4, 'the key works after a failed batch');
});

test('a batch holds at most maxBatch items', async (t) => {
  const sizes: number[] = [];
  const b = new KeyedBatcher<number, number>(async (_k, items) => {
    sizes.push(items.length);
    return items;
  }, 3);
  await Promise.all(Array.from({ length: 7 }, (_, i) => b.add('k', i)));
  t.deepEqual(sizes, [1, 3, 3], 'the first goes at once, the rest wait for it');
});

test('with a weight, a batch stops before going over it, and always takes one', async (t) => {
  const sizes: number[][] = [];
  const b = new KeyedBatcher<number, number>(async (_k, items) => {
    sizes.push(items);
    return items;
  }, 100, (i) => i, 10);
  await Promise.all([1, 4, 4, 4, 20, 3].map((i) => b.add('k', i)));
  t.deepEqual(sizes, [[1], [4, 4], [4], [20], [3]]);
});
