// The store's share of a message, alone: what one node's SQLite work costs per 1:1 message in
// the 3-node pairs benchmark, without the network, the other nodes or the load generator, so
// that a change to the store can be measured to a few per cent (the cluster's own spread on
// this machine is ±15 %).
//
// Per message, as on a node of the cluster (each node is home of senders and of recipients in
// the same proportion): the sender's entry with its outbox row, the copy a recipient homed here
// gets from another node, the outbox row cleared once that copy is handed over; and, on a
// second store standing for the replica, the import of each commit as replication sends it
// (entries with the users' changed state). Messages go `--window` at a time, so group commit
// takes about as many per transaction as under the pairs benchmark.
//
//   npm run bench:store -- [--msgs 40000] [--users 200] [--window 20] [--rounds 3]
//
// Prints per round: messages/s and process CPU (every thread: SQLite works on libuv's) per message,
// with the main thread's share.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createStore, DEDUP_KEY } from '../src/store/index.ts';
import type { ExportedEntry, Changed, Store } from '../src/store/index.ts';
import type { UserSnapshot } from '../src/store/snapshots.ts';
import { cpuRounds, measureCpu } from './lib.ts';
import type { CpuRound } from './lib.ts';

const { values } = parseArgs({
  options: {
    msgs: { type: 'string', default: '40000' },
    users: { type: 'string', default: '200' },
    window: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
  },
});
const MSGS = Number(values.msgs);
const USERS = Number(values.users);
const WINDOW = Number(values.window);
const ROUNDS = Number(values.rounds);
const BODY = 'x'.repeat(100);

/** The replica's import of one home commit, grouped per user as replication does. */
function replicaPage(home: Store, entries: ExportedEntry[], changed: Changed): { users: UserSnapshot[]; entries: ExportedEntry[] } {
  const convs = new Map<string, Set<string>>();
  const of = (u: string) => {
    let s = convs.get(u);
    if (!s) convs.set(u, (s = new Set()));
    return s;
  };
  for (const e of entries) of(e.user);
  for (const u of changed.users) of(u);
  for (const [u, c] of changed.convs) of(u).add(c);
  const users: UserSnapshot[] = [];
  for (const [u, cs] of convs) {
    const snap = home.snapshot(u, [...cs], []);
    if (!snap) continue;
    const ob = changed.outbox.filter((o) => o.user === u).map((o) => o.row);
    const cl = changed.cleared.filter((k) => k.user === u).map((k) => ({ mid: k.mid, dest: k.dest }));
    if (ob.length) snap.outbox = ob;
    if (cl.length) snap.cleared = cl;
    users.push(snap);
  }
  return { users, entries };
}

async function round(r: number): Promise<CpuRound> {
  const dir = await mkdtemp(join(tmpdir(), 'im-bench-store-'));
  let replicaWork = Promise.resolve();
  let replica!: Store;
  const home: Store = await createStore({ file: join(dir, 'home.db') }, {
    onCommit: (entries, changed) => {
      const page = replicaPage(home, entries, changed);
      replicaWork = replicaWork.then(async () => {
        const rejected = await replica.importEach(page);
        if (rejected.size > 0) throw new Error(`replica refused ${[...rejected.keys()].join(', ')}`);
      });
    },
  });
  replica = await createStore({ file: join(dir, 'replica.db') });
  const user = (i: number) => `r${r}u${i}`;
  let mid = 0;
  const nextMid = () => `m${String(++mid).padStart(12, '0')}`;
  const one = async (k: number): Promise<void> => {
    const a = k % USERS;
    const from = user(a);
    const to = user(a ^ 1);
    const m = nextMid();
    const base = { mid: m, conv: from < to ? `dm:${from}:${to}` : `dm:${to}:${from}`, from, to, body: BODY, ts: Date.now() };
    // The sender's entry with its outbox row; then, once durable, the row cleared.
    const sent = home.append([{ ...base, user: from, dkey: DEDUP_KEY.cid(`c${k}`) }], [{ user: from, mid: m, dest: to, item: { ...base, user: to } }]);
    // The copy of another node's message for a recipient homed here.
    const m2 = nextMid();
    const got = home.append([{ ...base, mid: m2, user: to, dkey: DEDUP_KEY.mid(m2) }]);
    await Promise.all([sent.durable, got.durable]);
    home.outboxDone([{ user: from, mid: m, dest: to }]);
  };
  let next = 0;
  const x = await measureCpu(MSGS, async () => {
    await Promise.all(Array.from({ length: WINDOW }, async () => {
      while (next < MSGS) await one(next++);
    }));
    await home.flush();
    await replicaWork;
  });
  await home.close();
  await replica.close();
  await rm(dir, { recursive: true, force: true });
  return x;
}

await cpuRounds(ROUNDS, `${MSGS} messages, home and replica store`, round);
