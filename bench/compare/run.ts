// One run of one system: fresh servers, the load workers connect, a warm-up phase, the measured
// phase with every server's and worker's CPU read from /proc around it, then everything stopped.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { procCpuS, sleep } from '../lib.ts';
import { adapter } from './systems.ts';
import type { Started } from './systems.ts';
import type { FromWorker, Load, Stats, SystemName, ToWorker } from './shape.ts';

const WORKER = new URL('./worker.ts', import.meta.url).pathname;
const SETTLE_MS = 500;
const COLLECT_TIMEOUT_MS = 20_000;

export type RunOpts = { load: Load; nodes: number; procs: number; connectTimeoutS: number; timeoutS: number; say: (line: string) => void };

export type RunResult = {
  system: SystemName;
  round: number;
  delivered: number;
  expected: number;
  wallS: number;
  msgsPerS: number;
  p50ms: number | null;
  p99ms: number | null;
  lost: number;
  dups: number;
  outOfOrder: number;
  stray: number;
  /** Sends neither acked nor refused when the run ended (a run that timed out). */
  unacked: number;
  sendErrors: number;
  errors: number;
  firstError?: string;
  closed: number;
  timedOut: boolean;
  connectS: number;
  serverCpuS: number;
  perServerCpuS: Record<string, number>;
  loadCpuS: number;
  /** Server CPU per delivered message, µs. */
  cpuUsPerMsg: number | null;
  inspect?: Record<string, unknown>;
};

/** A forked worker with a queue of its replies. */
class Worker {
  readonly proc: ChildProcess;
  private inbox: FromWorker[] = [];
  private waiting: ((m: FromWorker) => void)[] = [];

  constructor(name: string) {
    this.proc = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    this.proc.on('message', (m: FromWorker) => {
      const w = this.waiting.shift();
      if (w) w(m);
      else this.inbox.push(m);
    });
    this.proc.once('exit', (code, signal) => {
      const m: FromWorker = { type: 'error', error: `load worker ${name} exited (${signal ?? code})` };
      for (const w of this.waiting.splice(0)) w(m);
      this.inbox.push(m);
    });
  }

  send(m: ToWorker): void {
    if (this.proc.connected) this.proc.send(m);
  }

