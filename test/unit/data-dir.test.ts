// The data folder's files: atomic 0600 writes, kept files, a 0700 folder, and the lock (refused while
// its holder lives, taken over when it is gone or was a reused pid). Real files in a temp folder.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DataDirInUseError, LOCK_FILE, alive, keptFile, lockDataDir, prepareDataDir, writeFileAtomic } from '../../src/data-dir/index.ts';

const log = pino({ level: 'silent' });
const mode = async (p: string) => (await stat(p)).mode & 0o777;
const dirs: string[] = [];
async function fresh(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'im-datadir-'));
  dirs.push(d);
  return d;
}
test.after.always(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(p, 'exit');
  return p.pid!;
}

test('writeFileAtomic writes mode 0600, replaces whole, leaves no temporary file', async (t) => {
  const d = await fresh();
  const f = join(d, 'secret');
  await writeFileAtomic(f, 'first');
  t.is(await mode(f), 0o600);
  await writeFileAtomic(f, 'second, longer');
  t.is(await readFile(f, 'utf8'), 'second, longer');
  t.deepEqual(await readdir(d), ['secret']);
});

test('keptFile generates once, then reads; an empty file is generated again; a wide mode is narrowed', async (t) => {
  const d = await fresh();
  const f = join(d, 'swarm.key');
  let made = 0;
  const make = () => `key-${++made}`;
  t.is((await keptFile(f, make, log, 'a key')).toString(), 'key-1');
  t.is((await keptFile(f, make, log, 'a key')).toString(), 'key-1');
  t.is(made, 1);
  await writeFile(f, '');
  t.is((await keptFile(f, make, log, 'a key')).toString(), 'key-2');
  await chmod(f, 0o644);
  t.is((await keptFile(f, make, log, 'a key')).toString(), 'key-2');
  t.is(await mode(f), 0o600);
});

test('prepareDataDir creates the folder 0700 and narrows an existing one', async (t) => {
  const d = await fresh();
  const a = join(d, 'a', 'b');
  await prepareDataDir(a, log);
  t.is(await mode(a), 0o700);
  const b = join(d, 'open');
  await mkdir(b, { mode: 0o755 });
  await chmod(b, 0o755);
  await prepareDataDir(b, log);
  t.is(await mode(b), 0o700);
});

test('the lock: one holder per folder in this process; released, it can be taken again', async (t) => {
  const d = await fresh();
  const l = await lockDataDir(d, log);
  const held = JSON.parse(await readFile(join(d, LOCK_FILE), 'utf8')) as { pid: number };
  t.is(held.pid, process.pid);
  const e = await t.throwsAsync(lockDataDir(d, log), { instanceOf: DataDirInUseError });
  t.true(e?.message.includes(`data folder ${d} is in use by pid ${process.pid}`) === true, e?.message);
  await l.release();
  await t.throwsAsync(stat(join(d, LOCK_FILE)), { code: 'ENOENT' });
  const again = await lockDataDir(d, log);
  await again.release();
  t.deepEqual(await readdir(d), []);
});

test('a lock held by a live process refuses, naming the folder and the pid', async (t) => {
  const d = await fresh();
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const start = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
  await writeFile(join(d, LOCK_FILE), JSON.stringify({ pid: child.pid, start }));
  const e = await t.throwsAsync(lockDataDir(d, log), { instanceOf: DataDirInUseError });
  t.is(e?.message.startsWith(`data folder ${d} is in use by pid ${child.pid}`), true, e?.message);
  t.is(e?.pid, child.pid!);
  // the holder's lock is untouched
  t.is((JSON.parse(await readFile(join(d, LOCK_FILE), 'utf8')) as { pid: number }).pid, child.pid!);
});

test('a stale lock (its process gone, garbage, or a pid reused by another process) is taken over', async (t) => {
  const d = await fresh();
  const file = join(d, LOCK_FILE);
  const dead = await deadPid();
  for (const content of [JSON.stringify({ pid: dead }), '', 'not json', JSON.stringify({ pid: process.ppid, start: '1' })]) {
    await writeFile(file, content);
    const l = await lockDataDir(d, log);
    t.is((JSON.parse(await readFile(file, 'utf8')) as { pid: number }).pid, process.pid, content);
    await l.release();
  }
  t.deepEqual(await readdir(d), []);
});

test('release removes only our own lock, never one another process took over', async (t) => {
  const d = await fresh();
  const l = await lockDataDir(d, log);
  await writeFile(join(d, LOCK_FILE), JSON.stringify({ pid: process.ppid }));
  await l.release();
  t.is((JSON.parse(await readFile(join(d, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.ppid);
});

test('alive: this process and exited ones are not holders; a running one is', async (t) => {
  t.false(alive({ pid: process.pid }));
  t.false(alive({ pid: await deadPid() }));
  t.true(alive({ pid: process.ppid }));
  t.false(alive({ pid: process.ppid, start: 'not-its-start-time' }));
});
