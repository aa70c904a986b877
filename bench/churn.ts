// Churn benchmark: client throughput while nodes join, leave, crash and restart, against steady
// state, in one run on one cluster of our own (only ratios within a run mean anything when the
// nodes and the load generator share a machine). Afterwards every timeline is read back and
// checked against the confirmed sends. `node bench/churn.ts --help` for the options.
// This file reads the options and runs the phases; churn-bench.ts runs the cluster, the schedule
// and the load, churn-user.ts is one user (the SDK's session), churn-report.ts checks and reports.
import { rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Bench } from './churn-bench.ts';
import { CPU_SAMPLE_MS, NODE_ARGS, STEPS, errorText, now, sleep } from './churn-common.ts';
import type { Opts, Step } from './churn-common.ts';
import { report } from './churn-report.ts';
import { profileLines, stepProfileLines } from './churn-profile.ts';
import type { Verification } from './churn-report.ts';

const USAGE = `usage: npm run bench:churn -- [options]     (or: node bench/churn.ts [options])

Starts a cluster of its own (temp folder, ports chosen by the OS, a generated swarm
key, ${NODE_ARGS.join(' ')}; tokens signed with the test secret), then runs U users
in U/2 pairs: user a<i> and b<i> send to each other continuously, each keeping W sends
awaiting 'sent' (the two of a pair start on different nodes). Each user is a session
of the SDK (src/client/session.ts) that knows the live nodes of ours: when its connection
gets a goaway or drops, it reconnects (to a node the goaway named, else to the next live
node), logs in again with 'since' = the last seq it delivered, and resends every
unconfirmed message with the same cid (sends are idempotent); a send answered
'unavailable' or 'rate_limited' goes again after a backoff, on the same connection.

Phases, measured in the same run on the same cluster:
  warmup    W s of load, not reported
  steady    S s with no membership change
  churn     the schedule, one step after the other, each waiting until every live node
            is joined and lists exactly the live nodes up on one ring version; the phase
            lasts S s or until the schedule is done, whichever is longer
  recovery  S2 s with no membership change (skip with --recovery 0)
  drain     no new sends; unconfirmed ones are resent until confirmed (at most D s)
Schedule steps (--schedule, comma-separated, in order):
  join      start a new node that joins through every live node
  leave     SIGTERM a live node (graceful: it hands its users over) and wait for its exit
  kill      SIGKILL a live node (then the survivors declare it dead and fail over)
  restart   start the node last left or killed again: same data folder, ports, identity
  Victims are taken in the order bench-2, bench-3, …, bench-1 last, each once while
  others remain. A step may not leave fewer than 2 live nodes.

Per phase: confirmed sends/s ('sent' replies), delivered msgs/s (first delivery of each
partner message), send→sent latency p50/p99/max (from the first attempt of a cid to
its 'sent', so it includes resends and reconnects), the longest stall (the longest time
in the phase during which one user had sends outstanding and got no 'sent'), users
stalled over 1 s, 'unavailable' refusals, other refusals, reconnects (logged-in
connections lost), failed connection attempts, goaways, and the cores kept busy by our nodes, by this process and by
everything else (from /proc: other work on the machine skews the ratios, and a warning
says so); and the ratios churn/steady and recovery/steady, with the confirmed sends of
every second.
Verification (test/helpers/invariants.ts, as in the churn tests): every user's timeline
is read with sync from a fresh device; every confirmed send must be in the sender's
timeline with its confirmed mid and seq, and in the recipient's with the same mid; no
send (confirmed or not) may be stored twice in a timeline; sends stored through one
connection must keep their order at the recipient; seqs must be 1..n with no mid twice.

options:
  --nodes N          nodes at the start (4)
  --users U          even number of users (100)
  --window W         sends awaiting 'sent' per user (10)
  --seconds S        steady phase, and the least churn phase (15)
  --recovery S2      recovery phase (S); 0 = none
  --warmup W         load before the steady phase (3)
  --drain D          at most D s to confirm the last sends (30)
  --schedule LIST    churn steps (join,leave,kill,restart)
  --settle           after each step has converged, also wait (at most 30 s) until no
                     node reports re-replication or handoff work in /cluster 'migrations'
                     (replicationBehind 0, no handoffsOut, not copying), so that steps
                     do not race re-replication
  --replicas R       --replicas of the nodes (2)
  --body B           body size in bytes (100)
  --profile          run the nodes under V8's CPU profiler (stopped with SIGTERM at the end,
                     so that they write their profiles; a node killed by the schedule writes
                     none for that life) and print, per stage of bench/stages.ts, the main
                     threads' CPU in the steady and the churn phase and the churn phase's extra
                     over its sends at the steady cost
  --keep             keep the temp folder (node data and logs) even when the run passed;
                     it is always kept when it failed
  --json             print one JSON object with the results (progress goes to stderr)
Exit status: 0 when nothing confirmed was lost, duplicated or reordered, the timelines
are whole, every step succeeded and no node exited on its own; 1 otherwise (also when
the timelines could not be read); 2 on bad options; 130 when interrupted. Every node it
started is killed at the end, on errors and on SIGINT/SIGTERM.
`;

