// Memory per idle connection on one node, and how many connections one node holds (issue 15).
// N WebSocket clients, in several client processes (each process has its own open-file limit),
// connect to node 1 of an own cluster, first only open, then logged in, and stay idle. After each
// step the node's heap is collected (over the V8 inspector, which the node runs with) and its
// memory read, so the figures are live objects, not garbage waiting for a collection.
//   node bench/conns.ts [--conns 10000] [--steps 4] [--nodes 1] [--procs 4] [--roster] [--snapshot FILE]
// --snapshot writes node 1's heap snapshot, taken with every client logged in, to FILE (for Chrome's
// DevTools, or bench/heap-by-type.ts).
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { OwnCluster, sleep } from './lib.ts';

const { values } = parseArgs({
  options: {
    conns: { type: 'string', default: '10000' }, steps: { type: 'string', default: '4' }, nodes: { type: 'string', default: '1' },
    procs: { type: 'string', default: '4' }, roster: { type: 'boolean', default: false }, child: { type: 'boolean', default: false },
    snapshot: { type: 'string' },
  },
});

// ---- a client process: holds its share of the connections ----

type ToChild = { op: 'open'; url: string; from: number; count: number; prefix: string; local: string } | { op: 'login'; roster: boolean } | { op: 'exit' };
type FromChild = { op: 'opened' | 'loggedIn'; n: number; failed: number; firstError?: string };
const PARALLEL = 100;

async function inBatches<T>(items: T[], f: (t: T) => Promise<void>): Promise<{ failed: number; firstError?: string }> {
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < items.length) {
      const t = items[next++]!;
      try {
        await f(t);
      } catch (e) {
        failed++;
        firstError ??= (e as Error).message;
      }
    }
  }));
  return { failed, firstError };
}

function child(): void {
  const open: { ws: WebSocket; user: string }[] = [];
  const reply = (m: FromChild) => process.send!(m);
  process.on('message', async (m: ToChild) => {
    if (m.op === 'exit') {
      for (const c of open) c.ws.terminate();
      process.exit(0);
    }
    if (m.op === 'open') {
      const users = Array.from({ length: m.count }, (_, i) => `${m.prefix}${m.from + i}`);
      const r = await inBatches(users, async (user) => {
        const ws = new WebSocket(m.url, { perMessageDeflate: false, localAddress: m.local });
        ws.on('error', () => undefined);
        await Promise.race([once(ws, 'open'), once(ws, 'close').then(() => { throw new Error('closed before open'); })]);
        open.push({ ws, user });
      });
      reply({ op: 'opened', n: open.length, ...r });
    } else if (m.op === 'login') {
      const r = await inBatches(open, async ({ ws, user }) => {
        const welcome = new Promise<void>((ok, fail) => {
          ws.once('message', (d) => {
            const f = JSON.parse(String(d)) as { op: string; message?: string };
            if (f.op === 'welcome') ok();
            else fail(new Error(`login answered ${f.op}: ${f.message ?? ''}`));
          });
          ws.once('close', (code) => fail(new Error(`closed with ${code} before welcome`)));
        });
        ws.send(JSON.stringify({ op: 'login', id: 1, user, device: 'idle', ...(m.roster ? { roster: true } : {}) }));
        await welcome;
        ws.removeAllListeners('message');
        ws.removeAllListeners('close');
      });
      reply({ op: 'loggedIn', n: open.length - r.failed, ...r });
    }
  });
}

// ---- the node's memory, after a full collection ----

type Mem = { rss: number; heapUsed: number; external: number; arrayBuffers: number; vmRss: number };

