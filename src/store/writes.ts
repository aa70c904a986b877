// Changes made by the node: appends take their seqs here, in call order, and cursor, read and
// last-seen moves change memory at once; each marks what the next commit (commit.ts) writes.
import type { Commits } from './commit.ts';
import type { Db } from './db.ts';
import type { OutboxRow, Store } from './index.ts';
import type { NewEntry, StoredEntry, UserState } from './state.ts';

export type WritesInit = {
  db: Db; users: Map<string, UserState>; userState(user: string): UserState;
  /** StoreCore.importing: users whose appends are refused for now. */
  importing: Map<string, number>;
  commits: Commits;
};

function append(w: WritesInit, items: NewEntry[], outbox: OutboxRow[]): { entries: StoredEntry[]; durable: Promise<void> } {
  if (w.importing.size > 0) {
    for (const it of items) if (w.importing.has(it.user)) throw new Error(`${it.user} is being imported; append after the import`);
  }
  const entries: StoredEntry[] = [];
  for (const it of items) {
    const st = w.userState(it.user);
    if (st.pending.has(it.dkey)) throw new Error(`duplicate dedup key ${it.dkey} for ${it.user}`);
    const seq = ++st.seq;
    let cs = st.convs.get(it.conv);
    if (!cs) st.convs.set(it.conv, (cs = { lastSeq: 0, ocum: 0, readSeq: 0, readCum: 0 }));
    cs.lastSeq = seq;
    if (it.from !== it.user) cs.ocum++;
    const e: StoredEntry = { ...it, seq };
    st.pending.set(it.dkey, e);
    w.commits.add(e, cs.ocum);
    entries.push(e);
  }
  w.commits.addOutbox(outbox);
  return { entries, durable: w.commits.schedule() };
}

/** Store.read. */
async function moveRead(w: WritesInit, user: string, conv: string, seq: number): Promise<number | undefined> {
  const { users } = w;
  const st = users.get(user);
  const cs = st?.convs.get(conv);
  if (!st || !cs) return undefined;
  const target = Math.min(seq, st.seq);
  if (target <= cs.readSeq) return undefined;
  let cum: number;
  if (target >= cs.lastSeq) {
    cum = cs.ocum;
  } else {
    // The newest entry of this conversation at or before target: committed rows are in the
    // database, uncommitted ones still in memory when this job's result arrives (FIFO).
    const rs = await w.db.job((c) =>
      c.all<{ seq: number; ocum: number }>('SELECT seq, ocum FROM entries WHERE user = ? AND conv = ? AND seq <= ? ORDER BY seq DESC LIMIT 1', [user, conv, target]));
    let best = rs[0] ?? { seq: 0, ocum: 0 };
    for (const e of st.pending.values()) {
      if (e.conv === conv && e.seq <= target && e.seq > best.seq) best = { seq: e.seq, ocum: w.commits.ocum(e) };
    }
    cum = best.ocum;
  }
  if (users.get(user) !== st) return undefined; // the user was dropped meanwhile
  if (target <= cs.readSeq) return undefined; // another read moved it further meanwhile
  cs.readSeq = target;
  cs.readCum = Math.max(cs.readCum, cum);
  w.commits.markConv(user, conv);
  await w.commits.schedule();
  return target;
}

export function createWrites(w: WritesInit): Pick<Store, 'append' | 'outboxDone' | 'flush' | 'ack' | 'read' | 'setLastSeen'> {
  const { userState, commits } = w;
  return {
    append: (items, outbox = []) => append(w, items, outbox),

    outboxDone(keys) {
      if (keys.length === 0) return;
      commits.clearOutbox(keys);
      void commits.schedule();
    },

    flush: () => commits.schedule(),

    ack(user, device, seq) {
      const st = userState(user);
      const to = Math.min(seq, st.seq);
      if (to <= (st.cursors.get(device) ?? 0)) return false;
      st.cursors.set(device, to);
      commits.markCursor(user, device);
      void commits.schedule();
      return true;
    },

    read: (user, conv, seq) => moveRead(w, user, conv, seq),

    setLastSeen(user, ts) {
      userState(user).lastSeen = ts;
      commits.markUser(user);
      void commits.schedule();
    },
  };
}