function usageError(message: string): never {
  process.stderr.write(`churn: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseOpts(argv: string[]): Opts {
  const names = ['nodes', 'users', 'window', 'seconds', 'recovery', 'warmup', 'drain', 'replicas', 'body'] as const;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
        schedule: { type: 'string' }, settle: { type: 'boolean' }, keep: { type: 'boolean' }, profile: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    usageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (name: (typeof names)[number], def: number, min: number): number => {
    const raw = values[name] as string | undefined;
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min) usageError(`--${name} must be an integer >= ${min}, got '${raw}'`);
    return Number(raw);
  };
  const seconds = num('seconds', 15, 1);
  const o: Opts = {
    nodes: num('nodes', 4, 1), users: num('users', 100, 2), window: num('window', 10, 1), seconds,
    recovery: num('recovery', seconds, 0), warmup: num('warmup', 3, 0), drain: num('drain', 30, 1),
    replicas: num('replicas', 2, 1), body: num('body', 100, 8), settle: values.settle === true,
    keep: values.keep === true, json: values.json === true, profile: values.profile === true,
    schedule: ((values.schedule as string | undefined) ?? STEPS.join(',')).split(',').map((s) => s.trim()).filter(Boolean) as Step[],
  };
  if (o.users % 2) usageError(`--users must be even (users come in pairs), got ${o.users}`);
  let live = o.nodes;
  let down = 0;
  for (const s of o.schedule) {
    if (!STEPS.includes(s)) usageError(`unknown schedule step '${s}' (steps: ${STEPS.join(', ')})`);
    if (s === 'join') live++;
    else if (s === 'restart') {
      if (!down--) usageError('a restart needs an earlier leave or kill');
      live++;
    } else if (--live < 2) usageError(`the schedule would leave fewer than 2 live nodes (at '${s}')`);
    else down++;
  }
  return o;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseOpts(argv);
  const out = o.json ? process.stderr : process.stdout;
  const say = (s: string) => out.write(s + '\n');
  const cpu = cpus();
  const machine = `${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`;
  const command = `node bench/churn.ts ${argv.join(' ')}`.trim();
  say(`command:  ${command}`);
  say(`machine:  ${machine}; node ${process.version}`);

  const b = new Bench(o, say);
  process.on('exit', () => b.killAllNow());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void b.close().finally(() => {
      process.stderr.write(`churn: interrupted${b.dir ? `; node data and logs kept in ${b.dir}` : ''}\n`);
      if (b.dir) void writeLogs(b).finally(() => process.exit(130));
      else process.exit(130);
    }));
  }

  let ok = false;
  try {
    const t0 = now();
    const version = await b.startCluster();
    say(`cluster:  ${o.nodes} nodes of our own, R=${o.replicas}, ring ${version} after ${((now() - t0) / 1000).toFixed(1)} s; data and logs in ${b.dir}`);
    const sampler = setInterval(() => {
      b.sampleCpu();
      void b.sampleCounters();
    }, CPU_SAMPLE_MS);
    sampler.unref();
    b.enter('warmup');
    await b.connectUsers();
    const split = b.users.filter((u, i) => i % 2 === 0 && u.node !== u.partner.node).length;
    say(`load:     ${o.users} users in ${o.users / 2} pairs (${split} split across nodes), window ${o.window}, body ${o.body} B; schedule ${o.schedule.join(', ') || '(none)'}${o.settle ? ', settling after each step' : ''}`);
    b.start();
    await sleep(o.warmup * 1000);
    b.enter('steady');
    await sleep(o.seconds * 1000);
    b.enter('churn');
    await Promise.all([b.runSchedule(), sleep(o.seconds * 1000)]);
    if (o.recovery) {
      b.enter('recovery');
      await sleep(o.recovery * 1000);
    }
    b.enter('drain');
    const open = await b.drain();
    b.enter();
    clearInterval(sampler);
    if (open) b.failures.push(`${open} sends still unconfirmed ${o.drain} s after the load stopped`);

    b.closing = true;
    for (const u of b.users) u.close();
    say(`[${b.t()}] reading back ${b.users.length} timelines`);
    let v: Verification | undefined;
    try {
      v = await b.verify();
    } catch (e) {
      b.failures.push(`verification: ${errorText(e)}`);
    }
    const { result, lines } = report(b, v, command, machine);
    ok = result.ok;
    for (const l of lines) say(l);
    if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  } catch (e) {
    say(`churn: ${errorText(e)}`);
  } finally {
    await b.close();
    if (o.profile && b.dir) {
      for (const l of profileLines(b.dir, b.phases)) say(l);
      say('\n  the catch-all stage by function (the 15 with the most extra CPU):');
      for (const l of profileLines(b.dir, b.phases, true).filter((x) => x.includes('other › ')).slice(0, 15)) say(l);
      for (const l of stepProfileLines(b.dir, b.phases, b.steps)) say(l);
    }
    if (b.dir) {
      if (ok && !o.keep && !o.profile) await rm(b.dir, { recursive: true, force: true });
      else {
        await writeLogs(b);
        say(`node data and logs kept in ${b.dir}`);
      }
    }
  }
  return ok ? 0 : 1;
}

/** Each node's log lines (all its lives) into <dir>/<name>.log. */
async function writeLogs(b: Bench): Promise<void> {
  await Promise.all((b.cluster?.nodes ?? []).map((n) => writeFile(join(b.dir, `${n.opts.name}.log`), n.log.join('\n') + '\n')));
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`churn: ${errorText(e)}\n`);
    process.exit(1);
  },
);
