// bench:churn's accounting of the churn phase (bench/churn-report.ts), without a cluster: the
// node CPU its sends would have cost at the steady rate, the rest, and the entries churn moved.
import test from 'ava';
import { churnWork } from '../../bench/churn-report.ts';
import { stepLines, stepWork } from '../../bench/churn-steps.ts';
import type { Totals } from '../../bench/churn-steps.ts';

type Ph = Parameters<typeof churnWork>[0] & object;
const phase = (over: Partial<Ph>): Ph => ({
  seconds: 10, confirmed: 0, cpu_nodes_s: 0, handoff_entries: 0, replicated_entries: 0, ...over,
} as Ph);

test('extra CPU is what the churn phase used beyond its sends at the steady cost; backfill is replication beyond the steady entries per send', (t) => {
  // Steady: 20,000 sends for 20 s of node CPU (1 ms each), 2 replicated entries per send.
  const steady = phase({ confirmed: 20_000, cpu_nodes_s: 20, replicated_entries: 40_000 });
  // Churn: 10,000 sends (10 s at the steady cost) in 17 s; 30,000 replicated (10,000 beyond 2 per
  // send) and 60,000 handed off: 70,000 moved for 7 s, 100 µs each.
  const churn = phase({ confirmed: 10_000, cpu_nodes_s: 17, replicated_entries: 30_000, handoff_entries: 60_000 });
  t.deepEqual(churnWork(churn, steady), {
    sends_cpu_s: 10, extra_cpu_s: 7, extra_share: 0.41,
    handoff_entries: 60_000, backfill_entries: 10_000, moved_entries: 70_000, us_per_moved_entry: 100,
  });
});

test('no steady sends, or nothing moved, gives no figure rather than a division by zero', (t) => {
  t.is(churnWork(phase({ confirmed: 5 }), phase({})), null);
  t.is(churnWork(undefined, phase({ confirmed: 1 })), null);
  const w = churnWork(phase({ confirmed: 10, cpu_nodes_s: 1 }), phase({ confirmed: 10, cpu_nodes_s: 1, replicated_entries: 20 }));
  t.is(w?.moved_entries, 0);
  t.is(w?.us_per_moved_entry, null);
});

test('by step: each window to the next mark, its extra CPU beyond its sends at the steady cost per send, by kind of thread', (t) => {
  const at = (s: number, confirmed: number, main: number, sqlite: number, v8 = 0, other = 0): Totals => ({ at: s * 1000, confirmed, main, sqlite, v8, other });
  // Steady: 10,000 sends in 10 s for 6 s of main thread and 2 s of SQLite: 0.6 ms + 0.2 ms per send.
  const steady: [Totals, Totals] = [at(0, 0, 0, 0), at(10, 10_000, 6, 2)];
  // join: 4 s, 2,000 sends (1.2 + 0.4 s at the steady cost) for 3.2 s main, 1.4 s SQLite, 0.5 s V8.
  // leave: 6 s to the end, 4,500 sends (2.7 + 0.9) for exactly that: nothing extra.
  const rows = stepWork(steady, [{ step: 'join n5', totals: at(10, 10_000, 6, 2) }, { step: 'leave n2', totals: at(14, 12_000, 9.2, 3.4, 0.5) }], at(20, 16_500, 11.9, 4.3, 0.5));
  t.deepEqual(rows, [
    { step: 'join n5', seconds: 4, sends_per_s: 500, cpu_s: 5.1, extra_s: 3.5, extra_share: 0.69, extra: { main: 2, sqlite: 1, v8: 0.5, other: 0 } },
    { step: 'leave n2', seconds: 6, sends_per_s: 750, cpu_s: 3.6, extra_s: 0, extra_share: 0, extra: { main: 0, sqlite: 0, v8: 0, other: 0 } },
  ]);
  t.regex(stepLines(rows).join('\n'), /join n5 +4\.0 +500 +5\.1 +3\.5 +69 % +2\.0 \/ 1\.0 \/ 0\.5 \/ 0\.0/);
  t.deepEqual(stepWork([at(0, 0, 0, 0), at(10, 0, 1, 1)], [{ step: 'join', totals: at(10, 0, 1, 1) }], at(12, 5, 2, 2)), [], 'no steady sends, no figures');
});

test('profile samples go to the nearest function of ours on the stack, or to the leaf\'s stage when none is ours, within the window', async (t) => {
  const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { ownerSamples } = await import('../../bench/stages.ts');
  const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url }, children });
  // root → push (ours) → stringify (a library) → (native leaf); root → (garbage collector); root → (idle)
  const profile = {
    nodes: [
      frame(1, '(root)', '', [2, 5, 6]),
      frame(2, 'push', 'file:///x/src/replica/handoff-leave.ts', [3]),
      frame(3, 'encode', 'file:///x/node_modules/msgpackr/pack.js', [4]),
      frame(4, 'writeUtf8String', ''),
      frame(5, '(garbage collector)', ''),
      frame(6, '(idle)', ''),
    ],
    startTime: 1000, samples: [4, 3, 2, 5, 6, 4], timeDeltas: [10, 10, 10, 10, 10, 10],
  };
  const dir = mkdtempSync(join(tmpdir(), 'im-prof-'));
  const file = join(dir, 'p.cpuprofile');
  writeFileSync(file, JSON.stringify(profile));
  try {
    const all = ownerSamples(file, 0, Infinity);
    t.is(all.get('push (handoff-leave.ts)'), 40, 'the native leaf, the library and push itself, each 10 µs');
    t.is(all.get('garbage collection (main thread)'), 10);
    t.false([...all.keys()].some((k) => k.includes('idle')), 'idle samples are not work');
    // Sample times are 1010, 1020, …, 1060: the window [1035, 1055] holds the GC and idle ones.
    t.deepEqual([...ownerSamples(file, 1035, 1055)], [['garbage collection (main thread)', 10]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
