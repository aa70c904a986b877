// Server processes of the other systems: free ports, a temp folder per run, start, wait until
// ready, stop by PID, and the Debian packages they come from. Whatever is still running or left
// on disk when the benchmark exits (Ctrl-C, a crash) is killed and removed on the way out.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../lib.ts';

const STOP_GRACE_MS = 3000;
const LOG_TAIL = 4000;

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh folder for one run's servers (configs, data), removed by `removeDir` or on exit. */
export function runDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `im-compare-${prefix}-`));
  dirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export async function waitPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs / 1000} s`);
}

/** A server process with the tail of its output kept for error messages. */
export type Server = { name: string; proc: ChildProcess; pid: number; tail(): string };

export function startServer(name: string, cmd: string, args: string[]): Server {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2 * LOG_TAIL) out = out.slice(-LOG_TAIL);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  return { name, proc, pid: proc.pid, tail: () => out.slice(-LOG_TAIL) };
}

/** Resolves when the server prints a line matching `ready`; rejects if it exits first. */
export function waitOutput(s: Server, ready: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${s.name} not ready after ${timeoutMs / 1000} s:\n${s.tail()}`)), timeoutMs);
    const check = () => {
      if (ready.test(s.tail())) finish();
    };
    const exited = (code: number | null, signal: string | null) => finish(new Error(`${s.name} exited (${signal ?? code}):\n${s.tail()}`));
    const finish = (e?: Error) => {
      clearTimeout(timer);
      s.proc.stdout!.off('data', check);
      s.proc.stderr!.off('data', check);
      s.proc.off('exit', exited);
      if (e) reject(e);
      else resolve();
    };
    s.proc.stdout!.on('data', check);
    s.proc.stderr!.on('data', check);
    s.proc.once('exit', exited);
    check();
  });
}

/** SIGTERM by PID, SIGKILL after a grace period; resolves once the process is gone. */
export async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const gone = new Promise((r) => s.proc.once('exit', r));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(s.pid, sig);
    } catch {
      // already gone (a Ctrl-C reaches the whole process group)
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), STOP_GRACE_MS);
  await gone;
  clearTimeout(timer);
}

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Installs the Debian packages whose commands are missing (`apt-get install -y`, once more after
 * `apt-get update` if that fails). Throws with apt's last words when it cannot. */
export function ensureDebian(pkgs: { cmd: string; pkg: string }[], say: (line: string) => void): void {
  const missing = pkgs.filter((p) => !onPath(p.cmd)).map((p) => p.pkg);
  if (!missing.length) return;
  const install = ['install', '-y', ...missing];
  say(`installing ${missing.join(' ')} from Debian's packages: apt-get ${install.join(' ')}`);
  const apt = (args: string[]) => spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  let r = apt(install);
  if (r.status !== 0) {
    say('apt-get install failed; running apt-get update and trying again');
    apt(['update']);
    r = apt(install);
  }
  const still = pkgs.filter((p) => missing.includes(p.pkg) && !onPath(p.cmd));
  if (r.status !== 0 || still.length) {
    const why = r.error ? r.error.message : `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-8).join('\n');
    throw new Error(`could not install ${missing.join(' ')} (apt-get needs root and Debian's package lists):\n${why}\n` +
      `install them yourself (apt-get install -y ${missing.join(' ')}) or leave out the systems that need them (--systems)`);
  }
}
