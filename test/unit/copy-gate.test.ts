// The line a sender's copies wait in before the router: mid order, whatever order they get ready in.
import test from 'ava';
import { CopyGate } from '../../src/home/copy-gate.ts';

test('copies enter in mid order, each once those ahead of it entered or left', (t) => {
  const g = new CopyGate();
  const went: string[] = [];
  const a = g.join('alice', 'm1');
  const b = g.join('alice', 'm2');
  const c = g.join('alice', 'm3');
  const other = g.join('bob', 'm0');
  g.enter(c, () => went.push('m3'));
  g.enter(b, () => went.push('m2'));
  t.deepEqual(went, [], 'm1 is not ready: nobody behind it goes');
  g.enter(other, () => went.push('bob m0'));
  t.deepEqual(went, ['bob m0'], 'another sender has a line of its own');
  g.enter(a, () => went.push('m1'));
  t.deepEqual(went, ['bob m0', 'm1', 'm2', 'm3'], 'm1 goes, and the ones ready behind it at once, in order');
  t.is(g.waiting('alice'), 0);
});

test('a copy back out of the router takes its place again ahead of newer ones; one that gives up lets them go', (t) => {
  const g = new CopyGate();
  const went: string[] = [];
  const a = g.join('alice', 'm1');
  g.enter(a, () => went.push('m1'));
  g.rejoin(a); // refused: it will be tried again
  const b = g.join('alice', 'm2');
  g.enter(b, () => went.push('m2'));
  t.deepEqual(went, ['m1'], 'm2 waits for m1 to enter again');
  const old = g.join('alice', 'm0'); // an older outbox row, replayed
  g.enter(a, () => went.push('m1 again'));
  t.deepEqual(went, ['m1'], 'm0 is ahead of both now');
  g.leave(old);
  t.deepEqual(went, ['m1', 'm1 again', 'm2']);
  t.is(g.waiting('alice'), 0, 'nothing is left in the line');
});
