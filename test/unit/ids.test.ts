// Message ids: strictly increasing per generator under any clock (same ms, forwards, backwards, counter overflow), midTime, node tags.
import test from 'ava';
import { createMidGenerator, midTime, randomNodeTag } from '../../src/home/ids.ts';

const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const MID_RE = /^[0-9A-HJKMNP-TV-Z]{22}$/;
const TAG_RE = /^[0-9A-HJKMNP-TV-Z]{8}$/;
const T0 = 1_763_900_000_000;
const COUNTER_MAX = 32 ** 4;

function fakeClock(start = T0) {
  const c = { t: start, now: (): number => c.t };
  return c;
}

test('many ids in the same millisecond are strictly increasing and carry that time', (t) => {
  const clock = fakeClock();
  const next = createMidGenerator('NDE00001', clock.now);
  let prev = '';
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = next();
    t.regex(id, MID_RE);
    t.true(id.endsWith('NDE00001'));
    if (id <= prev) t.fail(`${id} after ${prev}`);
    if (midTime(id) !== T0) t.fail(`midTime ${midTime(id)} at ${i}`);
    seen.add(id);
    prev = id;
  }
  t.is(seen.size, 10_000);
});

test('ids across milliseconds are strictly increasing and each carries its own time', (t) => {
  const clock = fakeClock();
  const next = createMidGenerator('NDE00001', clock.now);
  let prev = '';
  for (let i = 0; i < 5_000; i++) {
    if (i % 3 === 0) clock.t += 1 + (i % 7) * 13; // irregular steps forward
    const id = next();
    t.true(id > prev, `${id} after ${prev}`);
    t.is(midTime(id), clock.t);
    prev = id;
  }
});

test('a new millisecond restarts the counter', (t) => {
  const clock = fakeClock();
  const next = createMidGenerator('NDE00001', clock.now);
  const a = next();
  const b = next();
  clock.t++;
  const c = next();
  t.is(a.slice(10, 14), '0000');
  t.is(b.slice(10, 14), '0001');
  t.is(c.slice(10, 14), '0000');
  t.true(a < b && b < c);
});

test('a clock that steps backwards still gives strictly increasing ids that never go back in time', (t) => {
  const clock = fakeClock();
  const next = createMidGenerator('NDE00001', clock.now);
  const times = [T0, T0, T0 - 1, T0 - 5000, T0 - 5000, 0, T0, T0 + 1, T0 + 1, T0 - 10, T0 + 2, T0 - 86_400_000, T0 + 3];
  let prev = '';
  let high = 0;
  for (const time of times) {
    clock.t = time;
    const id = next();
    high = Math.max(high, time);
    t.true(id > prev, `${id} after ${prev} (clock ${time})`);
    t.is(midTime(id), high, 'the time in the id is the highest clock seen, never a step back');
    prev = id;
  }
});

test('counter overflow within one millisecond borrows the next millisecond and stays increasing', (t) => {
  const clock = fakeClock();
  const next = createMidGenerator('NDE00001', clock.now);
  let prev = '';
  let last = '';
  // Every id of the first ms: counters 0 .. 32^4-1.
  for (let i = 0; i < COUNTER_MAX; i++) {
    const id = next();
    if (!(id > prev)) {
      t.fail(`not increasing at ${i}: ${id} after ${prev}`);
      return;
    }
    if (midTime(id) !== T0) {
      t.fail(`id ${i} left ms ${T0}: ${id}`);
      return;
    }
    prev = id;
    last = id;
  }
  t.is(last.slice(10, 14), 'ZZZZ');
  // The next one in the same clock ms borrows T0 + 1.
  const borrowed = next();
  t.true(borrowed > last);
  t.is(midTime(borrowed), T0 + 1);
  t.is(borrowed.slice(10, 14), '0000');
  // More in the same (stale) clock ms keep counting in the borrowed ms.
  const more = [next(), next(), next()];
  t.deepEqual(more.map(midTime), [T0 + 1, T0 + 1, T0 + 1]);
  t.true(borrowed < more[0]! && more[0]! < more[1]! && more[1]! < more[2]!);
  // When the real clock reaches the borrowed ms, ids continue after the borrowed ones.
  clock.t = T0 + 1;
  const caught = next();
  t.true(caught > more[2]!);
  t.is(midTime(caught), T0 + 1);
  // A clock step back after the overflow is no problem either.
  clock.t = T0 - 1;
  const back = next();
  t.true(back > caught);
  t.is(midTime(back), T0 + 1);
  // And a later ms starts afresh.
  clock.t = T0 + 2;
  const fresh = next();
  t.true(fresh > back);
  t.is(midTime(fresh), T0 + 2);
  t.is(fresh.slice(10, 14), '0000');
});

