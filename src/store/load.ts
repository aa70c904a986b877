// Opening a store's database: pragmas and schema first, then every user's state read into
// memory, where seqs, counters, cursors and outbox rows are kept between commits.
import type { Db } from './db.ts';
import { DDL, PRAGMAS, SCHEMA_VERSION } from './schema.ts';
import { outboxKey } from './state.ts';
import type { UserState } from './state.ts';

export async function prepare(db: Db, sync: 'normal' | 'full'): Promise<void> {
  await db.job(async (c) => {
    await c.exec(PRAGMAS(sync));
    await c.exec(DDL);
    await c.run('INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)', ['schema', String(SCHEMA_VERSION)]);
  });
}

export async function loadUsers(db: Db, userState: (user: string) => UserState): Promise<void> {
  await db.job(async (c) => {
    for (const r of await c.all<{ user: string; seq: number; last_seen: number | null }>('SELECT user, seq, last_seen FROM users')) {
      const st = userState(r.user);
      st.seq = st.committed = r.seq;
      st.lastSeen = r.last_seen ?? undefined;
    }
    type ConvRow = { user: string; conv: string; last_seq: number; ocum: number; read_seq: number; read_cum: number };
    for (const r of await c.all<ConvRow>('SELECT user, conv, last_seq, ocum, read_seq, read_cum FROM convs')) {
      userState(r.user).convs.set(r.conv, { lastSeq: r.last_seq, ocum: r.ocum, readSeq: r.read_seq, readCum: r.read_cum });
    }
    for (const r of await c.all<{ user: string; device: string; acked: number }>('SELECT user, device, acked FROM cursors')) {
      userState(r.user).cursors.set(r.device, r.acked);
    }
    for (const r of await c.all<{ user: string; mid: string; dest: string; item: string }>('SELECT user, mid, dest, item FROM outbox')) {
      userState(r.user).outbox.set(outboxKey(r.mid, r.dest), { mid: r.mid, dest: r.dest, item: JSON.parse(r.item) as unknown });
    }
  });
}
