// OrderedChannel and the Drain under it: per destination one batch in flight, batches cut by count and weight, queued
// items taken back on demand; the KeyedBatcher and the router's deliveries stand on it.
import test from 'ava';
import { OrderedChannel } from '../../src/channel/ordered.ts';

function gated() {
  const sent: [string, number[]][] = [];
  const gates: (() => void)[] = [];
  const ch = new OrderedChannel<number>(async (dest, batch) => {
    sent.push([dest, batch]);
    await new Promise<void>((r) => gates.push(r));
  }, { maxItems: 3, limits: [{ weigh: (n) => n, budget: 10 }] });
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

test('every limit holds: a batch ends at the first item that would pass any of them', async (t) => {
  const sent: [string, [number, number][]][] = [];
  const gates: (() => void)[] = [];
  const ch = new OrderedChannel<[number, number]>(async (dest, batch) => {
    sent.push([dest, batch]);
    await new Promise<void>((r) => gates.push(r));
  }, { maxItems: 10, limits: [{ weigh: (x) => x[0], budget: 10 }, { weigh: (x) => x[1], budget: 5 }] });
  const release = async () => {
    gates.shift()!();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  ch.push('a', [1, 1]);
  // Queued: 3+3 = 6 of 10 and 2+3 = 5 of 5; the next would pass the second limit only.
  for (const x of [[3, 2], [3, 3], [1, 1], [20, 0]] as [number, number][]) ch.push('a', x);
  await release();
  t.deepEqual(sent[1], ['a', [[3, 2], [3, 3]]]);
  await release();
  // [1,1] then [20,0] passes the first limit: it goes alone in the batch after.
  t.deepEqual(sent[2], ['a', [[1, 1]]]);
  await release();
  t.deepEqual(sent[3], ['a', [[20, 0]]]);
  await release();
  t.is(ch.busy, 0);
});

test('a drain runs one batch at a time: a kick while busy starts nothing; a batch that throws stops it until the next kick', async (t) => {
  const { Drain } = await import('../../src/channel/drain.ts');
  const work: number[] = [1, 2, 3];
  let running = 0;
  let most = 0;
  const errors: string[] = [];
  const gates: (() => void)[] = [];
  const d = new Drain({
    more: () => work.length > 0,
    next: async () => {
      most = Math.max(most, ++running);
      const n = work.shift()!;
      await new Promise<void>((r) => gates.push(r));
      running--;
      if (n === 2) throw new Error('batch 2 failed');
    },
    failed: (e) => errors.push(e.message),
  });
  d.kick();
  d.kick();
  t.true(d.busy);
  for (let i = 0; i < 2; i++) {
    gates.shift()!();
    for (let k = 0; k < 5; k++) await Promise.resolve();
  }
  t.deepEqual(errors, ['batch 2 failed']);
  t.false(d.busy, 'stopped after the failure, with 3 still queued');
  t.deepEqual(work, [3]);
  d.kick();
  gates.shift()!();
  for (let k = 0; k < 5; k++) await Promise.resolve();
  t.deepEqual(work, []);
  t.is(most, 1, 'never two batches at once');
});
