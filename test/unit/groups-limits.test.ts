// Per-group limits (src/groups/limits.ts): the token buckets for posts and typing frames, the
// fan-out backlog in entries and bytes of member copies, and the refusals with their retry time.
import test from 'ava';
import { admitPost, admitTyping, Backlog, copyBytes, TokenBucket } from '../../src/groups/limits.ts';
import type { GroupLimits } from '../../src/groups/limits.ts';

const L: GroupLimits = { rate: 10, burst: 20, backlog: 5, backlogBytes: 10_000, typingFrames: 10_000 };

test('a token bucket gives its burst, then its rate, and says how long to wait', (t) => {
  const b = new TokenBucket(10, 3, 0);
  t.is(b.take(1, 0), 0);
  t.is(b.take(1, 0), 0);
  t.is(b.take(1, 0), 0);
  t.is(b.take(1, 0), 100, 'one token every 100 ms');
  t.is(b.take(1, 50), 50);
  t.is(b.take(1, 100), 0);
  t.false(b.full(100));
  t.true(b.full(1000));
  t.is(b.take(1, 999_999), 0, 'never more than the burst');
  t.is(b.take(1, 999_999), 0);
  t.is(b.take(1, 999_999), 0);
  t.true(b.take(1, 999_999) > 0);
  t.is(b.take(1, 0), 100, 'a clock going back gives nothing');
});

test('a cost above the burst needs a full bucket, and takes all of it', (t) => {
  const b = new TokenBucket(10, 5, 0);
  t.is(b.take(50, 0), 0);
  t.is(b.take(50, 0), 500);
  t.is(b.take(50, 499), 1);
  t.is(b.take(50, 500), 0);
});

test('the backlog counts entries past the cursor and the bytes of their member copies', (t) => {
  const q = new Backlog();
  t.deepEqual(q.measure(0, 0, 10), { entries: 0, bytes: 0 });
  q.add(1, copyBytes(100) * 10);
  q.add(2, 0); // an event: no copies
  q.add(3, copyBytes(50) * 10);
  t.deepEqual(q.measure(3, 0, 10), { entries: 3, bytes: 3560 + 3060 });
  t.deepEqual(q.measure(3, 2, 10), { entries: 1, bytes: 3060 });
  t.false(q.empty);
  t.deepEqual(q.measure(3, 3, 10), { entries: 0, bytes: 0 });
  t.true(q.empty);
  // Entries of a previous home (not listed here) count at the smallest size.
  t.deepEqual(q.measure(10, 3, 10), { entries: 7, bytes: 7 * 256 * 10 });
});

test('the backlog estimates the time to drain from the last measured pace', (t) => {
  const q = new Backlog();
  t.is(q.eta(10, 0, 777), 777, 'not measured yet');
  q.add(1, 1000);
  q.advance(1, { ms: 100, entries: 10, bytes: 100_000 });
  t.is(q.eta(10, 0), 100);
  t.is(q.eta(1, 1_000_000), 1000, 'the slower of entries and bytes');
});

test('a post past the backlog is refused with a retry time; within it, the rate decides', (t) => {
  const bucket = new TokenBucket(L.rate, L.burst, 0);
  const eta = () => 2500;
  t.is(admitPost('g', L, bucket, { entries: 4, bytes: 9_999 }, eta, 0), undefined);
  const full = admitPost('g', L, bucket, { entries: 5, bytes: 0 }, eta, 0);
  t.is(full?.reason, 'backlog');
  t.regex(full!.message, /group g has 5 messages not yet handed to its members; retry in 2500 ms/);
  const heavy = admitPost('g', L, bucket, { entries: 1, bytes: 10_000 }, eta, 0);
  t.is(heavy?.reason, 'backlog');
  t.regex(heavy!.message, /KiB of member copies/);
  t.is(admitPost('g', L, bucket, { entries: 5, bytes: 0 }, () => 5, 0)!.retryMs, 100, 'at least 100 ms');
  // The backlog refusals took no token: 19 more go, then the rate refuses.
  for (let i = 0; i < 19; i++) t.is(admitPost('g', L, bucket, { entries: 0, bytes: 0 }, eta, 0), undefined);
  const fast = admitPost('g', L, bucket, { entries: 0, bytes: 0 }, eta, 0);
  t.is(fast?.reason, 'rate');
  t.regex(fast!.message, /over 10 messages\/s; retry in 100 ms/);
});

test('typing to a 10,000-member group: a notice costs a frame per other member', (t) => {
  const bucket = new TokenBucket(L.typingFrames, 2 * L.typingFrames, 0);
  t.is(admitTyping('big', L, bucket, 9_999, 0), undefined);
  t.is(admitTyping('big', L, bucket, 9_999, 0), undefined);
  const no = admitTyping('big', L, bucket, 9_999, 0);
  t.is(no?.reason, 'typing');
  t.regex(no!.message, /typing budget of 10000 frames\/s \(9999 members to notify\); retry in \d+ ms/);
  t.is(admitTyping('big', L, bucket, 9_999, 1000), undefined, 'about one a second');
  const small = new TokenBucket(L.typingFrames, 2 * L.typingFrames, 0);
  for (let i = 0; i < 2000; i++) t.is(admitTyping('small', L, small, 9, 0), undefined);
});
