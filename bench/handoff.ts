// Handoff rate: a 3-node cluster whose stores already hold E timeline entries (written offline
// with the store itself, on each user's home and replica), then a fourth node joins and copies
// the users it will own. Prints entries copied, the time and entries/s, from the joiner's log.
//   npm run bench:handoff -- --entries 1000000 --users 10000 [--cache DIR] [--profile DIR]
// --cache DIR keeps the filled stores in DIR and starts from them when they are there (the fill
// takes a minute; old and new code can then be compared on the same data). --profile DIR runs
// every node with V8's CPU profiler, writing its profile to DIR as it exits.
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRing } from '../src/ring/index.ts';
import { createStore, DEDUP_KEY } from '../src/store/index.ts';
import type { NewEntry, Store } from '../src/store/index.ts';
import { NodeProcess } from '../test/helpers/launcher.ts';
import { diffThreads, threadCpu } from './stages.ts';

const { values } = parseArgs({
  options: { entries: { type: 'string', default: '1000000' }, users: { type: 'string', default: '10000' }, cache: { type: 'string' }, profile: { type: 'string' } },
});
const ENTRIES = Number(values.entries);
const USERS = Number(values.users);
const names = ['n1', 'n2', 'n3'];
const ring = createRing(names);

async function fill(base: string): Promise<void> {
  // Offline fill: DMs between neighbouring users; each entry goes to the stores of its user's home
  // and replica, as the cluster would have written it.
  const t0 = performance.now();
  const stores = new Map<string, Store>();
  for (const n of names) {
    await mkdir(join(base, n), { recursive: true });
    stores.set(n, await createStore({ file: join(base, n, 'store.db') }));
  }
  let made = 0;
  let k = 0;
  while (made < ENTRIES) {
    const batch = new Map<string, NewEntry[]>(names.map((n) => [n, []]));
    for (let i = 0; i < 2000 && made < ENTRIES; i++, k++) {
      const a = `u${k % USERS}`;
      const b = `u${(k + 1) % USERS}`;
      const mid = `m${String(k).padStart(12, '0')}`;
      const msg = { mid, conv: a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`, from: a, to: b, body: 'x'.repeat(100), ts: 1_700_000_000_000 + k };
      for (const [user, dkey] of [[a, DEDUP_KEY.cid(`c${k}`)], [b, DEDUP_KEY.mid(mid)]] as const) {
        for (const owner of ring.owners(user, 2)) batch.get(owner)!.push({ ...msg, user, dkey });
        made++;
      }
    }
    await Promise.all(names.map((n) => stores.get(n)!.append(batch.get(n)!).durable));
  }
  for (const s of stores.values()) await s.close();
  console.log(`filled ${made} entries for ${USERS} users (x2 with replicas) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const base = await mkdtemp(join(tmpdir(), 'im-bench-handoff-'));
const psk = join(base, 'swarm.key');
await writeFile(psk, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`);
const nodes: NodeProcess[] = [];

try {
  const stamp = `${ENTRIES} entries, ${USERS} users, nodes ${names.join(' ')}\n`;
  const cached = values.cache && existsSync(join(values.cache, 'stamp')) && (await readFile(join(values.cache, 'stamp'), 'utf8')) === stamp;
  if (cached) {
    for (const n of names) await cp(join(values.cache!, n), join(base, n), { recursive: true });
    console.log(`stores copied from ${values.cache} (${stamp.trim()})`);
  } else {
    await fill(base);
    if (values.cache) {
      await rm(values.cache, { recursive: true, force: true });
      for (const n of names) await cp(join(base, n), join(values.cache, n), { recursive: true });
      await writeFile(join(values.cache, 'stamp'), stamp);
    }
  }

  const start = async (name: string, seeds: string[]): Promise<NodeProcess> => {
    const n = new NodeProcess(join(base, name), {
      name, args: ['--psk-file', psk, '--insecure', ...seeds.flatMap((s) => ['--join', s])],
      ...(values.profile ? { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-interval=500 --cpu-prof-dir=${values.profile}` } } : {}),
      // What the nodes print to stderr shows on ours, as it comes.
      onOutput: (text, stream) => {
        if (stream === 'stderr') process.stderr.write(text);
      },
    });
    nodes.push(n);
    await n.start(0);
    return n;
  };
  /** The joiner's own report of its copy, once it has joined. */
  const handoffOf = (log: string[]) => new Promise<{ users: number; entries: number; ms: number }>((ok) => {
    const check = setInterval(() => {
      const l = log.find((x) => x.includes('handoff: this node now holds what it will own'));
      if (l) {
        clearInterval(check);
        ok(JSON.parse(l) as { users: number; entries: number; ms: number });
      }
    }, 100);
  });
  // n2 and n3 start on data they already hold; their rejoin copy compares it all. Only then n4.
  const first = await start('n1', []);
  const n2 = await start('n2', [first.p2p]);
  await handoffOf(n2.log);
  const n3 = await start('n3', [first.p2p]);
  await handoffOf(n3.log);
  const members = [first, n2, n3];
  const before = members.map((m) => threadCpu(m.proc!.pid!));
  const t1 = performance.now();
  const n4 = await start('n4', [first.p2p]);
  const done = await handoffOf(n4.log);
  const wall = performance.now() - t1;
  // CPU by thread from n4's start to its join: the members' serving, and the newcomer's copy.
  const cpu = [...members.map((m, i) => diffThreads(before[i]!, threadCpu(m.proc!.pid!))), threadCpu(n4.proc!.pid!)];
  console.log(`machine: ${cpus()[0]?.model} x${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`);
  const by = (m: Map<string, number>) => {
    const main = m.get('MainThread') ?? 0;
    const sqlite = m.get('libuv-worker') ?? 0;
    const all = [...m.values()].reduce((a, v) => a + v, 0);
    return `${all.toFixed(1)} s (main ${main.toFixed(1)}, SQLite ${sqlite.toFixed(1)}, other ${(all - main - sqlite).toFixed(1)})`;
  };
  console.log(`CPU from n4's start to its join: n1 ${by(cpu[0]!)}, n2 ${by(cpu[1]!)}, n3 ${by(cpu[2]!)}, n4 ${by(cpu[3]!)}`);
  console.log(`join of n4: copied ${done.entries} entries of ${done.users} user snapshots in ${done.ms} ms (both passes) = ${Math.round(done.entries / (done.ms / 1000))} entries/s; process start to joined ${Math.round(wall)} ms`);
} finally {
  // A profiled node writes its profile as it exits: it must exit by itself.
  for (const n of nodes) await (values.profile ? n.stop() : n.kill());
  await rm(base, { recursive: true, force: true });
}
