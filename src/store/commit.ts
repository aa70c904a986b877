// The group commit: what the next commit writes (appended entries, user state marked dirty,
// outbox rows added and handed over), and the one job that writes it in a transaction.
import { insertSql, transaction } from './db.ts';
import type { Conn, Db, Params } from './db.ts';
import type { Changed, OutboxKey, OutboxRow, StoreHooks } from './index.ts';
import type { ExportedEntry } from './migration.ts';
import { deleteOutboxSql, ENTRY_COLS } from './schema.ts';
import { outboxKey } from './state.ts';
import type { StoredEntry, UserState } from './state.ts';

type Deferred = { promise: Promise<void>; resolve(): void; reject(e: Error): void };

function deferred(): Deferred {
  const d = Promise.withResolvers<void>();
  d.promise.catch(() => undefined); // a failed commit is reported through onFatal
  return d;
}

/** One commit's rows, read from memory when it starts, and what it tells onCommit. */
type CommitRows = { entryRows: Params[]; userRows: Params[]; convRows: Params[]; cursorRows: Params[]; changed: Changed };

export type CommitsInit = {
  db: Db; chunk: number; hooks: StoreHooks;
  users: Map<string, UserState>; userState(user: string): UserState;
};

export class Commits {
  readonly #db: Db;
  readonly #chunk: number;
  readonly #hooks: StoreHooks;
  readonly #users: Map<string, UserState>;
  readonly #userState: (user: string) => UserState;
  // What the next commit writes. Values are read from memory when the commit starts, so a
  // later change only re-marks the key dirty.
  #rows: StoredEntry[] = [];
  #outboxIn: OutboxRow[] = [];
  #outboxOut: OutboxKey[] = [];
  readonly #dirtyUsers = new Set<string>();
  readonly #dirtyConvs = new Map<string, Set<string>>();
  readonly #dirtyCursors = new Map<string, Set<string>>();
  // ocum is a storage detail (unread arithmetic), kept beside the entry until it is written.
  readonly #ocumOf = new Map<StoredEntry, number>();
  #next = deferred();
  #queued = false;
  #closed = false;

  constructor(init: CommitsInit) {
    this.#db = init.db;
    this.#chunk = init.chunk;
    this.#hooks = init.hooks;
    this.#users = init.users;
    this.#userState = init.userState;
  }

  /** An appended entry, with its conversation's ocum as of it. */
  add(e: StoredEntry, ocum: number): void {
    this.#ocumOf.set(e, ocum);
    this.#rows.push(e);
    this.#dirtyUsers.add(e.user);
    this.markConv(e.user, e.conv);
  }

  /** The ocum of an entry not yet committed. */
  ocum(e: StoredEntry): number {
    return this.#ocumOf.get(e) ?? 0;
  }

  addOutbox(rows: OutboxRow[]): void {
    for (const o of rows) this.#outboxIn.push(o);
  }

  clearOutbox(keys: OutboxKey[]): void {
    for (const k of keys) this.#outboxOut.push({ user: k.user, mid: k.mid, dest: k.dest });
  }

  markUser(user: string): void {
    this.#dirtyUsers.add(user);
  }

  markConv(user: string, conv: string): void {
    let s = this.#dirtyConvs.get(user);
    if (!s) this.#dirtyConvs.set(user, (s = new Set()));
    s.add(conv);
  }

  markCursor(user: string, device: string): void {
    let s = this.#dirtyCursors.get(user);
    if (!s) this.#dirtyCursors.set(user, (s = new Set()));
    s.add(device);
  }

  /** StoreCore.forgetDirty. */
  forget(user: string): void {
    this.#dirtyUsers.delete(user);
    this.#dirtyConvs.delete(user);
    this.#dirtyCursors.delete(user);
  }

