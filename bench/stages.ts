// Where a node's CPU goes, per stage of a message's path (`npm run bench -- --profile`): the
// nodes run with V8's sampling profiler, and the samples taken on their main threads during the
// load are put into stages by the file and function they were in (self time). The profiler sees
// the main thread only, so the CPU of the other threads comes from /proc, by thread name:
// `libuv-worker` is SQLite's own work (node-sqlite3 runs statements on libuv's thread pool),
// `V8Worker` the background GC and compiler. Per message = the stage's share of the main thread's
// samples times the main thread's CPU, over the delivered messages.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Stage of a sample, by the first rule its source matches (`url`, then `fn` for natives). */
const STAGES: [string, RegExp][] = [
  ['client WebSocket library (ws: frames in and out)', /node_modules\/ws\//],
  ['gateway: client frames, validation, ops', /\/src\/(gateway|http)\/|\/src\/protocol\/(frames|validate|common|client)/],
  ['peer codec: envelopes and pages (JSON), length prefix', /\/src\/transport\/envelope|\/src\/protocol\/peer|it-length-prefixed|uint8arraylist|uint8arrays|\/protocol-buffers|protons/],
  ['routing: ring, router, membership', /\/src\/(cluster|ring|membership)\/|hashring/],
  ['encryption: noise (chacha20-poly1305)', /libp2p-noise|chacha20poly1305|node:internal\/crypto|@noble\//],
  ['encryption: private network (xsalsa20)', /\/pnet\/|xsalsa20|^wasm:/],
  ['yamux', /libp2p-yamux/],
  ['libp2p transport, streams, other', /@libp2p\/|\/libp2p\/|\/src\/transport\/|node_modules\/(it-|p-queue|main-event|race-signal|weald|@multiformats|multiformats)/],
  ['SQLite calls on the main thread (sqlite3 binding)', /\/src\/store\/db\.ts|node_modules\/sqlite3\//],
  ['store: rows, snapshots, imports', /\/src\/store\//],
  ['replication: home queues and replica apply', /\/src\/replica\//],
  ['home: send pipeline, pushes, groups, social', /\/src\/(home|group-home|social|presence|groups)\//],
  ['socket writes and reads (kernel calls, streams)', /^native:(writeBuffer|writev|writeUtf8String|writeLatin1String|read)$|node:net|node:internal\/(stream|net|streams)/],
  ['garbage collection (main thread)', /^native:\(garbage collector\)$/],
  ['promises, timers, events', /^native:runMicrotasks$|node:internal\/(process\/task_queues|timers|event_target|async)|node:(timers|events)|\/src\/clock\//],
  ['logs and metrics', /prom-client|pino|\/src\/node\/metrics/],
];
const OTHER = 'V8 and other native code on the main thread';

type Profile = {
  nodes: { id: number; callFrame: { url: string; functionName: string }; children?: number[] }[];
  startTime: number; samples: number[]; timeDeltas: number[];
};

/** The stage of one call frame. */
export function stageOf(url: string, fn: string): string {
  const key = url || `native:${fn}`;
  for (const [name, re] of STAGES) if (re.test(key)) return name;
  return OTHER;
}

/** Busy main-thread samples per stage (µs of samples) between `fromUs` and `toUs` (the monotonic
 * clock that process.hrtime and V8's profiler share). With `split`, the samples of the catch-all
 * stage are keyed by their function instead (`other › name (file)`), to see what it holds. */
export function stageSamples(file: string, fromUs: number, toUs: number, split = false): Map<string, number> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const stage = new Map<number, string | undefined>();
  for (const n of p.nodes) {
    const { url, functionName } = n.callFrame;
    const s = functionName === '(idle)' ? undefined : stageOf(url, functionName);
    stage.set(n.id, split && s === OTHER ? `other › ${functionName || '(anonymous)'} (${url.split('/').pop() || 'native'})` : s);
  }
  return inWindow(p, fromUs, toUs, (id) => stage.get(id));
}

/** The profile's samples between `fromUs` and `toUs`, summed (µs) by `keyOf` their node (none: not counted). */
function inWindow(p: Profile, fromUs: number, toUs: number, keyOf: (node: number) => string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < fromUs || t > toUs) continue;
    const k = keyOf(p.samples[i]!);
    if (k) out.set(k, (out.get(k) ?? 0) + dt);
  }
  return out;
}

/** Busy main-thread samples (µs) between `fromUs` and `toUs`, each given to the nearest frame of
 * our own code on its stack (`fn (file)`, counting what it called in libraries and natives), or,
 * for a stack with none of ours, to its leaf's stage: which of our functions the time is spent
 * under, rather than which leaf it ends in. */
export function ownerSamples(file: string, fromUs: number, toUs: number): Map<string, number> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ours = new Map<number, string | undefined>(); // the nearest frame of ours at or above a node
  const oursOf = (id: number): string | undefined => {
    if (ours.has(id)) return ours.get(id);
    const { url, functionName } = byId.get(id)!.callFrame;
    const up = parent.get(id);
    const o = /\/(src|bench)\//.test(url) && !url.includes('node_modules')
      ? `${functionName || '(anonymous)'} (${url.split('/').pop()})`
      : up === undefined ? undefined : oursOf(up);
    ours.set(id, o);
    return o;
  };
  const ownerOf = (id: number): string | undefined => {
    const { url, functionName } = byId.get(id)!.callFrame;
    return functionName === '(idle)' ? undefined : (oursOf(id) ?? stageOf(url, functionName));
  };
  return inWindow(p, fromUs, toUs, ownerOf);
}

/** CPU seconds used so far by each thread of `pid`, summed by thread name. */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  const dir = `/proc/${pid}/task`;
  for (const tid of readdirSync(dir)) {
    try {
      const name = readFileSync(join(dir, tid, 'comm'), 'utf8').trim();
      const stat = readFileSync(join(dir, tid, 'stat'), 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 (utime, stime), counted from the state field (3): indexes 11 and 12.
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

export const diffThreads = (a: Map<string, number>, b: Map<string, number>): Map<string, number> =>
  new Map([...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)]));

/** V8's profiler thread: the measurement's own cost, left out of the table. */
const PROFILER_THREAD = 'v8:ProfEvntProc';
const THREADS: Record<string, string> = {
  'libuv-worker': 'SQLite on its own threads (libuv pool: statements, fsync)',
  V8Worker: 'V8 background threads (GC, compiler)',
};

/**
 * The table: per stage, µs of node CPU per delivered message (all nodes together) and its share.
 * `samples`: per node, busy main-thread samples per stage; `threads`: per node, CPU seconds per
 * thread name over the same window.
 */
export function stageTable(samples: Map<string, number>[], threads: Map<string, number>[], delivered: number): string[] {
  const rows = new Map<string, number>();
  let profiler = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const busy = [...s.values()].reduce((a, b) => a + b, 0);
    const main = threads[i]!.get('MainThread') ?? 0;
    for (const [k, v] of s) rows.set(k, (rows.get(k) ?? 0) + (busy ? (main * v) / busy : 0));
    for (const [name, cpu] of threads[i]!) {
      if (name === 'MainThread') continue;
      if (name === PROFILER_THREAD) {
        profiler += cpu;
        continue;
      }
      const k = THREADS[name] ?? `other threads (${name})`;
      rows.set(k, (rows.get(k) ?? 0) + cpu);
    }
  }
  const total = [...rows.values()].reduce((a, b) => a + b, 0);
  const perMsg = (s: number) => (delivered ? (s * 1e6) / delivered : 0);
  const w = Math.max(...[...rows.keys()].map((k) => k.length), 10);
  const lines = [`  ${'stage'.padEnd(w)}  µs/msg   share`];
  for (const [k, v] of [...rows].sort((a, b) => b[1] - a[1])) {
    if (v <= 0) continue;
    lines.push(`  ${k.padEnd(w)}  ${perMsg(v).toFixed(1).padStart(6)}  ${((100 * v) / total).toFixed(1).padStart(5)}%`);
  }
  lines.push(`  ${'all node CPU'.padEnd(w)}  ${perMsg(total).toFixed(1).padStart(6)}  100.0%`);
  lines.push(`  (not counted: the profiler's own thread, ${perMsg(profiler).toFixed(1)} µs/msg; the sampling also slows the main thread)`);
  return lines;
}

/** The profile each node wrote at exit, by pid (V8 names them CPU.<date>.<time>.<pid>.…). */
export function profilesByPid(dir: string): Map<number, string> {
  const out = new Map<number, string>();
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    // No node wrote one (none exited cleanly): the caller names them.
  }
  for (const f of files) {
    const m = /^CPU\.\d+\.\d+\.(\d+)\./.exec(f);
    if (m) out.set(Number(m[1]), join(dir, f));
  }
  return out;
}
