// bench:churn's accounting of the churn phase (bench/churn-report.ts), without a cluster: the
// node CPU its sends would have cost at the steady rate, the rest, and the entries churn moved.
import test from 'ava';
import { churnWork } from '../../bench/churn-report.ts';

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
