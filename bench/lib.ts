// What the benchmarks share: a cluster of our own node processes on this machine (temp folders,
// free ports, a shared swarm key; each process is test/helpers/launcher.ts's, as in the tests), the
// peer traffic read from the nodes' /metrics, CPU per process.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeProcess } from '../test/helpers/launcher.ts';

export const OWN_NODE_ARGS = ['--insecure', '--rate', '100000', '--rate-burst', '100000'];
const CONVERGE_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
/** A profiled node writes its profile as it exits: tens of MB after a long run. */
const PROFILE_STOP_TIMEOUT_MS = 120_000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function getJson(url: string): Promise<unknown> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return r.ok ? await r.json() : undefined;
  } catch {
    return undefined;
  }
}

/** ws://host:port/ws → http://host:port (where /cluster and /metrics are served). */
export function httpBase(wsUrl: string): string {
  const u = new URL(wsUrl);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

// ---- our own nodes, when no URL is given ----

export type Phase = 'startup' | 'run' | 'shutdown';
/** A warning or worse from one of our nodes' logs (or its unexpected exit), with when it happened. */
export type Problem = { node: string; phase: Phase; line: string };

/** One of our nodes; its output also goes to <cluster dir>/<name>.log. */
export type OwnNode = NodeProcess;

export type ClusterView = {
  joined?: boolean;
  members?: { name: string; state: string }[];
  ring?: { version: string; members: string[] };
};

export class OwnCluster {
  readonly dir: string;
  readonly psk: string;
  nodes: OwnNode[] = [];
  problems: Problem[] = [];
  phase: Phase = 'startup';
  args: string[] = [];
  /** Extra environment of every node process (the profiler's options). */
  env: Record<string, string> = {};

  constructor(dir: string) {
    this.dir = dir;
    this.psk = join(dir, 'swarm.key');
  }

  /** Starts N nodes (node 1 first, the others joining it), each with OWN_NODE_ARGS and `args`.
   * `profileDir` (inside the cluster's folder): every node runs with V8's CPU profiler and writes
   * its profile there when it exits. */
  static async start(n: number, args: string[] = [], opts: { profileDir?: string } = {}): Promise<OwnCluster> {
    const c = new OwnCluster(await mkdtemp(join(tmpdir(), 'im-bench-')));
    try {
      await writeFile(c.psk, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`, { mode: 0o600 });
      c.args = args;
      if (opts.profileDir) {
        const dir = join(c.dir, opts.profileDir);
        c.env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-interval=250 --cpu-prof-dir=${dir}`.trim() };
      }
      const first = await c.startNode('bench-1', []);
      await Promise.all(Array.from({ length: n - 1 }, (_, i) => c.startNode(`bench-${i + 2}`, [first.p2p])));
      return c;
    } catch (e) {
      await c.stop();
      throw new Error(`${(e as Error).message}\n(logs kept in ${c.dir})`);
    }
  }

  async startNode(name: string, seeds: string[]): Promise<OwnNode> {
    const data = join(this.dir, name);
    await mkdir(data, { mode: 0o700 });
    const log = createWriteStream(join(this.dir, `${name}.log`));
    const problem = (line: string) => this.problems.push({ node: name, phase: this.phase, line });
    const node = new NodeProcess(data, {
      name,
      args: ['--psk-file', this.psk, ...OWN_NODE_ARGS, ...this.args, ...seeds.flatMap((s) => ['--join', s])],
      env: this.env,
      // The log file has everything; memory keeps the tail that a failed start reports.
      logLines: 50,
      onSpawn: (proc) => {
        // A node still running when we exit for any reason would outlive the benchmark.
        process.on('exit', () => proc.kill('SIGKILL'));
        proc.stdout!.on('data', (d: Buffer) => log.write(d));
        proc.stderr!.on('data', (d: Buffer) => log.write(d));
        // Both pipes end after the process exits; close the log file then.
        void Promise.all([once(proc.stdout!, 'end'), once(proc.stderr!, 'end')]).then(() => log.end());
        proc.once('exit', (code, signal) => {
          if (this.phase !== 'shutdown' || (code !== 0 && code !== null) || signal) problem(`exited with ${signal ?? `code ${code}`}`);
        });
      },
      onOutput: (text, stream, j) => {
        if (stream === 'stderr') problem(`stderr: ${text.trim().slice(0, 500)}`);
        else if (j && j.msg !== 'listening' && (j.level ?? 0) >= 40 && !/INSECURE/.test(j.msg ?? '')) problem(text);
      },
    });
    this.nodes.push(node);
    await node.start(0);
    if (!node.p2p) throw new Error(`node ${name} logged no peer address`);
    return node;
  }

  /** Waits until every node is joined and lists all N members up, on one ring version; returns it. */
  async converged(timeoutMs = CONVERGE_TIMEOUT_MS): Promise<string> {
    const names = this.nodes.map((n) => n.name).sort();
    const want = JSON.stringify(names);
    const end = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const views = (await Promise.all(this.nodes.map((n) => getJson(`${n.http}/cluster`)))) as (ClusterView | undefined)[];
      const versions = new Set<string>();
      let ok = true;
      for (const v of views) {
        const up = (v?.members ?? []).filter((m) => m.state === 'up').map((m) => m.name).sort();
        if (!v?.joined || JSON.stringify(up) !== want || JSON.stringify([...(v.ring?.members ?? [])].sort()) !== want) ok = false;
        versions.add(v?.ring?.version ?? '?');
      }
      if (ok && versions.size === 1) return [...versions][0]!;
      last = JSON.stringify(views);
      if (Date.now() > end) throw new Error(`the cluster did not converge within ${timeoutMs / 1000} s; last views: ${last.slice(0, 2000)}`);
      await sleep(50);
    }
  }

  /** CPU seconds used by each node so far. */
  /** Each node's process id (its latest process). */
  pids(): number[] {
    return this.nodes.map((n) => n.proc?.pid ?? -1);
  }

  cpu(): (number | undefined)[] {
    return this.nodes.map((n) => procCpuS(n.proc?.pid));
  }

  /** SIGTERM to every node at once (graceful leave), then waits for their exits (SIGKILL after a while). */
  async stop(): Promise<void> {
    this.phase = 'shutdown';
    const limitMs = this.env.NODE_OPTIONS?.includes('--cpu-prof') ? PROFILE_STOP_TIMEOUT_MS : STOP_TIMEOUT_MS;
    await Promise.all(this.nodes.map(async (n) => {
      if (n.running()) {
        const timer = setTimeout(() => {
          this.problems.push({ node: n.name, phase: 'shutdown', line: `still running ${limitMs / 1000} s after SIGTERM: SIGKILL` });
          void n.kill();
        }, limitMs);
        await n.stop();
        clearTimeout(timer);
      }
      // Let the log file take the last lines.
      const out = n.proc?.stdout;
      if (out && !out.readableEnded) await Promise.race([once(out, 'end'), sleep(1000)]);
    }));
  }

  remove(): Promise<void> {
    return rm(this.dir, { recursive: true, force: true });
  }
}