  /** The next reply of this type; an `error` reply is thrown. A 'done' that comes after its phase
   * timed out is passed over. */
  async next<T extends FromWorker['type']>(type: T, timeoutMs: number, what: string): Promise<Extract<FromWorker, { type: T }>> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let waiter: ((m: FromWorker) => void) | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    const take = () => new Promise<FromWorker>((r) => {
      const queued = this.inbox.shift();
      if (queued) return r(queued);
      waiter = r;
      this.waiting.push(r);
    });
    try {
      for (;;) {
        const m = await Promise.race([take(), expired]);
        if (m.type === type) return m as Extract<FromWorker, { type: T }>;
        if (m.type === 'error') throw new Error(m.error);
        if (m.type !== 'done') throw new Error(`${what}: expected '${type}' from a load worker, got '${m.type}'`);
      }
    } finally {
      clearTimeout(timer);
      // A wait that timed out must not swallow the reply that comes later.
      const i = waiter ? this.waiting.indexOf(waiter) : -1;
      if (i >= 0) this.waiting.splice(i, 1);
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.send({ type: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  }
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** What to stop on Ctrl-C: the current run's servers and workers. */
let current: { started?: Started; workers: Worker[] } | undefined;

export async function abortCurrent(): Promise<void> {
  const c = current;
  current = undefined;
  if (!c) return;
  for (const w of c.workers) w.proc.kill('SIGKILL');
  await c.started?.stop();
}

const cpuOf = (pids: number[]) => pids.map((p) => procCpuS(p) ?? NaN);

export async function oneRun(system: SystemName, round: number, o: RunOpts): Promise<RunResult> {
  const a = await adapter(system);
  const run = `${process.pid.toString(36)}r${round}${system.replace(/\W/g, '')}`;
  current = { workers: [] };
  try {
    const started = current.started = await a.start({ nodes: o.nodes, say: o.say });
    const workers = current.workers = Array.from({ length: o.procs }, (_, w) => new Worker(String(w + 1)));
    const t0 = Date.now();
    workers.forEach((w, i) => {
      const users = Array.from({ length: o.load.users }, (_, u) => u).filter((u) => u % o.procs === i);
      w.send({ type: 'init', init: { system, endpoints: started.endpoints, users, run, window: o.load.window, body: o.load.body, ackEvery: o.load.ackEvery } });
    });
    await Promise.all(workers.map((w) => w.next('ready', o.connectTimeoutS * 1000, 'connecting the users')));
    const connectS = (Date.now() - t0) / 1000;
    // Subscriptions reach the other nodes of a cluster asynchronously (NATS routes, Redis).
    await sleep(SETTLE_MS);
    if (o.load.warmup > 0) {
      workers.forEach((w) => w.send({ type: 'go', phase: 0, msgs: o.load.warmup }));
      await Promise.all(workers.map((w) => w.next('done', o.timeoutS * 1000, 'warm-up')));
      await sleep(SETTLE_MS);
    }
    const serverPids = started.procs.map((p) => p.pid);
    const workerPids = workers.map((w) => w.proc.pid ?? -1);
    const s0 = cpuOf(serverPids);
    const w0 = cpuOf(workerPids);
    workers.forEach((w) => w.send({ type: 'go', phase: 1, msgs: o.load.msgs }));
    // Every worker's wait ends (done or timed out) before 'collect': a wait still pending would take its stats.
    const ends = await Promise.allSettled(workers.map((w) => w.next('done', o.timeoutS * 1000, 'messaging')));
    const failed = ends.find((e) => e.status === 'rejected' && !(e.reason instanceof TimeoutError));
    if (failed?.status === 'rejected') throw failed.reason;
    const timedOut = ends.some((e) => e.status === 'rejected');
    const s1 = cpuOf(serverPids);
    const w1 = cpuOf(workerPids);
    workers.forEach((w) => w.send({ type: 'collect' }));
    const stats = await Promise.all(workers.map(async (w) => (await w.next('stats', COLLECT_TIMEOUT_MS, 'collecting')).stats));
    const inspect = await started.inspect?.().catch((e: Error) => ({ inspectError: e.message }));
    const perServer = Object.fromEntries(started.procs.map((p, i) => [p.name, s1[i]! - s0[i]!]));
    return summarize(system, round, o.load, stats, {
      timedOut, connectS, perServer, loadCpuS: sum(w1.map((c, i) => c - w0[i]!)), ...(inspect && Object.keys(inspect).length ? { inspect } : {}),
    });
  } finally {
    const c = current;
    current = undefined;
    if (c) {
      await Promise.all(c.workers.map((w) => w.stop()));
      await c.started?.stop();
    }
  }
}

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
const round2 = (x: number) => Math.round(x * 100) / 100;

function summarize(
  system: SystemName, round: number, load: Load, stats: Stats[],
  x: { timedOut: boolean; connectS: number; perServer: Record<string, number>; loadCpuS: number; inspect?: Record<string, unknown> },
): RunResult {
  const total = (k: 'unique' | 'dups' | 'outOfOrder' | 'stray' | 'acked' | 'sendErrors' | 'errors' | 'closed') => sum(stats.map((s) => s[k]));
  const delivered = total('unique');
  const expected = load.users * load.msgs;
  const first = Math.min(...stats.map((s) => s.firstSendUs));
  const last = Math.max(...stats.map((s) => s.lastRecvUs));
  const wallS = delivered ? (last - first) / 1e6 : 0;
  const lat = Float64Array.from(stats.flatMap((s) => s.lat)).sort();
  const pct = (q: number) => (lat.length ? round2(lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]! / 1000) : null);
  const serverCpuS = sum(Object.values(x.perServer));
  const firstError = stats.find((s) => s.firstError)?.firstError;
  return {
    system, round, delivered, expected, wallS: Math.round(wallS * 1000) / 1000,
    msgsPerS: wallS > 0 ? Math.round(delivered / wallS) : 0, p50ms: pct(0.5), p99ms: pct(0.99),
    lost: expected - delivered, dups: total('dups'), outOfOrder: total('outOfOrder'), stray: total('stray'),
    unacked: expected - total('acked') - total('sendErrors'), sendErrors: total('sendErrors'), errors: total('errors'), ...(firstError ? { firstError } : {}), closed: total('closed'),
    timedOut: x.timedOut, connectS: round2(x.connectS), serverCpuS: round2(serverCpuS),
    perServerCpuS: Object.fromEntries(Object.entries(x.perServer).map(([k, v]) => [k, round2(v)])), loadCpuS: round2(x.loadCpuS),
    cpuUsPerMsg: delivered ? Math.round((serverCpuS * 1e6) / delivered) : null,
    ...(x.inspect ? { inspect: x.inspect } : {}),
  };
}
