// The churn benchmark's run (bench/churn.ts parses the options and prints the report): a cluster
// of our own nodes, the schedule of joins, leaves, kills and restarts, the users' load and
// counts by phase, and reading every timeline back for the checks in churn-report.ts.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImClient } from '../src/client/client.ts';
import type { Entry } from '../src/protocol/frames.ts';
import { createRing } from '../src/ring/index.ts';
// Test helpers without ava (node.ts and cluster.ts import only node built-ins, jose, the client
// and the protocol's types).
import { TestCluster } from '../test/helpers/cluster.ts';
import { TestNode, readAll, token } from '../test/helpers/node.ts';
import { NODE_ARGS, Phase, errorText, monoUs, now, sleep, withTimeout } from './churn-common.ts';
import type { Opts, PhaseName, Step } from './churn-common.ts';
import { User } from './churn-user.ts';
import { check } from './churn-report.ts';
import { ThreadTotals } from './churn-steps.ts';
import type { Totals } from './churn-steps.ts';
import type { Verification } from './churn-report.ts';

const CONVERGE_MS = 30_000;
const SETTLE_MS = 30_000;
const START_MS = 30_000;
const LEAVE_MS = 30_000;
const LOGIN_MS = 10_000;
const CONNECT_BATCH = 50;
const VERIFY_PARALLEL = 8;

export type StepRecord = {
  step: Step; node: string; at: number; ms: number; converged_ms: number; settled_ms?: number; detail: string; error?: string;
  /** The running totals when the step began (bench/churn-steps.ts). */
  totals?: Totals;
  /** When the step began on the monotonic clock (µs), to cut CPU profiles by step. */
  us?: number;
};
type Migrations = { replicationBehind?: number; handoffsOut?: unknown[]; copying?: unknown };
type Anomaly = { at: number; text: string };

export class Bench {
  readonly o: Opts;
  readonly say: (s: string) => void;
  dir = '';
  cluster: TestCluster | undefined;
  baseArgs: string[] = [];
  /** The nodes clients may be sent to: started, converged, and not being stopped (see retarget). */
  targets: TestNode[] = [];
  users: User[] = [];
  phases: Phase[] = [];
  phase = new Phase('warmup', now());
  steps: StepRecord[] = [];
  rings: { at: number; members: string[] }[] = [];
  anomalies: Anomaly[] = [];
  failures: string[] = [];
  perSecond: number[] = [];
  sending = false;
  closing = false;
  private expected = new WeakSet<object>();
  private victims = new Set<TestNode>();
  private down: TestNode[] = [];
  private started = 0;
  private cpuSeen = new Map<number, number>(); // pid → CPU seconds at the last sample
  private cpuSelf = process.cpuUsage();
  private cpuBusy: number | undefined; // the machine's busy ticks at the last sample
  /** Sends and node CPU by kind of thread, for the churn phase step by step. */
  readonly threads = new ThreadTotals();
  private countersSeen = new Map<number, { handoff: number; replicated: number }>(); // pid → at the last sample
  private countersBusy = false;

  constructor(o: Opts, say: (s: string) => void) {
    this.o = o;
    this.say = say;
  }

  t(at = now()): string {
    return `+${((at - (this.phases[0]?.start ?? at)) / 1000).toFixed(1)} s`;
  }

  anomaly(text: string): void {
    this.anomalies.push({ at: now(), text });
  }

  /** Ends the current phase (stalls still open count up to its end) and starts the next, if any. */
  enter(name?: PhaseName): void {
    this.sampleCpu();
    const t = now();
    this.phase.end = t;
    this.phase.endUs = monoUs();
    this.phase.totalsEnd = this.threads.snapshot(t);
    for (const u of this.users) if (u.out.size) this.phase.noteStall(u.name, u.lastProgress, t);
    if (!name) return;
    this.phase = new Phase(name, t);
    this.phase.totalsStart = this.threads.snapshot(t);
    this.phases.push(this.phase);
    this.say(`[${this.t(t)}] ${name}`);
  }

  confirm(u: User, t: number, latency: number): void {
    const ph = this.phase;
    ph.confirmed++;
    this.threads.confirmed();
    ph.latencies.push(latency);
    for (const p of this.phases) p.noteStall(u.name, u.lastProgress, t);
    u.lastProgress = t;
    const steady = this.phases.find((p) => p.name === 'steady');
    if (steady && ph.name !== 'drain') {
      const i = Math.floor((t - steady.start) / 1000);
      this.perSecond[i] = (this.perSecond[i] ?? 0) + 1;
    }
  }