// ---- peer traffic, from the nodes' /metrics ----

export type PeerTotals = { frames: number; envelopes: number; bytes: number };

const PEER_GAUGES: Record<string, keyof PeerTotals> = { im_peer_frames: 'frames', im_peer_messages: 'envelopes', im_peer_bytes: 'bytes' };

/** Sums the peer gauges with dir="out" over every peer of every node (frames each node sent). */
export async function peerTotals(bases: string[]): Promise<PeerTotals> {
  const t: PeerTotals = { frames: 0, envelopes: 0, bytes: 0 };
  await Promise.all(bases.map(async (b) => {
    let text: string;
    try {
      const r = await fetch(`${b}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      text = await r.text();
    } catch (e) {
      throw new Error(`${b}/metrics: ${(e as Error).message}`);
    }
    for (const line of text.split('\n')) {
      const m = /^(im_peer_frames|im_peer_messages|im_peer_bytes)\{([^}]*)\}\s+(\S+)/.exec(line);
      if (!m || !/(?:^|,)dir="out"(?:,|$)/.test(m[2]!)) continue;
      t[PEER_GAUGES[m[1]!]!] += Number(m[3]);
    }
  }));
  return t;
}

/** The nodes to read /metrics from: the given ones and every member up in their /cluster views. */
export async function metricsBases(urls: string[]): Promise<string[]> {
  const bases = new Set(urls.map(httpBase));
  const views = (await Promise.all([...bases].map((b) => getJson(`${b}/cluster`)))) as ({ members?: { url?: string; state?: string }[] } | undefined)[];
  for (const v of views) {
    for (const m of v?.members ?? []) {
      if (m.state !== 'up' || typeof m.url !== 'string') continue;
      try {
        bases.add(httpBase(m.url));
      } catch {
        // not a URL
      }
    }
  }
  return [...bases];
}

export const diff = (a: PeerTotals, b: PeerTotals): PeerTotals => ({ frames: b.frames - a.frames, envelopes: b.envelopes - a.envelopes, bytes: b.bytes - a.bytes });

/** CPU seconds a process has used so far, from /proc (Linux); undefined elsewhere. */
export function procCpuS(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}


/** Messages/s and CPU per message of one measured round: the process's (every thread, so SQLite's
 * work on libuv's pool counts) and the main thread's share. */
export type CpuRound = { perSec: number; cpuUs: number; mainUs: number };

/** Runs `work` (which handles `msgs` messages) and measures it. */
export async function measureCpu(msgs: number, work: () => Promise<void>): Promise<CpuRound> {
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  return {
    perSec: Math.round((msgs / ms) * 1000),
    cpuUs: Math.round((cpu.user + cpu.system) / msgs),
    mainUs: Math.round((main.user + main.system) / msgs),
  };
}

/** Runs `rounds` rounds one after the other, prints each (after `label`) and then the medians. */
export async function cpuRounds(rounds: number, label: string, round: (r: number) => Promise<CpuRound>): Promise<void> {
  const out: CpuRound[] = [];
  for (let r = 1; r <= rounds; r++) {
    const x = await round(r);
    out.push(x);
    console.log(`round ${r}: ${label}, ${x.perSec.toLocaleString('en')} msgs/s, ${x.cpuUs} µs CPU per message (main thread ${x.mainUs})`);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`median: ${med(out.map((x) => x.perSec)).toLocaleString('en')} msgs/s, ${med(out.map((x) => x.cpuUs))} µs CPU per message ` +
    `(main thread ${med(out.map((x) => x.mainUs))})`);
}
