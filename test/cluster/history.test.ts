// The history checker against a real cluster: a recorded workload (every send attempt, push and
// read-back) through a node kill and restart, then every timeline read through two nodes; the
// checker must find no lost, duplicated, reordered, forked or gapped timeline.
// Replay a schedule with HISTORY_SEED; HISTORY_KEEP=1 writes the history to $TMPDIR even when it passes.
import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, token, until } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import { check, figures, History } from '../helpers/history.ts';
import { runWorkload } from '../helpers/workload.ts';

test.after.always(cleanup);

const SEED = Number(process.env.HISTORY_SEED ?? 1111);
const USERS = 12;

test('a node killed and restarted under a recorded workload: the history checker finds nothing', async (t) => {
  const cluster = await startCluster(3, ['--max-in-flight', '1000']);
  const first = cluster.nodes[0]!;
  const victim = cluster.nodes[1]!;
  const users = Array.from({ length: USERS }, (_, i) => `h${SEED}u${i}`);
  const history = new History();
  const w = runWorkload({ urls: () => cluster.live().map((n) => n.url), users, seed: SEED, durationMs: 8000, history, token: (u) => token(u) });
  const t0 = Date.now();
  try {
    await until(() => w.confirmed() >= 100, 'the first 100 confirmations', 20_000);
    await victim.kill();
    const killedAt = Date.now() - t0;
    // Back once the others have declared it dead (its users moved to their replicas).
    await until(async () => (await cluster.view(first))?.members.find((m) => m.name === victim.opts.name)?.state === 'dead', 'the killed node to be declared dead', 20_000, 100);
    const deadAt = Date.now() - t0;
    await victim.start();
    await w.finished;
    await cluster.converged(30_000);
    await w.stop({ drainMs: 20_000 });
    const stoppedAt = Date.now() - t0;
    await w.readBack([first.url, victim.url]);
    t.log(`seed ${SEED}: killed ${victim.opts.name} at ${killedAt} ms, dead at ${deadAt} ms, sends stopped at ${stoppedAt} ms, ${w.stats().reconnects} reconnects, ${w.stats().goaways} goaways, ${w.pending()} left unconfirmed`);
  } finally {
    await w.stop();
  }
  const f = figures(history);
  t.log(`sends ${f.sends} (attempts ${f.attempts}), confirmed ${f.confirmed}, failed ${JSON.stringify(f.failed)}, pushes ${f.pushes}, reads ${f.reads}`);
  t.log(`longest stretch with no confirmation anywhere: ${f.longestGapMs} ms; longest unavailable per user: ${Math.max(...Object.values(f.unavailableMs))} ms; never recovered: ${f.unrecovered.join(', ') || 'none'}`);
  // pipelined: the project promises a connection's order even for sends in flight together
  const v = check(history, { pipelined: true });
  if (v.length > 0 || process.env.HISTORY_KEEP) {
    const file = join(tmpdir(), `im-history-${SEED}-${Date.now()}.jsonl`);
    await history.dump(file);
    t.log(`history written to ${file}`);
    for (const x of v.slice(0, 30)) t.log(x);
  }
  t.deepEqual(v, [], `${v.length} violations`);
  t.is(f.reads, USERS * 2);
  t.true(f.confirmed >= 100, `only ${f.confirmed} sends confirmed`);
});
