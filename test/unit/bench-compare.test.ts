// bench:compare's arithmetic, without servers: the body carries what the receiver measures, the
// readers' acks come every N deliveries and once after the tail, and the summary's medians and
// ratios of im against the others (overall and round by round).
// Nothing here loads the other systems' client libraries.
import test from 'ava';
import { ACK_IDLE_MS, batchedAcks } from '../../bench/compare/acks.ts';
import type { RunResult } from '../../bench/compare/run.ts';
import { bodyOf, parseBody } from '../../bench/compare/shape.ts';
import type { SystemName } from '../../bench/compare/shape.ts';
import { median, summarize, summaryLines } from '../../bench/compare/summary.ts';

test('a body is padded to its size and gives back phase, sender, seq and send time', (t) => {
  const b = bodyOf(1, 17, 42, 123456789, 100);
  t.is(b.length, 100);
  t.deepEqual(parseBody(b), { phase: 1, from: 17, seq: 42, us: 123456789 });
  // Too small a size never cuts the stamp.
  t.deepEqual(parseBody(bodyOf(0, 3, 4, 5, 1)), { phase: 0, from: 3, seq: 4, us: 5 });
  t.is(parseBody('hello'), undefined);
  t.is(parseBody('1,x,2,3,'), undefined);
});

test('acks: one every N deliveries with the latest, then the tail once deliveries stop', async (t) => {
  const posted: number[] = [];
  const acks = batchedAcks(3, (seq: number) => posted.push(seq));
  for (const seq of [1, 2, 3, 4, 5, 6, 7]) acks.delivered(seq);
  t.deepEqual(posted, [3, 6]);
  const end = Date.now() + ACK_IDLE_MS * 3;
  while (posted.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(posted, [3, 6, 7]);
  // Stopped: a pending tail is not acked any more.
  acks.delivered(8);
  acks.stop();
  await new Promise((r) => setTimeout(r, ACK_IDLE_MS + 200));
  t.deepEqual(posted, [3, 6, 7]);
});

test('median of odd and even counts, none for nothing', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([]), null);
});

function result(system: SystemName, round: number, msgsPerS: number, cpuUsPerMsg: number, lost = 0): RunResult {
  return {
    system, round, delivered: 1000 - lost, expected: 1000, wallS: 1, msgsPerS, p50ms: 10, p99ms: 20, lost, dups: 0, outOfOrder: 0,
    stray: 0, unacked: 0, sendErrors: 0, errors: 0, closed: 0, timedOut: false, connectS: 1, serverCpuS: 1, perServerCpuS: {}, loadCpuS: 0.5, cpuUsPerMsg,
  };
}

test('im against each other system: ratios of the medians and of each round', (t) => {
  const results = [
    result('im', 1, 1000, 300), result('nats-js', 1, 4000, 100),
    result('im', 2, 2000, 200), result('nats-js', 2, 4000, 100, 5),
    result('im', 3, 3000, 100), result('nats-js', 3, 2000, 50),
  ];
  const s = summarize(['im', 'nats-js'], results);
  const im = s.systems.find((x) => x.system === 'im')!;
  t.is(im.msgsPerS, 2000);
  t.is(im.cpuUsPerMsg, 200);
  t.is(s.systems.find((x) => x.system === 'nats-js')!.lost, 5);
  t.is(s.ratios.length, 1);
  const r = s.ratios[0]!;
  t.is(r.other, 'nats-js');
  t.is(r.msgsPerS, 0.5); // 2000 / 4000
  t.is(r.cpuPerMsg, 2); // 200 / 100
  t.deepEqual(r.rounds.map((q) => q.msgsPerS), [0.25, 0.5, 1.5]);
  t.deepEqual(r.rounds.map((q) => q.cpuPerMsg), [3, 2, 2]);
  t.true(summaryLines(s, []).some((l) => /im \/ nats-js\s+msgs\/s 0\.50×\s+CPU per msg 2\.00×/.test(l)));
});

test('without im there are no ratios, and a round where one side failed is left out', (t) => {
  t.deepEqual(summarize(['sio-redis', 'nats-js'], [result('sio-redis', 1, 10, 1), result('nats-js', 1, 5, 1)]).ratios, []);
  const s = summarize(['im', 'sio-redis'], [result('im', 1, 10, 1), result('im', 2, 10, 1), result('sio-redis', 2, 20, 2)]);
  t.deepEqual(s.ratios[0]!.rounds.map((q) => q.round), [2]);
  const lines = summaryLines(s, [{ system: 'sio-redis', round: 1, error: 'redis-server exited' }]);
  t.true(lines.some((l) => /round 1 sio-redis: redis-server exited/.test(l)));
});