  /** Whether the next commit has anything to write. */
  get dirty(): boolean {
    return this.#rows.length > 0 || this.#outboxIn.length > 0 || this.#outboxOut.length > 0 ||
      this.#dirtyUsers.size > 0 || this.#dirtyConvs.size > 0 || this.#dirtyCursors.size > 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Refuses further commits; the caller has committed what was dirty. */
  close(): void {
    this.#closed = true;
  }

  /** Queues the next commit unless it is queued already; resolves once it is committed. */
  schedule(): Promise<void> {
    if (this.#closed) throw new Error('store is closed');
    if (!this.#queued) {
      this.#queued = true;
      void this.#db.job((c) => this.#commit(c));
    }
    return this.#next.promise;
  }

  async #commit(c: Conn): Promise<void> {
    this.#queued = false;
    const batch = this.#rows;
    this.#rows = [];
    const obIn = this.#outboxIn;
    const obOut = this.#outboxOut;
    this.#outboxIn = [];
    this.#outboxOut = [];
    const done = this.#next;
    this.#next = deferred();
    const t0 = performance.now();
    const { entryRows, userRows, convRows, cursorRows, changed } = this.#collect(batch, obIn, obOut);
    const chunk = this.#chunk;
    try {
      await transaction(c, [
        ...insertSql(`INSERT INTO entries (${ENTRY_COLS})`, '', entryRows, chunk),
        ...insertSql('INSERT INTO users (user, seq, last_seen)',
          'ON CONFLICT (user) DO UPDATE SET seq = excluded.seq, last_seen = excluded.last_seen', userRows, chunk),
        ...insertSql('INSERT INTO convs (user, conv, last_seq, ocum, read_seq, read_cum)',
          'ON CONFLICT (user, conv) DO UPDATE SET last_seq = excluded.last_seq, ocum = excluded.ocum, read_seq = excluded.read_seq, read_cum = excluded.read_cum',
          convRows, chunk),
        ...insertSql('INSERT INTO cursors (user, device, acked)',
          'ON CONFLICT (user, device) DO UPDATE SET acked = excluded.acked', cursorRows, chunk),
        ...insertSql('INSERT OR IGNORE INTO outbox (user, mid, dest, item)', '', obIn.map((o) => [o.user, o.mid, o.dest, JSON.stringify(o.item)]), chunk),
        ...deleteOutboxSql(obOut.map((k) => [k.user, k.mid, k.dest]), chunk),
      ]);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      done.reject(e);
      this.#hooks.onFatal?.(e);
      return;
    }
    const exported = this.#settle(batch, obIn, obOut);
    this.#hooks.onBatch?.({ rows: batch.length, ms: performance.now() - t0 });
    done.resolve();
    if (batch.length > 0 || changed.users.length || changed.cursors.length || changed.convs.length || obIn.length || obOut.length) this.#hooks.onCommit?.(exported, changed);
  }

  /** The rows of a commit, with the dirty marks it takes cleared. */
  #collect(batch: StoredEntry[], obIn: OutboxRow[], obOut: OutboxKey[]): CommitRows {
    const entryRows: Params[] = batch.map((e) => [
      e.user, e.seq, e.mid, e.conv, e.from, e.to ?? null, e.group ?? null, e.body, e.ts, e.dkey, this.#ocumOf.get(e) ?? 0,
    ]);
    const changed: Changed = {
      users: [...this.#dirtyUsers], convs: [], cursors: [],
      outbox: obIn.map((o) => ({ user: o.user, row: { mid: o.mid, dest: o.dest, item: o.item } })), cleared: obOut,
    };
    const userRows: Params[] = [...this.#dirtyUsers].map((u) => {
      const st = this.#userState(u);
      return [u, st.seq, st.lastSeen ?? null];
    });
    this.#dirtyUsers.clear();
    const convRows: Params[] = [];
    for (const [u, convs] of this.#dirtyConvs) {
      const st = this.#userState(u);
      for (const conv of convs) {
        const cs = st.convs.get(conv);
        if (!cs) continue; // dropped since it was marked
        convRows.push([u, conv, cs.lastSeq, cs.ocum, cs.readSeq, cs.readCum]);
        changed.convs.push([u, conv]);
      }
    }
    this.#dirtyConvs.clear();
    const cursorRows: Params[] = [];
    for (const [u, devs] of this.#dirtyCursors) {
      const st = this.#userState(u);
      for (const d of devs) {
        cursorRows.push([u, d, st.cursors.get(d) ?? 0]);
        changed.cursors.push([u, d]);
      }
    }
    this.#dirtyCursors.clear();
    return { entryRows, userRows, convRows, cursorRows, changed };
  }

  /** Brings memory up to a commit: outbox rows, committed seqs, and the entries no longer pending. */
  #settle(batch: StoredEntry[], obIn: OutboxRow[], obOut: OutboxKey[]): ExportedEntry[] {
    for (const o of obIn) this.#userState(o.user).outbox.set(outboxKey(o.mid, o.dest), { mid: o.mid, dest: o.dest, item: o.item });
    for (const k of obOut) this.#users.get(k.user)?.outbox.delete(outboxKey(k.mid, k.dest));
    const exported: ExportedEntry[] = [];
    for (const e of batch) {
      const st = this.#userState(e.user);
      if (e.seq > st.committed) st.committed = e.seq;
      st.pending.delete(e.dkey);
      exported.push({ ...e, ocum: this.#ocumOf.get(e) ?? 0 });
      this.#ocumOf.delete(e);
    }
    return exported;
  }
}
