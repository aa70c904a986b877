// The floor under the store: what SQLite alone costs for the rows a durable 1:1 message needs,
// with nothing of ours around it. Per message, the guarantee (docs/ARCHITECTURE.md) puts four
// timeline rows on disk: the sender's entry on the sender's home and its replica, the recipient's
// copy on the recipient's home and its replica. Here two databases stand for a home and its
// replica, each written by its own connection (as on two nodes), and each gets two entry rows per
// message, `--batch` messages per transaction: the rows are prebuilt SQL text, so the CPU measured
// is SQLite's (and the binding's), not our code's.
//
//   npm run bench:floor -- [--msgs 40000] [--batch 20] [--rounds 3] [--schema full|seq|none]
//                          [--state] [--outbox]
//
// --schema full: the entries table as the node has it (UNIQUE (user, seq), the dedup index and the
//   conversation index), with the node's pragmas;
// --schema seq: only UNIQUE (user, seq), which any timeline read by seq needs;
// --schema none: a rowid table with no index at all, an append-only log, the least SQLite can do.
// --state: also the rows the node keeps beside the timeline, upserted per transaction as it does:
//   each user's last seq (users) and each conversation's counters (convs), for both ends.
// --outbox: also the sender's outbox row (the copy still to hand over, with its body), inserted
//   with the entry and deleted one transaction later, as once the copy is confirmed.
// Prints CPU per message: all threads, and the main thread's share (the rest is SQLite on libuv's
// pool).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { insertSql, openDb, transaction } from '../src/store/db.ts';
import type { Params } from '../src/store/db.ts';
import { cpuRounds, measureCpu } from './lib.ts';
import type { CpuRound } from './lib.ts';
import { DDL, deleteOutboxSql, ENTRY_COLS, PRAGMAS } from '../src/store/schema.ts';

const { values } = parseArgs({
  options: {
    msgs: { type: 'string', default: '40000' },
    users: { type: 'string', default: '200' },
    batch: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    schema: { type: 'string', default: 'full' },
    state: { type: 'boolean', default: false },
    outbox: { type: 'boolean', default: false },
  },
});
const MSGS = Number(values.msgs);
const USERS = Number(values.users);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);
const SCHEMA = values.schema;
const BODY = 'x'.repeat(100);

const NO_INDEXES = DDL.replace(/CREATE (UNIQUE )?INDEX[^;]*;/g, '');
const TABLE = SCHEMA === 'full' ? DDL
  : SCHEMA === 'seq' ? NO_INDEXES
  : SCHEMA === 'none' ? NO_INDEXES.replace(',\n    UNIQUE (user, seq))', ')')
  : undefined;
if (!TABLE) throw new Error(`--schema ${SCHEMA}: full, seq or none`);

/** Every transaction's SQL text, built before the clock starts. */
function transactions(r: number): string[][] {
  const seq = new Map<string, number>();
  const row = (user: string, mid: string, from: string, to: string, dkey: string): Params => {
    const s = (seq.get(user) ?? 0) + 1;
    seq.set(user, s);
    return [user, s, mid, from < to ? `dm:${from}:${to}` : `dm:${to}:${from}`, from, to, null, BODY, 1_700_000_000_000 + s, dkey, s];
  };
  const out: string[][] = [];
  let handed: Params[] = [];
  for (let k = 0; k < MSGS; k += BATCH) {
    const rows: Params[] = [];
    const users = new Map<string, Params>();
    const convs = new Map<string, Params>();
    const outbox: Params[] = [];
    for (let j = k; j < Math.min(MSGS, k + BATCH); j++) {
      const a = j % USERS;
      const from = `r${r}u${a}`;
      const to = `r${r}u${a ^ 1}`;
      for (const [user, mid, dkey] of [[from, `m${j}`, `c:c${j}`], [to, `n${j}`, `m:n${j}`]] as const) {
        const e = row(user, mid, from, to, dkey);
        rows.push(e);
        const [, s, , conv] = e as [string, number, string, string];
        users.set(user, [user, s, null]);
        convs.set(`${user} ${conv}`, [user, conv, s, s, 0, 0]);
      }
      outbox.push([from, `m${j}`, to, JSON.stringify({ mid: `m${j}`, user: to, from, to, body: BODY, ts: 1_700_000_000_000 + j })]);
    }
    const statements = insertSql(`INSERT INTO entries (${ENTRY_COLS})`, '', rows, 500);
    if (values.state) {
      statements.push(...insertSql('INSERT INTO users (user, seq, last_seen)',
        'ON CONFLICT (user) DO UPDATE SET seq = excluded.seq, last_seen = excluded.last_seen', [...users.values()], 500));
      statements.push(...insertSql('INSERT INTO convs (user, conv, last_seq, ocum, read_seq, read_cum)',
        'ON CONFLICT (user, conv) DO UPDATE SET last_seq = excluded.last_seq, ocum = excluded.ocum, read_seq = excluded.read_seq, read_cum = excluded.read_cum',
        [...convs.values()], 500));
    }
    if (values.outbox) {
      statements.push(...insertSql('INSERT OR IGNORE INTO outbox (user, mid, dest, item)', '', outbox, 500));
      if (handed.length) statements.push(...deleteOutboxSql(handed.map((o) => o.slice(0, 3)), 500));
      handed = outbox;
    }
    out.push(statements);
  }
  return out;
}

async function round(r: number): Promise<CpuRound> {
  const dir = await mkdtemp(join(tmpdir(), 'im-bench-floor-'));
  const dbs = await Promise.all(['home.db', 'replica.db'].map(async (f) => {
    const db = await openDb(join(dir, f));
    await db.job((c) => c.exec(PRAGMAS('normal') + TABLE));
    return db;
  }));
  const txs = transactions(r);
  // Both databases take every transaction; each connection works through its own in order, the
  // way group commit does: the next transaction starts once the one before it is on disk.
  const x = await measureCpu(MSGS, async () => {
    await Promise.all(dbs.map(async (db) => {
      for (const statements of txs) await db.job((c) => transaction(c, statements));
    }));
  });
  for (const db of dbs) await db.close();
  await rm(dir, { recursive: true, force: true });
  return x;
}

await cpuRounds(ROUNDS, `--schema ${SCHEMA}${values.state ? ' --state' : ''}${values.outbox ? ' --outbox' : ''} --batch ${BATCH}: ${MSGS} messages (${MSGS * 4} rows)`, round);