class Inspector {
  #ws: WebSocket;
  #next = 1;
  #waiting = new Map<number, (r: { result?: unknown; error?: { message: string } }) => void>();
  /** Heap snapshot chunks, while one is being taken. */
  #chunks: string[] | undefined;
  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as { id?: number; method?: string; params?: { chunk?: string }; result?: unknown; error?: { message: string } };
      if (m.id !== undefined) this.#waiting.get(m.id)?.(m);
      else if (m.method === 'HeapProfiler.addHeapSnapshotChunk') this.#chunks?.push(m.params!.chunk!);
    });
  }

  async snapshot(file: string): Promise<void> {
    this.#chunks = [];
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    await writeFile(file, this.#chunks.join(''));
    this.#chunks = undefined;
  }

  static async open(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await once(ws, 'open');
    return new Inspector(ws);
  }

  async call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    const r = await new Promise<{ result?: unknown; error?: { message: string } }>((ok) => {
      this.#waiting.set(id, ok);
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
    this.#waiting.delete(id);
    if (r.error) throw new Error(`${method}: ${r.error.message}`);
    return r.result;
  }

  close(): void {
    this.#ws.close();
  }
}

async function memory(insp: Inspector, pid: number): Promise<Mem> {
  // Two collections: the first may leave objects that finalizers free for the second.
  await insp.call('HeapProfiler.collectGarbage');
  await insp.call('HeapProfiler.collectGarbage');
  const r = (await insp.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
  const m = JSON.parse(r.result.value) as Omit<Mem, 'vmRss'>;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { ...m, vmRss: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024 };
}

// ---- the run ----

async function main(): Promise<number> {
  const N = Number(values.conns);
  const STEPS = Number(values.steps);
  const NODES = Number(values.nodes);
  const PROCS = Number(values.procs);
  if (![N, STEPS, NODES, PROCS].every((n) => Number.isInteger(n) && n >= 1)) {
    process.stderr.write('usage: node bench/conns.ts [--conns N] [--steps S] [--nodes K] [--procs P] [--roster]\n');
    return 2;
  }
  console.log(`conns: node bench/conns.ts ${process.argv.slice(2).join(' ')}`.trim());
  console.log(`machine: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; open-file limit per process: ${/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]}`);
  const own = await (async () => {
    // Every node runs the inspector on a port of its own choosing (read from its log).
    const orig = process.env.NODE_OPTIONS ?? '';
    process.env.NODE_OPTIONS = `${orig} --inspect=127.0.0.1:0`.trim();
    try {
      return await OwnCluster.start(NODES, ['--max-connections', String(N + 10), '--idle-timeout', '3600000', '--login-timeout', '3600000', '--max-in-flight', '5000']);
    } finally {
      process.env.NODE_OPTIONS = orig;
    }
  })();
  const kids: ChildProcess[] = [];
  let code = 1;
  try {
    await own.converged();
    own.phase = 'run';
    const gw = own.nodes[0]!;
    const inspUrl = gw.log.map((l) => /Debugger listening on (ws:\/\/\S+)/.exec(l)?.[1]).find(Boolean);
    if (!inspUrl) throw new Error('node 1 logged no inspector address');
    const insp = await Inspector.open(inspUrl);
    const pid = gw.proc!.pid!;
    for (let i = 0; i < PROCS; i++) kids.push(fork(process.argv[1]!, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const ask = async (k: ChildProcess, m: ToChild): Promise<FromChild> => {
      const answer = once(k, 'message') as Promise<[FromChild]>;
      k.send(m);
      return (await answer)[0];
    };
    const base = await memory(insp, pid);
    const rows: { phase: string; conns: number; mem: Mem; s: number }[] = [{ phase: 'no clients', conns: 0, mem: base, s: 0 }];
    const tag = Math.random().toString(36).slice(2, 7);
    let opened = 0;
    const share = (n: number, i: number) => Math.floor(n / PROCS) + (i < n % PROCS ? 1 : 0);
    for (let s = 1; s <= STEPS; s++) {
      const n = Math.round((N * s) / STEPS) - opened;
      const t0 = performance.now();
      let from = opened;
      const answers = await Promise.all(kids.map((k, i) => {
        const count = share(n, i);
        const m: ToChild = { op: 'open', url: gw.url, from, count, prefix: `idle-${tag}-`, local: `127.0.0.${2 + i}` };
        from += count;
        return ask(k, m);
      }));
      const failed = answers.reduce((a, r) => a + r.failed, 0);
      if (failed) throw new Error(`${failed} connections failed to open: ${answers.find((r) => r.firstError)?.firstError}`);
      opened += n;
      await sleep(1000);
      rows.push({ phase: 'open', conns: opened, mem: await memory(insp, pid), s: (performance.now() - t0) / 1000 });
    }
    const t0 = performance.now();
    const logins = await Promise.all(kids.map((k) => ask(k, { op: 'login', roster: values.roster })));
    const lfailed = logins.reduce((a, r) => a + r.failed, 0);
    if (lfailed) throw new Error(`${lfailed} logins failed: ${logins.find((r) => r.firstError)?.firstError}`);
    const loginS = (performance.now() - t0) / 1000;
    // The welcome goes out before the replay after it has read the (empty) timeline: wait until
    // every replay is over, that is until the live heap stops shrinking.
    let last = await memory(insp, pid);
    for (let i = 0; i < 15; i++) {
      await sleep(2000);
      const m = await memory(insp, pid);
      const settled = Math.abs(m.heapUsed - last.heapUsed) < 0.005 * last.heapUsed;
      last = m;
      if (settled) break;
    }
    rows.push({ phase: 'logged in', conns: opened, mem: last, s: loginS });
    if (values.snapshot) await insp.snapshot(values.snapshot);
    insp.close();

    const kib = (b: number) => (b / 1024).toFixed(1);
    console.log('\n| after | conns | heap used MiB | external + array buffers MiB | RSS MiB | step s |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      console.log(`| ${r.phase} | ${r.conns.toLocaleString('en-US')} | ${(r.mem.heapUsed / 2 ** 20).toFixed(1)} | ${((r.mem.external + r.mem.arrayBuffers) / 2 ** 20).toFixed(1)} | ${(r.mem.vmRss / 2 ** 20).toFixed(1)} | ${r.s.toFixed(1)} |`);
    }
    const openRow = rows[STEPS]!;
    const per = (a: Mem, b: Mem, n: number) => ({ heap: (b.heapUsed - a.heapUsed) / n, ext: (b.external - a.external) / n, rss: (b.vmRss - a.vmRss) / n });
    const o = per(base, openRow.mem, opened);
    const l = per(openRow.mem, last, opened);
    const t = per(base, last, opened);
    console.log(`\nper connection, open (not logged in): heap ${kib(o.heap)} KiB, external ${kib(o.ext)} KiB, RSS ${kib(o.rss)} KiB`);
    console.log(`per connection, added by the login:    heap ${kib(l.heap)} KiB, external ${kib(l.ext)} KiB, RSS ${kib(l.rss)} KiB`);
    console.log(`per idle logged-in connection:          heap ${kib(t.heap)} KiB, external ${kib(t.ext)} KiB, RSS ${kib(t.rss)} KiB`);
    console.log(`logins: ${opened.toLocaleString('en-US')} in ${loginS.toFixed(1)} s (${Math.round(opened / loginS).toLocaleString('en-US')}/s); node 1 holds ${opened.toLocaleString('en-US')} connections`);
    // Startup warnings (two nodes joining at once, one refused and trying again) are not this run's.
    const problems = own.problems.filter((p) => p.phase !== 'startup' && !/Debugger|inspector|For help/.test(p.line));
    for (const p of problems) console.log(`problem: ${p.node} (${p.phase}): ${p.line.slice(0, 300)}`);
    code = problems.length ? 1 : 0;
  } finally {
    for (const k of kids) if (k.connected) k.send({ op: 'exit' } satisfies ToChild);
    await own.stop();
    await own.remove();
  }
  return code;
}

if (values.child) child();
else process.exitCode = await main();
