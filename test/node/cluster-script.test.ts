// Runs scripts/cluster.sh for real (start, status, kill, restart, leave, stop, bad usage) from another
// working directory, with node_modules/.bin taken off PATH so the script must put Node 24 first itself.
import test from 'ava';
import { freeRun } from '../helpers/ports.ts';
import { runScript } from '../helpers/script.ts';
import type { ScriptRun } from '../helpers/script.ts';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

const SCRIPT = resolve(import.meta.dirname, '../../scripts/cluster.sh');

let data = '';
let ws = 0;
let env: Record<string, string> = {};

test.before(async () => {
  data = await mkdtemp(join(tmpdir(), 'im-cluster-'));
  ws = await freeRun(2);
  const p2p = await freeRun(2, [ws]);
  // The system node (v20 here, if any) first: the script must find Node 24 on its own.
  const path = (process.env.PATH ?? '').split(delimiter).filter((d) => !d.includes('node_modules')).join(delimiter);
  env = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('IM_') && v !== undefined)) as Record<string, string>;
  Object.assign(env, { PATH: path, IM_DATA: data, IM_WS_PORT: String(ws), IM_P2P_PORT: String(p2p) });
});

type Run = ScriptRun;

/** Runs the script to completion; 'close' also proves the nodes do not hold its output open. */
function sh(...args: string[]): Promise<Run> {
  return runScript(SCRIPT, args, env);
}

/** Running and not a zombie (orphaned nodes may stay unreaped where pid 1 does not reap). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const pidOf = async (i: number) => Number((await readFile(join(data, `node-${i}`, 'pid'), 'utf8')).trim());

async function healthz(i: number): Promise<{ status: number; node?: string } | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${ws + i - 1}/healthz`, { signal: AbortSignal.timeout(2000) });
    return { status: r.status, ...((await r.json()) as { node?: string }) };
  } catch {
    return null;
  }
}

test.after.always(async () => {
  if (!data) return;
  await sh('stop');
  for (const d of await readdir(data).catch(() => [] as string[])) {
    const pid = Number(await readFile(join(data, d, 'pid'), 'utf8').catch(() => ''));
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
  await rm(data, { recursive: true, force: true });
});

test.serial('start 2 starts two serving nodes and prints their URLs', async (t) => {
  const r = await sh('start', '2');
  t.is(r.code, 0, r.err);
  t.true(r.out.includes(`ws://127.0.0.1:${ws}/ws`), r.out);
  t.true(r.out.includes(`ws://127.0.0.1:${ws + 1}/ws`), r.out);
  t.like(await healthz(1), { status: 200, node: 'node-1' });
  // start returns only once every node lists every node up, on one ring
  const views = await Promise.all([ws, ws + 1].map(async (p) => (await fetch(`http://127.0.0.1:${p}/cluster`)).json() as Promise<{ members: { name: string; state: string }[]; ring: { version: string } }>));
  for (const v of views) t.deepEqual(v.members.map((m) => `${m.name}:${m.state}`), ['node-1:up', 'node-2:up']);
  t.is(views[0]!.ring.version, views[1]!.ring.version);
  t.is((await stat(join(data, 'swarm.key'))).mode & 0o777, 0o600);
  t.like(await healthz(2), { status: 200, node: 'node-2' });
  t.is((await stat(join(data, 'secret'))).mode & 0o777, 0o600);
  t.true(alive(await pidOf(1)) && alive(await pidOf(2)));
  const again = await sh('start', '2');
  t.is(again.code, 1);
  t.regex(again.err, /already running/);
});

test.serial('status lists both nodes alive', async (t) => {
  const r = await sh('status');
  t.is(r.code, 0, r.err);
  t.regex(r.out, /^node-1\s+\d+\s+alive\s+ws:\S+\s+200\b.*node-1:up,node-2:up/m);
  t.regex(r.out, /^node-2\s+\d+\s+alive\s+ws:\S+\s+200\b.*node-1:up,node-2:up/m);
});

test.serial('kill 2 ends node 2 and leaves node 1 serving', async (t) => {
  const pid = await pidOf(2);
  const r = await sh('kill', '2');
  t.is(r.code, 0, r.err);
  t.false(alive(pid));
  t.is(await healthz(2), null);
  t.like(await healthz(1), { status: 200 });
});

test.serial('restart 2 brings node 2 back on its data folder', async (t) => {
  const before = await pidOf(2);
  const r = await sh('restart', '2');
  t.is(r.code, 0, r.err);
  t.not(await pidOf(2), before);
  t.like(await healthz(2), { status: 200, node: 'node-2' });
});

test.serial('leave 1 returns once node 1 has exited gracefully', async (t) => {
  const pid = await pidOf(1);
  const r = await sh('leave', '1');
  t.is(r.code, 0, r.err);
  t.false(alive(pid));
  t.regex(await readFile(join(data, 'node-1', 'log'), 'utf8'), /"msg":"stopped"/);
  t.like(await healthz(2), { status: 200 });
});

test.serial('stop ends every node', async (t) => {
  const pid = await pidOf(2);
  const r = await sh('stop');
  t.is(r.code, 0, r.err);
  t.false(alive(pid));
  const s = await sh('status');
  t.regex(s.out, /^node-1\s+\d+\s+dead/m);
  t.regex(s.out, /^node-2\s+\d+\s+dead/m);
});

test('bad usage exits 2; help exits 0 and names the variables', async (t) => {
  t.is((await sh('leave')).code, 2);
  t.is((await sh('kill', 'x')).code, 2);
  t.is((await sh('frobnicate')).code, 2);
  const h = await sh('help');
  t.is(h.code, 0);
  for (const v of ['IM_DATA', 'IM_WS_PORT', 'IM_P2P_PORT', 'IM_INSECURE', 'IM_SECRET']) t.true(h.out.includes(v), v);
});
