// The data folder: created private (0700), locked to one process, and its key files written
// atomically with mode 0600, so a crash never leaves a half-written secret behind.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';

export const LOCK_FILE = 'lock';

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
  readonly dir: string;
  readonly pid: number;
  constructor(dir: string, pid: number) {
    super(`data folder ${dir} is in use by pid ${pid}; stop that node first, or give this one another --data`);
    this.dir = dir;
    this.pid = pid;
  }
}

/** Writes a file so that it is either absent, the old one, or the whole new one: a temporary file
 * (mode 0600) in the same folder, fsynced, renamed over the target, and the folder fsynced. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await syncDir(dirname(file));
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; some platforms cannot fsync a folder, which is no worse than before.
  const fh = await open(dir, 'r').catch(() => undefined);
  if (!fh) return;
  await fh.sync().catch(() => undefined).finally(() => fh.close());
}

/** Restricts a file or folder the node keeps private to its owner, saying so when it was wider. */
export async function restrict(path: string, mode: 0o600 | 0o700, log: Logger): Promise<void> {
  const st = await stat(path);
  if ((st.mode & 0o777) === mode) return;
  if ((st.mode & 0o077) !== 0) log.warn({ path, mode: (st.mode & 0o777).toString(8) }, `was readable by others; restricting it to mode ${mode.toString(8)}`);
  await chmod(path, mode);
}

/**
 * Reads a file from the data folder, or creates it once with `make()`. An empty file (left by an
 * older version that crashed between creating and writing it) counts as absent.
 */
export async function keptFile(file: string, make: () => Uint8Array | string, log: Logger, what: string): Promise<Buffer> {
  try {
    const b = await readFile(file);
    if (b.length > 0) {
      await restrict(file, 0o600, log);
      return b;
    }
    log.warn({ file }, `${what}: the file is empty (an interrupted write); generating it again`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const v = make();
  await writeFileAtomic(file, v);
  log.info({ file }, `generated ${what}`);
  return Buffer.from(v);
}

/** Creates the data folder (0700) or restricts an existing one to 0700. */
export async function prepareDataDir(dir: string, log: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A folder owned by another user (a mounted volume) cannot be narrowed: said, not fatal; the
  // files inside are still 0600.
  await restrict(dir, 0o700, log).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPERM') throw e;
    log.warn({ dir }, 'cannot restrict the data folder to mode 700 (not its owner): make it private to this node\'s user');
  });
}

export type DataDirLock = { release(): Promise<void> };

/** What DATA/lock holds: the pid and, on Linux, the process's start time. */
export type Holder = { pid: number; start?: string };

// Folders locked by this process: a second startNode on the same folder in one process is refused too.
const held = new Set<string>();

/**
 * Takes DATA/lock for this process. The lock file appears whole (written aside, then hard-linked
 * into place, which fails if one exists). A lock whose process is gone (killed, crashed) is taken
 * over: a restart after kill -9 is never blocked. Liveness is the pid plus, on Linux, its start
 * time, so a pid reused by another process after a reboot does not count as the holder.
 */
export async function lockDataDir(dir: string, log: Logger): Promise<DataDirLock> {
  const abs = resolve(dir);
  if (held.has(abs)) throw new DataDirInUseError(abs, process.pid);
  const file = join(abs, LOCK_FILE);
  const start = startTime(process.pid);
  const me: Holder = { pid: process.pid, ...(start ? { start } : {}) };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFileAtomic(tmp, JSON.stringify(me) + '\n');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw e;
      }
      const holder = await readHolder(file);
      if (holder && alive(holder)) throw new DataDirInUseError(abs, holder.pid);
      // Stale: move it aside (atomic), then check that what was moved is the stale lock and not a
      // lock another starting process has just put in its place.
      const aside = `${file}.${process.pid}.stale`;
      try {
        await rename(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const took = await readHolder(aside);
      if (took && alive(took)) {
        await rename(aside, file).catch(() => undefined);
        throw new DataDirInUseError(abs, took.pid);
      }
      await unlink(aside).catch(() => undefined);
      log.warn({ file, pid: holder?.pid }, 'took over the lock of a process that is gone (killed or crashed)');
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  held.add(abs);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      held.delete(abs);
      // Only our own lock: never one another process took over.
      const h = await readHolder(file);
      if (h?.pid === me.pid && h.start === me.start) await unlink(file).catch(() => undefined);
    },
  };
}

async function readHolder(file: string): Promise<Holder | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isSafeInteger(h.pid) && h.pid > 0 ? h : undefined;
  } catch {
    return undefined; // not ours, or unreadable: stale
  }
}

/** Whether the process that wrote a lock still runs. Our own pid is a previous life of this
 * process's pid (containers reuse pid 1): the folder is not held by us, or `held` would say so. */
export function alive(h: Holder): boolean {
  if (h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(h.pid);
  if (st === undefined) return !hasProc(); // without /proc the pid is all we know
  if (st.state === 'Z' || st.state === 'X') return false; // killed, not yet reaped
  return h.start === undefined || h.start === st.start;
}

function hasProc(): boolean {
  return procStat(process.pid) !== undefined;
}

function startTime(pid: number): string | undefined {
  return procStat(pid)?.start;
}

/** State and start time (clock ticks since boot) from /proc/<pid>/stat, on Linux. */
function procStat(pid: number): { state: string; start: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return f[0] && f[19] ? { state: f[0], start: f[19] } : undefined;
}
