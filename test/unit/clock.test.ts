// The injected clock: sleeps and deadlines run when a manual clock is moved past them, in time
// order, and not once cancelled or aborted.
import test from 'ava';
import { ManualClock, systemClock } from '../../src/clock/index.ts';

test('a manual clock runs sleeps and deadlines in time order as it advances; cancelled ones never', async (t) => {
  const clock = new ManualClock(1000);
  const ran: string[] = [];
  void clock.sleep(30).then(() => ran.push(`sleep 30 at ${clock.now()}`));
  clock.after(10, () => ran.push(`after 10 at ${clock.now()}`));
  const cancel = clock.after(20, () => ran.push('cancelled'));
  const aborted = new AbortController();
  const gone = clock.sleep(15, aborted.signal);
  aborted.abort(new Error('stop'));
  await t.throwsAsync(gone, { message: 'stop' });
  cancel();
  t.is(clock.waiting, 2);
  await clock.advance(25);
  t.deepEqual(ran, ['after 10 at 1010']);
  await clock.advance(10);
  t.deepEqual(ran, ['after 10 at 1010', 'sleep 30 at 1030']);
  t.is(clock.now(), 1035);
  t.is(clock.waiting, 0);
});

test('the system clock: a deadline cancelled in time never runs; a sleep of a past time ends at once', async (t) => {
  let ran = false;
  const cancel = systemClock.after(20, () => (ran = true));
  cancel();
  await systemClock.sleep(-5);
  await systemClock.sleep(40);
  t.false(ran);
});