  /** Adds the CPU time our processes used since the last sample to the current phase. */
  sampleCpu(): void {
    this.threads.sample((this.cluster?.nodes ?? []).flatMap((n) => (n.proc?.pid === undefined ? [] : [n.proc.pid])));
    for (const n of this.cluster?.nodes ?? []) {
      const pid = n.proc?.pid;
      if (pid === undefined) continue;
      let used: number;
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        used = (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ ticks
      } catch {
        continue; // gone, or not Linux
      }
      this.phase.cpuNodes += used - (this.cpuSeen.get(pid) ?? 0);
      this.cpuSeen.set(pid, used);
    }
    try {
      const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).map(Number);
      const busy = ticks.slice(0, 8).reduce((a, x) => a + x, 0) - ticks[3]! - ticks[4]!; // all but idle and iowait
      if (this.cpuBusy !== undefined) this.phase.cpuAll += (busy - this.cpuBusy) / 100;
      this.cpuBusy = busy;
    } catch {
      // not Linux
    }
    const self = process.cpuUsage(this.cpuSelf);
    this.phase.cpuBench += (self.user + self.system) / 1e6;
    this.cpuSelf = process.cpuUsage();
  }

  /** Adds the entries each node moved since the last sample to the current phase. A node's count
   * between its last sample and its exit (a kill, the end of a leave's handoff) is not seen. */
  async sampleCounters(): Promise<void> {
    if (this.countersBusy) return;
    this.countersBusy = true;
    try {
      await Promise.all((this.cluster?.nodes ?? []).map(async (n) => {
        const pid = n.proc?.pid;
        if (pid === undefined || !n.running()) return;
        let text: string;
        try {
          const r = await fetch(`${n.http}/metrics`, { signal: AbortSignal.timeout(2000) });
          text = await r.text();
        } catch {
          return;
        }
        const read = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
        const now = { handoff: read('im_handoff_entries_total'), replicated: read('im_replicated_entries_total') };
        if (!Number.isFinite(now.handoff) || !Number.isFinite(now.replicated)) return;
        const was = this.countersSeen.get(pid) ?? { handoff: 0, replicated: 0 };
        this.phase.handoffEntries += now.handoff - was.handoff;
        this.phase.replicatedEntries += now.replicated - was.replicated;
        this.countersSeen.set(pid, now);
      }));
    } finally {
      this.countersBusy = false;
    }
  }

  // ---- nodes ----

  async startCluster(): Promise<string> {
    this.dir = await mkdtemp(join(tmpdir(), 'im-bench-churn-'));
    const psk = join(this.dir, 'swarm.key');
    await writeFile(psk, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`, { mode: 0o600 });
    this.baseArgs = ['--psk-file', psk, ...NODE_ARGS, '--replicas', String(this.o.replicas)];
    this.cluster = new TestCluster(psk, this.baseArgs);
    await this.newNode();
    await Promise.all(Array.from({ length: this.o.nodes - 1 }, () => this.newNode()));
    const version = await this.converged();
    this.retarget([...this.cluster.nodes]);
    return version;
  }

  /** Starts a new node joining through every live one (none for the first). */
  private async newNode(): Promise<TestNode> {
    const name = `bench-${++this.started}`;
    const data = join(this.dir, name);
    await mkdir(data);
    const n = new TestNode(data, {
      name, ...(this.o.profile ? { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-interval=500 --cpu-prof-dir=${join(this.dir, 'profiles')}` } } : {}),
    });
    this.cluster!.nodes.push(n);
    await this.launch(n, 0);
    return n;
  }

  /** (Re)starts a node, joining through every other live node, on the given client port (0: any). */
  private async launch(n: TestNode, port: number): Promise<void> {
    const seeds = this.cluster!.live().filter((m) => m !== n && m.p2p).flatMap((m) => ['--join', m.p2p]);
    n.opts.args = [...this.baseArgs, ...seeds];
    try {
      await withTimeout(n.start(port), START_MS, `starting ${n.opts.name}`);
    } catch (e) {
      await n.kill();
      throw e;
    }
    const proc = n.proc!;
    proc.once('exit', (code, signal) => {
      if (this.expected.has(proc)) return;
      this.retarget(this.targets.filter((x) => x !== n));
      const fatal = n.log.slice(-20).reverse().map((l) => {
        try {
          const j = JSON.parse(l) as { level?: number; msg?: string; err?: { message?: string } };
          return (j.level ?? 0) >= 50 ? `: ${j.msg}${j.err?.message ? `: ${j.err.message}` : ''}` : '';
        } catch {
          return '';
        }
      }).find(Boolean) ?? '';
      this.failures.push(`${n.opts.name} exited unexpectedly (${signal ?? `code ${code}`}) at ${this.t()} in ${this.phase.name}${fatal}`);
    });
  }

  /** Waits until every live node is joined and lists exactly the live nodes up, on one ring version. */
  private async converged(): Promise<string> {
    const c = this.cluster!;
    try {
      const v = await c.converged(CONVERGE_MS);
      this.rings.push({ at: now(), members: c.live().map((n) => n.opts.name!).sort() });
      return v;
    } catch (e) {
      const views = await Promise.all(c.live().map(async (n) => {
        const v = await c.view(n);
        return `${n.opts.name}: ${v ? `${v.joined ? 'joined' : 'not joined'}, ring ${v.ring?.version} [${v.ring?.members}], ${v.members.map((m) => `${m.name}:${m.state}`).join(' ')}` : 'no answer'}`;
      }));
      throw new Error(`${errorText(e)} (${CONVERGE_MS / 1000} s); views: ${views.join('; ')}`);
    }
  }

  /** Waits until no live node reports replication or handoff work; '' when done, else what is still busy. */
  private async settled(): Promise<string> {
    const end = now() + SETTLE_MS;
    for (;;) {
      const busy: string[] = [];
      for (const n of this.cluster!.live()) {
        const m = ((await this.cluster!.view(n)) as { migrations?: Migrations } | undefined)?.migrations;
        if (!m) continue; // no answer, or a node without the field
        // Not replicationQueued: live writes keep it above 0 under load.
        if (m.replicationBehind || m.handoffsOut?.length || m.copying) {
          busy.push(`${n.opts.name}: behind ${m.replicationBehind}, handoffs out ${JSON.stringify(m.handoffsOut)}, copying ${JSON.stringify(m.copying)}`);
        }
      }
      if (!busy.length || now() > end) return busy.join('; ');
      await sleep(100);
    }
  }

  private victim(): TestNode {
    const live = this.cluster!.live().filter((n) => this.targets.includes(n));
    const order = [...live.slice(1), ...live.slice(0, 1)]; // bench-1 last
    return order.find((n) => !this.victims.has(n)) ?? order[0]!;
  }

  /** Stops a node (SIGTERM, or SIGKILL with `kill`) and waits for its exit; clients are not sent there any more. */
  private async stopNode(n: TestNode, kill: boolean): Promise<string> {
    this.retarget(this.targets.filter((x) => x !== n));
    this.victims.add(n);
    this.expected.add(n.proc!);
    if (kill) {
      await n.kill();
      return 'SIGKILL';
    }
    const code = await Promise.race([n.stop(), sleep(LEAVE_MS).then(() => 'timeout' as const)]);
    if (code !== 'timeout') return `exit code ${code}`;
    await n.kill();
    throw new Error(`${n.opts.name} still running ${LEAVE_MS / 1000} s after SIGTERM (killed)`);
  }

  async runSchedule(): Promise<void> {
    for (const step of this.o.schedule) {
      const t0 = now();
      this.sampleCpu();
      const rec: StepRecord = { step, node: '', at: t0, ms: 0, converged_ms: 0, detail: '', totals: this.threads.snapshot(t0), us: monoUs() };
      this.steps.push(rec);
      try {
        let n: TestNode;
        if (step === 'join') {
          n = await this.newNode();
          rec.node = n.opts.name!;
          rec.detail = 'started';
        } else if (step === 'restart') {
          n = this.down.pop()!;
          rec.node = n.opts.name!;
          await this.launch(n, n.port);
          rec.detail = 'restarted';
        } else {
          n = this.victim();
          rec.node = n.opts.name!;
          rec.detail = await this.stopNode(n, step === 'kill');
          this.down.push(n);
        }
        const t1 = now();
        rec.ms = Math.round(t1 - t0);
        await this.converged();
        rec.converged_ms = Math.round(now() - t1);
        if (step === 'join' || step === 'restart') this.retarget([...this.targets, n]);
        let settled = '';
        if (this.o.settle) {
          const t2 = now();
          const busy = await this.settled();
          rec.settled_ms = Math.round(now() - t2);
          settled = busy ? `, NOT settled ${SETTLE_MS / 1000} s later (${busy})` : `, settled ${(rec.settled_ms / 1000).toFixed(1)} s later`;
          if (busy) this.anomaly(`${step} ${rec.node}: replication or handoffs not finished ${SETTLE_MS / 1000} s after convergence: ${busy}`);
        }
        this.say(`[${this.t(t0)}] ${step} ${rec.node}: ${rec.detail} after ${(rec.ms / 1000).toFixed(1)} s, converged ${(rec.converged_ms / 1000).toFixed(1)} s later${settled}`);
      } catch (e) {
        if (this.closing) return; // interrupted
        rec.error = errorText(e);
        this.failures.push(`step ${step} ${rec.node}: ${rec.error}`);
        this.say(`[${this.t(t0)}] ${step} ${rec.node} FAILED: ${rec.error}`);
        return;
      }
    }
  }

  // ---- load ----

  /** The nodes clients may be sent to changed: every user's session reconnects only among them. */
  private retarget(nodes: TestNode[]): void {
    this.targets = nodes;
    const urls = nodes.map((n) => n.url);
    for (const u of this.users) u.setUrls(urls);
  }

  async connectUsers(): Promise<void> {
    const run = Math.random().toString(36).slice(2, 7);
    this.users = Array.from({ length: this.o.users }, (_, i) => new User(`c${run}-${i % 2 ? 'b' : 'a'}${i >> 1}`, this));
    for (let i = 0; i < this.users.length; i += 2) {
      this.users[i]!.partner = this.users[i + 1]!;
      this.users[i + 1]!.partner = this.users[i]!;
    }
    // a0 b0 a1 b1 … round-robin over the nodes: the two of a pair start on different nodes.
    for (let i = 0; i < this.users.length; i += CONNECT_BATCH) {
      const urls = this.targets.map((n) => n.url);
      await Promise.all(this.users.slice(i, i + CONNECT_BATCH).map((u, j) => u.start(urls[(i + j) % urls.length]!, urls)));
    }
  }

  start(): void {
    this.sending = true;
    for (const u of this.users) u.pump();
  }

  /** No new sends; waits until every unconfirmed one is confirmed, or the time is up. */
  async drain(): Promise<number> {
    this.sending = false;
    const end = now() + this.o.drain * 1000;
    const open = () => this.users.reduce((s, u) => s + u.out.size, 0);
    while (open() && now() < end) await sleep(50);
    return open();
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const u of this.users) u.close();
    await Promise.all((this.cluster?.nodes ?? []).map(async (n) => {
      if (n.proc) this.expected.add(n.proc);
      // A profile is written only by a process that exits on its own: SIGTERM, then SIGKILL.
      if (this.o.profile && n.running()) {
        const late = setTimeout(() => void n.kill(), 120_000);
        await n.stop();
        clearTimeout(late);
      }
      return n.kill();
    }));
  }

  /** SIGKILL to every node still running; for process exit (synchronous). */
  killAllNow(): void {
    for (const n of this.cluster?.nodes ?? []) if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
  }

  // ---- verification ----

  private async timeline(u: User, i: number): Promise<Entry[]> {
    let last: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      const live = this.cluster!.live();
      const n = live[(i + attempt) % live.length];
      if (!n) throw new Error('no live node left to read timelines from');
      let c: ImClient | undefined;
      try {
        c = await ImClient.connect(n.url, { timeoutMs: 5000 });
        // since past the newest: nothing is replayed; sync reads the whole timeline.
        await withTimeout(c.login({ token: await token(u.name), device: 'verify', since: Number.MAX_SAFE_INTEGER }), LOGIN_MS, 'login');
        return await withTimeout(readAll(c), 60_000, 'sync');
      } catch (e) {
        last = e;
        await sleep(500);
      } finally {
        c?.close();
      }
    }
    throw new Error(`cannot read the timeline of ${u.name}: ${errorText(last)}`);
  }

  async verify(): Promise<Verification> {
    const timelines = new Map<User, Entry[]>();
    const queue = [...this.users];
    await Promise.all(Array.from({ length: VERIFY_PARALLEL }, async (_, w) => {
      for (let u = queue.shift(); u; u = queue.shift()) timelines.set(u, await this.timeline(u, w));
    }));
    return check(this, timelines);
  }

  /** The ring's owners of each user at a time, from the membership after each converged step. */
  owners(at: number, ...users: string[]): string {
    const ring = [...this.rings].reverse().find((r) => r.at <= at) ?? this.rings[0];
    if (!ring) return '?';
    const r = createRing(ring.members, { replicas: this.o.replicas });
    return users.map((u) => `${u}→${r.owners(u).join(',')}`).join(' ');
  }

  /** The last schedule step started before `at`, and whether it had converged by then. */
  stepAt(at: number): string {
    const s = [...this.steps].reverse().find((x) => x.at <= at);
    if (!s) return 'before the churn';
    return `${s.step} ${s.node} ${at <= s.at + s.ms + s.converged_ms || s.error ? 'in progress' : 'done'}`;
  }
}
