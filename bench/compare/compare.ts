// `npm run bench:compare`: the same chat load against this project's cluster, Socket.IO with Redis
// and NATS JetStream, on this machine, the systems taking turns round by round, each run on fresh
// servers; prints every run, then the medians per system and the ratios of `im` against the others.
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureDebian } from './procs.ts';
import { abortCurrent, oneRun } from './run.ts';
import type { RunResult } from './run.ts';
import { SYSTEM_NAMES } from './shape.ts';
import type { Load, SystemName } from './shape.ts';
import { runLine, summarize, summaryLines } from './summary.ts';
import type { Failure } from './summary.ts';
import { adapter } from './systems.ts';

const DEFAULT_SYSTEMS: SystemName[] = ['im', 'sio-redis', 'nats-js'];
/** Where each system's servers come from when they are not installed. */
const DEBIAN: Partial<Record<SystemName, { cmd: string; pkg: string }>> = {
  'sio-redis': { cmd: 'redis-server', pkg: 'redis-server' },
  'nats-js': { cmd: 'nats-server', pkg: 'nats-server' },
  'nats-core': { cmd: 'nats-server', pkg: 'nats-server' },
};

const USAGE = `usage: npm run bench:compare -- [options]     (or: node bench/compare/compare.ts [options])

The same load against several systems on this machine, each on fresh servers (free
127.0.0.1 ports, a temp folder, all stopped by PID and removed after the run), the systems
taking turns in every round. U users in pairs (user i with i ^ 1, the two on different
nodes), each sending M messages of B bytes to its partner with at most W sends awaiting the
system's own ack; a warm-up on the same connections comes first and is not measured.
  --systems LIST   comma-separated, in the order they take turns (${DEFAULT_SYSTEMS.join(',')});
                   known: ${SYSTEM_NAMES.join(', ')}
  --runs N         rounds (3): every system runs once per round
  --users U        even number of users (200)
  --msgs M         measured messages per user (200)
  --body B         body bytes (100)
  --window W       sends awaiting the ack, per user (10)
  --warmup K       unmeasured messages per user first (20; 0 = none)
  --ack-every N    a reader acks every N deliveries, and the rest after 1 s without
                   any (50): im's \`ack\`, nats-js's consumer acks
  --nodes N        nodes per system (3)
  --procs P        load-generator worker processes (1)
  --timeout S      seconds the warm-up, and the measured phase, may take (60)
  --connect-timeout S  seconds to connect and log in every user (120)
  --json           also print everything as one JSON object, last
redis-server and nats-server come from Debian: when missing, they are installed with
apt-get install -y (root). Exit status: 0 when every run finished and im lost, duplicated
and reordered nothing; 1 otherwise; 2 for bad options.
`;

type Opts = { systems: SystemName[]; runs: number; load: Load; nodes: number; procs: number; timeoutS: number; connectTimeoutS: number; json: boolean };

function fail(message: string): never {
  process.stderr.write(`bench:compare: ${message}\n`);
  process.exit(2);
}

function parseOpts(argv: string[]): Opts {
  const spec = {
    systems: { type: 'string' }, runs: { type: 'string' }, users: { type: 'string' }, msgs: { type: 'string' },
    body: { type: 'string' }, window: { type: 'string' }, warmup: { type: 'string' }, nodes: { type: 'string' },
    procs: { type: 'string' }, 'ack-every': { type: 'string' }, timeout: { type: 'string' }, 'connect-timeout': { type: 'string' },
    json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  } as const;
  let values: ReturnType<typeof parseArgs<{ options: typeof spec }>>['values'];
  try {
    ({ values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }));
  } catch (e) {
    fail(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: keyof typeof spec, def: number, min: number): number => {
    const raw = values[name];
    if (raw === undefined) return def;
    const n = Number(raw);
    if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got '${raw}'`);
    return n;
  };
  const systems = (values.systems ?? DEFAULT_SYSTEMS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of systems) if (!(SYSTEM_NAMES as readonly string[]).includes(s)) fail(`unknown system '${s}' (known: ${SYSTEM_NAMES.join(', ')})`);
  if (!systems.length || new Set(systems).size !== systems.length) fail('--systems needs one or more systems, each once');
  const users = int('users', 200, 2);
  if (users % 2) fail(`--users must be even (users come in pairs), got ${users}`);
  const procs = int('procs', 1, 1);
  if (procs > users) fail(`--procs ${procs} is more than the ${users} users`);
  return {
    systems: systems as SystemName[], runs: int('runs', 3, 1), nodes: int('nodes', 3, 2), procs,
    load: { users, msgs: int('msgs', 200, 1), body: int('body', 100, 1), window: int('window', 10, 1), warmup: int('warmup', 20, 0), ackEvery: int('ack-every', 50, 1) },
    timeoutS: int('timeout', 60, 1), connectTimeoutS: int('connect-timeout', 120, 1), json: values.json === true,
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseOpts(argv);
  const say = (s: string) => process.stdout.write(s + '\n');
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    say('interrupted: stopping the servers of the current run');
    void abortCurrent().finally(() => process.exit(130));
  });
  const cpu = cpus();
  const machine = `${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; node ${process.version}`;
  const l = o.load;
  say(`command:  node bench/compare/compare.ts ${argv.join(' ')}`);
  say(`machine:  ${machine}`);
  say(`load:     ${l.users} users in ${l.users / 2} pairs on ${o.nodes} nodes (the two of a pair on different nodes), ${l.msgs} msgs each of ${l.body} B ` +
    `(${l.users * l.msgs} measured), window ${l.window}, warm-up ${l.warmup} msgs each, acks every ${l.ackEvery} deliveries; ${o.procs} load worker(s); ${o.runs} round(s) of ${o.systems.join(', ')}`);
  ensureDebian([...new Map(o.systems.flatMap((s) => (DEBIAN[s] ? [[DEBIAN[s].pkg, DEBIAN[s]]] : []))).values()], say);
  for (const s of o.systems) say(`  ${s.padEnd(9)}  ${(await adapter(s)).about}`);

  const results: RunResult[] = [];
  const failures: Failure[] = [];
  for (let round = 1; round <= o.runs; round++) {
    for (const system of o.systems) {
      try {
        const r = await oneRun(system, round, { load: o.load, nodes: o.nodes, procs: o.procs, timeoutS: o.timeoutS, connectTimeoutS: o.connectTimeoutS, say });
        results.push(r);
        say(`round ${round}/${o.runs}  ${runLine(r)}`);
      } catch (e) {
        if (interrupted) await new Promise(() => {}); // the SIGINT handler stops the servers and exits
        const error = (e as Error).message;
        failures.push({ system, round, error });
        say(`round ${round}/${o.runs}  ${system.padEnd(9)} FAILED: ${error.split('\n')[0]}`);
      }
    }
  }
  const summary = summarize(o.systems, results);
  for (const line of summaryLines(summary, failures)) say(line);
  if (o.json) say(JSON.stringify({ machine, options: o, results, failures, summary }));
  const imBad = results.some((r) => r.system === 'im' && (r.lost || r.dups || r.outOfOrder));
  return failures.length || results.some((r) => r.timedOut) || imBad ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench:compare: ${e instanceof Error ? e.message : String(e)}\n`);
    void abortCurrent().finally(() => process.exit(1));
  },
);
