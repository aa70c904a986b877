// A promise wrapper over one sqlite3 connection that runs jobs strictly one after another.
// The store's correctness arguments (dedup lookups versus commits) rely on that FIFO order.
import { chmod, open as openFile } from 'node:fs/promises';
import sqlite3 from 'sqlite3';

export type Params = (string | number | null)[];

export type Db = {
  /** Queues a job; it runs after every job queued before it has finished. */
  job<T>(fn: (c: Conn) => Promise<T>): Promise<T>;
  close(): Promise<void>;
};

/** What a job may do with the connection; only valid inside the job. */
export type Conn = {
  exec(sql: string): Promise<void>;
  /** Resolves with the number of rows the statement changed. */
  run(sql: string, params?: Params): Promise<number>;
  all<R>(sql: string, params?: Params): Promise<R[]>;
};

function open(file: string): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const d = new sqlite3.Database(file, (err) => (err ? reject(err) : resolve(d)));
  });
}

/**
 * Makes the database file private (0600) before SQLite opens it. SQLite creates the -wal and -shm
 * files with the database file's own mode, so they follow; ones left by an older version are
 * restricted too. (Not a process umask: that would change every file the process creates.)
 */
async function restrictFiles(file: string): Promise<void> {
  if (file === '' || file === ':memory:' || file.startsWith('file:')) return;
  const fh = await openFile(file, 'a', 0o600);
  try {
    await fh.chmod(0o600);
  } finally {
    await fh.close();
  }
  for (const side of ['-wal', '-shm', '-journal']) {
    await chmod(file + side, 0o600).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

export async function openDb(file: string): Promise<Db> {
  await restrictFiles(file);
  const db = await open(file);
  const statements = new Map<string, sqlite3.Statement>();
  const prepared = (sql: string): sqlite3.Statement => {
    let st = statements.get(sql);
    if (!st) {
      st = db.prepare(sql);
      statements.set(sql, st);
    }
    return st;
  };
  const conn: Conn = {
    exec: (sql) => new Promise((ok, ko) => db.exec(sql, (e) => (e ? ko(e) : ok()))),
    run: (sql, params = []) =>
      new Promise((ok, ko) =>
        prepared(sql).run(params, function (this: sqlite3.RunResult, e: Error | null) {
          if (e) ko(e);
          else ok(this.changes);
        })),
    all: <R>(sql: string, params: Params = []) =>
      new Promise<R[]>((ok, ko) => prepared(sql).all(params, (e: Error | null, rows: R[]) => (e ? ko(e) : ok(rows)))),
  };

  let tail: Promise<unknown> = Promise.resolve();
  let closed = false;
  return {
    job<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
      if (closed) return Promise.reject(new Error('store is closed'));
      const p = tail.then(() => fn(conn));
      tail = p.catch(() => undefined);
      return p;
    },
    async close() {
      if (closed) return;
      closed = true;
      await tail;
      for (const st of statements.values()) await new Promise<void>((ok) => st.finalize(() => ok()));
      await new Promise<void>((ok, ko) => db.close((e) => (e ? ko(e) : ok())));
    },
  };
}

/**
 * A SQL text literal holding `value` as JSON, for json_each: the whole of a statement's rows in
 * one string, parsed on SQLite's thread (sqlite3 binds parameters on the main thread: about a
 * third of a busy node's CPU with one `?` per value). JSON.stringify escapes every control
 * character (NUL included), so the only character to double is the quote.
 */
export function jsonLiteral(value: unknown): string {
  return `'${JSON.stringify(value).replaceAll("'", "''")}'`;
}

/**
 * One value as an SQL literal. A string is quoted with its quotes doubled, the only character a
 * literal escapes. Two kinds of string cannot be written so: one with NUL (the binding hands the
 * SQL text to SQLite as a C string, which NUL would end) and one with a lone surrogate (no UTF-8
 * form); those are read out of a JSON literal instead, as every value used to be.
 */
export function sqlValue(v: string | number | null): string {
  if (v === null) return 'NULL';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'NULL';
  if (v.includes('\0') || !v.isWellFormed()) return `(${jsonLiteral([v])}->>0)`;
  return `'${v.includes("'") ? v.replaceAll("'", "''") : v}'`;
}

/** INSERT statements for `rows`, `chunk` rows per statement, each a VALUES list of literals.
 * (Rows used to come out of one JSON literal through json_each; SQLite parsed each row's JSON
 * once per column, about 6 µs of its CPU per 11-column row.) */
export function insertSql(head: string, tail: string, rows: Params[], chunk: number): string[] {
  const out: string[] = [];
  const fixed = head.length + tail.length + 9; // the statement around its VALUES
  let values: string[] = [];
  let chars = 0;
  const emit = () => {
    out.push(`${head} VALUES ${values.join(',')} ${tail}`);
    values = [];
    chars = 0;
  };
  for (const r of rows) {
    const v = `(${r.map(sqlValue).join(',')})`;
    // Also cut by size: a statement past EXEC_CHARS would be one more string over 128 KiB.
    if (values.length > 0 && (values.length >= chunk || fixed + chars + v.length > EXEC_CHARS)) emit();
    values.push(v);
    chars += v.length + 1;
  }
  if (values.length > 0) emit();
  return out;
}

/**
 * Characters of SQL per call to SQLite in a transaction (and per INSERT statement). V8 gives a
 * string over 128 KiB memory of its own, and on these machines its first touch costs page faults:
 * 330-410 MB/s against 6-30 GB/s below (docs/BENCHMARKS.md, "Strings over 128 KiB"). A 2,000-entry
 * import is about 400,000 characters; in calls of at most this many it costs a few more round trips
 * to SQLite's thread (about 45 µs each) and no large string.
 */
export const EXEC_CHARS = 60_000;

/**
 * Runs `statements` as one transaction in as few calls to SQLite as fit EXEC_CHARS (one, for
 * anything but a large import). Each call of the sqlite3 binding is a round trip to libuv's thread
 * pool (about 45 µs on these machines, mostly spent waking threads); a commit of six statements
 * used to make eight. The calls run inside the connection's job, so nothing else runs between
 * them. On an error the transaction is rolled back and the error (with its SQLite `code`) thrown.
 */
export async function transaction(c: Conn, statements: string[]): Promise<void> {
  try {
    for (const sql of batches(['BEGIN', ...statements, 'COMMIT'])) await c.exec(sql);
  } catch (err) {
    await c.exec('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** `?,?,…` for an IN list or a VALUES row. */
export const marks = (n: number, row = '?'): string => Array(n).fill(row).join(',');

/** `statements` joined into texts of at most EXEC_CHARS characters each (a longer statement alone). */
export function batches(statements: string[]): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let chars = 0;
  for (const st of statements) {
    if (cur.length > 0 && chars + st.length > EXEC_CHARS) {
      out.push(cur.join(';\n'));
      cur = [];
      chars = 0;
    }
    cur.push(st);
    chars += st.length + 2;
  }
  if (cur.length > 0) out.push(cur.join(';\n'));
  return out;
}