test('midTime recovers the clock time of an id', (t) => {
  for (const time of [1, 31, 32, 1023, 1024, 1_000_000, T0, 2 ** 40, 2 ** 50 - 1]) {
    const next = createMidGenerator('ABCDEFGH', () => time);
    t.is(midTime(next()), time, String(time));
  }
  const before = Date.now();
  const id = createMidGenerator('ABCDEFGH')();
  const after = Date.now();
  const at = midTime(id);
  t.true(at >= before && at <= after, 'the default clock is Date.now');
});

test('ids sort by creation time across nodes', (t) => {
  const clock = fakeClock();
  const a = createMidGenerator('AAAAAAAA', clock.now);
  const z = createMidGenerator('ZZZZZZZZ', clock.now);
  const fromZ = z();
  clock.t++;
  const fromA = a();
  t.true(fromZ < fromA, 'a later ms sorts after, whatever the tags');
  t.true(midTime(fromZ) < midTime(fromA));
});

test('two generators with different tags never give the same id for the same clock', (t) => {
  const ca = fakeClock();
  const cb = fakeClock();
  const a = createMidGenerator('0000000A', ca.now);
  const b = createMidGenerator('0000000B', cb.now);
  const fromA = new Set<string>();
  const fromB = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    if (i % 100 === 0) {
      ca.t++;
      cb.t++;
    }
    const x = a();
    const y = b();
    t.is(x.slice(0, 14), y.slice(0, 14), 'same clock, same time and counter part');
    fromA.add(x);
    fromB.add(y);
  }
  t.is(fromA.size, 20_000);
  t.is(fromB.size, 20_000);
  for (const x of fromA) {
    if (fromB.has(x)) {
      t.fail(`collision ${x}`);
      return;
    }
  }
  t.pass();
});

test('bad node tags throw', (t) => {
  for (const tag of ['', 'ABCDEFG', 'ABCDEFGHJ', 'abcdefgh', 'ABCDEFGh', 'ABCDEFGI', 'ABCDEFGL', 'ABCDEFGO', 'ABCDEFGU',
    'ABCD EFG', 'ABCD-EFG', 'ABCDEFG\n', 'ÀBCDEFGH', ' ABCDEFGH']) {
    t.throws(() => createMidGenerator(tag, () => T0), undefined, JSON.stringify(tag));
  }
  for (const tag of ['00000000', 'ZZZZZZZZ', '0123ABCD', 'HJKMNPQR', 'STVWXYZ9']) {
    t.notThrows(() => createMidGenerator(tag, () => T0), tag);
  }
});

test('randomNodeTag gives 8 valid characters that a generator accepts', (t) => {
  const tags = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const tag = randomNodeTag();
    t.regex(tag, TAG_RE);
    t.notThrows(() => createMidGenerator(tag));
    tags.add(tag);
  }
  t.true(tags.size > 190, 'tags are random');
});

test('randomNodeTag maps the whole range of its random source onto the alphabet', (t) => {
  t.is(randomNodeTag(() => 0), '00000000');
  t.is(randomNodeTag(() => 0.999_999_999), 'ZZZZZZZZ');
  let i = 0;
  const steps = (): number => (i++ % 32) / 32;
  t.is(randomNodeTag(steps) + randomNodeTag(steps) + randomNodeTag(steps) + randomNodeTag(steps), B32);
});
