// Churn benchmark: client throughput while nodes join, leave, crash and restart, against steady
// state, in one run on one cluster of our own (only ratios within a run mean anything when the
// nodes and the load generator share a machine). Afterwards every timeline is read back and
// checked against the confirmed sends. `node bench/churn.ts --help` for the options.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ImClient, ImError } from '../src/client/client.ts';
import type { Entry, GoawayEvent, MsgEvent, SentReply, WelcomeReply } from '../src/protocol/frames.ts';
import { createRing } from '../src/ring/index.ts';
// Test helpers without ava (node.ts, cluster.ts and invariants.ts import only node built-ins, jose,
// the client and the protocol's types).
import { TestCluster } from '../test/helpers/cluster.ts';
import { TestNode, readAll, token } from '../test/helpers/node.ts';
import { findViolations } from '../test/helpers/invariants.ts';
import type { Confirmed } from '../test/helpers/invariants.ts';

const STEPS = ['join', 'leave', 'kill', 'restart'] as const;
type Step = (typeof STEPS)[number];
const NODE_ARGS = ['--rate', '100000', '--rate-burst', '100000'];
const CONVERGE_MS = 30_000;
const SETTLE_MS = 30_000;
const START_MS = 30_000;
const LEAVE_MS = 30_000;
const LOGIN_MS = 10_000;
const CONNECT_BATCH = 50;
const VERIFY_PARALLEL = 8;
const CPU_SAMPLE_MS = 500;
const OTHER_CORES_WARN = 0.2;

const USAGE = `usage: npm run bench:churn -- [options]     (or: node bench/churn.ts [options])

Starts a cluster of its own (temp folder, ports chosen by the OS, a generated swarm
key, ${NODE_ARGS.join(' ')}; tokens signed with the test secret), then runs U users
in U/2 pairs: user a<i> and b<i> send to each other continuously, each keeping W sends
awaiting 'sent' (the two of a pair start on different nodes). A user whose connection
gets a goaway, drops, or answers 'unavailable' reconnects (to a node the goaway named,
else to another live node of ours), logs in again with 'since' = the last seq it was
pushed, and resends every unconfirmed message with the same cid (sends are idempotent).

Phases, measured in the same run on the same cluster:
  warmup    W s of load, not reported
  steady    S s with no membership change
  churn     the schedule, one step after the other, each waiting until every live node
            is joined and lists exactly the live nodes up on one ring version; the phase
            lasts S s or until the schedule is done, whichever is longer
  recovery  S2 s with no membership change (skip with --recovery 0)
  drain     no new sends; unconfirmed ones are resent until confirmed (at most D s)
Schedule steps (--schedule, comma-separated, in order):
  join      start a new node that joins through every live node
  leave     SIGTERM a live node (graceful: it hands its users over) and wait for its exit
  kill      SIGKILL a live node (then the survivors declare it dead and fail over)
  restart   start the node last left or killed again: same data folder, ports, identity
  Victims are taken in the order bench-2, bench-3, …, bench-1 last, each once while
  others remain. A step may not leave fewer than 2 live nodes.

Per phase: confirmed sends/s ('sent' replies), delivered msgs/s (first push of each
partner message), send→sent latency p50/p99/max (from the first attempt of a cid to
its 'sent', so it includes resends and reconnects), the longest stall (the longest time
in the phase during which one user had sends outstanding and got no 'sent'), users
stalled over 1 s, 'unavailable' errors, other errors, reconnects, failed connection
attempts, goaways, and the cores kept busy by our nodes, by this process and by
everything else (from /proc: other work on the machine skews the ratios, and a warning
says so); and the ratios churn/steady and recovery/steady, with the confirmed sends of
every second.
Verification (test/helpers/invariants.ts, as in the churn tests): every user's timeline
is read with sync from a fresh device; every confirmed send must be in the sender's
timeline with its confirmed mid and seq, and in the recipient's with the same mid; no
send (confirmed or not) may be stored twice in a timeline; sends stored through one
connection must keep their order at the recipient; seqs must be 1..n with no mid twice.

options:
  --nodes N          nodes at the start (4)
  --users U          even number of users (100)
  --window W         sends awaiting 'sent' per user (10)
  --seconds S        steady phase, and the least churn phase (15)
  --recovery S2      recovery phase (S); 0 = none
  --warmup W         load before the steady phase (3)
  --drain D          at most D s to confirm the last sends (30)
  --schedule LIST    churn steps (join,leave,kill,restart)
  --settle           after each step has converged, also wait (at most 30 s) until no
                     node reports re-replication or handoff work in /cluster 'migrations'
                     (replicationBehind 0, no handoffsOut, not copying), so that steps
                     do not race re-replication
  --replicas R       --replicas of the nodes (2)
  --body B           body size in bytes (100)
  --keep             keep the temp folder (node data and logs) even when the run passed;
                     it is always kept when it failed
  --json             print one JSON object with the results (progress goes to stderr)
Exit status: 0 when nothing confirmed was lost, duplicated or reordered, the timelines
are whole, every step succeeded and no node exited on its own; 1 otherwise (also when
the timelines could not be read); 2 on bad options; 130 when interrupted. Every node it
started is killed at the end, on errors and on SIGINT/SIGTERM.
`;

type Opts = {
  nodes: number; users: number; window: number; seconds: number; recovery: number; warmup: number;
  drain: number; schedule: Step[]; settle: boolean; replicas: number; body: number; keep: boolean; json: boolean;
};

function usageError(message: string): never {
  process.stderr.write(`churn: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseOpts(argv: string[]): Opts {
  const names = ['nodes', 'users', 'window', 'seconds', 'recovery', 'warmup', 'drain', 'replicas', 'body'] as const;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
        schedule: { type: 'string' }, settle: { type: 'boolean' }, keep: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    usageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (name: (typeof names)[number], def: number, min: number): number => {
    const raw = values[name] as string | undefined;
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min) usageError(`--${name} must be an integer >= ${min}, got '${raw}'`);
    return Number(raw);
  };
  const seconds = num('seconds', 15, 1);
  const o: Opts = {
    nodes: num('nodes', 4, 1), users: num('users', 100, 2), window: num('window', 10, 1), seconds,
    recovery: num('recovery', seconds, 0), warmup: num('warmup', 3, 0), drain: num('drain', 30, 1),
    replicas: num('replicas', 2, 1), body: num('body', 100, 8), settle: values.settle === true,
    keep: values.keep === true, json: values.json === true,
    schedule: ((values.schedule as string | undefined) ?? STEPS.join(',')).split(',').map((s) => s.trim()).filter(Boolean) as Step[],
  };
  if (o.users % 2) usageError(`--users must be even (users come in pairs), got ${o.users}`);
  let live = o.nodes;
  let down = 0;
  for (const s of o.schedule) {
    if (!STEPS.includes(s)) usageError(`unknown schedule step '${s}' (steps: ${STEPS.join(', ')})`);
    if (s === 'join') live++;
    else if (s === 'restart') {
      if (!down--) usageError('a restart needs an earlier leave or kill');
      live++;
    } else if (--live < 2) usageError(`the schedule would leave fewer than 2 live nodes (at '${s}')`);
    else down++;
  }
  return o;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round1 = (x: number) => Math.round(x * 10) / 10;
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, ko) => {
    timer = setTimeout(() => ko(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function latencySummary(xs: number[]): { p50: number; p99: number; max: number } | null {
  if (!xs.length) return null;
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => round1(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { p50: at(0.5), p99: at(0.99), max: round1(s[s.length - 1]!) };
}

// ---- phases ----

type PhaseName = 'warmup' | 'steady' | 'churn' | 'recovery' | 'drain';

class Phase {
  name: PhaseName;
  start: number;
  end: number | undefined;
  confirmed = 0;
  delivered = 0;
  latencies: number[] = [];
  unavailable = 0;
  errors: Record<string, number> = {};
  reconnects = 0;
  connectFailures = 0;
  goaways = 0;
  /** CPU seconds used in this phase by our nodes and by this process (sampled every CPU_SAMPLE_MS). */
  cpuNodes = 0;
  cpuBench = 0;
  /** CPU seconds the whole machine was busy in this phase (all processes). */
  cpuAll = 0;
  stall = { ms: 0, user: '', at: 0 };
  stallByUser = new Map<string, number>();

  constructor(name: PhaseName, start: number) {
    this.name = name;
    this.start = start;
  }

  /** A stretch [a, b] in which `user` waited for a 'sent', clipped to this phase. */
  noteStall(user: string, a: number, b: number): void {
    const from = Math.max(a, this.start);
    const ms = Math.min(b, this.end ?? b) - from;
    if (ms <= 0) return;
    if (ms > this.stall.ms) this.stall = { ms, user, at: from };
    if (ms > (this.stallByUser.get(user) ?? 0)) this.stallByUser.set(user, ms);
  }
}

// ---- one user: a connection that comes back, a window of sends that are resent until confirmed ----

type Attempt = { t0: number; conn: number; idx: number }; // conn 0: to be (re)sent
type Confirmation = { mid: string; seq: number; at: number; node: string };

class User {
  readonly name: string;
  readonly b: Bench;
  partner!: User;
  url = '';
  node = '';
  c: ImClient | undefined;
  /** The current connection's number (numbers are never reused, so late events of old ones are told apart). */
  conn = 0;
  private numbered = 0;
  private idx = 0;
  private connecting = false;
  private preferred: string[] | undefined;
  next = 0;
  readonly out = new Map<number, Attempt>();
  readonly confirmed = new Map<number, Confirmation>();
  /** counter → [connection, index of the send on it] of the attempt that stored it (a 'sent' without dup). */
  readonly storedBy = new Map<number, [number, number]>();
  readonly received = new Set<number>();
  seqSeen = 0;
  lastProgress = 0;
  failed = 0;

  constructor(name: string, b: Bench) {
    this.name = name;
    this.b = b;
  }

  /** Connects (first to `first`, then anywhere live) until logged in, then sends what is due. */
  async connect(first?: string): Promise<void> {
    if (this.connecting) return;
    this.connecting = true;
    if (first) this.preferred = [first];
    try {
      for (let attempt = 0; !this.b.closing; attempt++) {
        const url = this.pickUrl();
        let c: ImClient | undefined;
        try {
          c = await ImClient.connect(url, { timeoutMs: 2000 });
          const conn = ++this.numbered;
          c.on('close', () => this.drop(conn));
          c.on('event', (f) => {
            if (f.op === 'goaway') this.goaway(conn, f);
          });
          c.on('msg', (m) => this.pushed(m));
          const w: WelcomeReply = await withTimeout(
            c.login({ token: await token(this.name), device: 'bench', since: this.seqSeen }), LOGIN_MS, 'login');
          if (w.seq < this.seqSeen) {
            this.b.anomaly(`${this.name}: welcome at ${w.node} says seq ${w.seq}, but seq ${this.seqSeen} was pushed before`);
            this.seqSeen = w.seq; // those seqs will be given again: take the next pushes from there
          }
          if (this.b.closing) {
            c.close();
            return;
          }
          this.c = c;
          this.conn = conn;
          this.idx = 0;
          this.url = url;
          this.node = w.node;
          break;
        } catch {
          c?.ws.terminate();
          this.b.phase.connectFailures++;
          await sleep(Math.min(1000, 50 * 2 ** attempt));
        }
      }
    } finally {
      this.connecting = false;
    }
    this.pump();
  }

  private pickUrl(): string {
    const pref = this.preferred;
    this.preferred = undefined;
    const all = pref?.length ? pref : this.b.targets.map((n) => n.url);
    const others = all.filter((u) => u !== this.url);
    const pool = others.length ? others : all;
    return pool[Math.floor(Math.random() * pool.length)] ?? this.url;
  }

  /** The connection `conn` is done for (closed, goaway, unavailable): drop it and connect again. */
  drop(conn: number): void {
    if (conn !== this.conn || !this.c) return;
    const c = this.c;
    this.c = undefined;
    c.ws.terminate(); // rejects its outstanding requests now: they are resent on the next connection
    if (this.b.closing) return;
    this.b.phase.reconnects++;
    void this.connect();
  }

  private goaway(conn: number, f: GoawayEvent): void {
    this.b.phase.goaways++;
    if (f.reason !== 'shutdown') this.b.anomaly(`${this.name}: goaway '${f.reason}' from ${this.node}`);
    if (conn === this.conn && f.nodes?.length) this.preferred = f.nodes;
    this.drop(conn);
  }

  private pushed(m: MsgEvent): void {
    this.seqSeen = Math.max(this.seqSeen, m.seq);
    if (m.from !== this.partner.name) return; // the echo of our own send
    const k = Number(m.body.slice(0, m.body.indexOf(' ')));
    if (this.received.has(k)) return;
    this.received.add(k);
    this.b.phase.delivered++;
  }

  /** Sends what is due on the current connection: resends first (in counter order), then new messages. */
  pump(): void {
    const c = this.c;
    if (!c) {
      if (!this.b.closing) void this.connect();
      return;
    }
    for (const [k, a] of this.out) if (a.conn === 0) this.attempt(c, k, a);
    while (this.b.sending && this.out.size < this.b.o.window) {
      if (this.out.size === 0) this.lastProgress = now();
      const k = this.next++;
      const a: Attempt = { t0: now(), conn: 0, idx: 0 };
      this.out.set(k, a);
      this.attempt(c, k, a);
    }
  }

  private attempt(c: ImClient, k: number, a: Attempt): void {
    const conn = this.conn;
    const idx = this.idx++;
    a.conn = conn;
    a.idx = idx;
    const body = `${k} `.padEnd(this.b.o.body, 'x');
    c.request<SentReply>({ op: 'send', to: this.partner.name, cid: `${this.name}-${k}`, body }).then(
      (r) => this.sent(k, conn, idx, r),
      (e: unknown) => this.failed_(k, conn, e),
    );
  }

  private sent(k: number, conn: number, idx: number, r: SentReply): void {
    if (!r.dup) this.storedBy.set(k, [conn, idx]);
    const a = this.out.get(k);
    if (!a) return; // confirmed already, by an earlier attempt
    const t = now();
    this.out.delete(k);
    this.confirmed.set(k, { mid: r.mid, seq: r.seq, at: t, node: this.node });
    this.b.confirm(this, t, t - a.t0);
    this.pump();
  }

  private failed_(k: number, conn: number, e: unknown): void {
    const code = e instanceof ImError ? e.code : 'connection closed';
    const ph = this.b.phase;
    if (code === 'unavailable') ph.unavailable++;
    else if (e instanceof ImError) ph.errors[code] = (ph.errors[code] ?? 0) + 1;
    const a = this.out.get(k);
    if (!a || a.conn !== conn) return; // confirmed, or already resent on a newer connection
    a.conn = 0;
    if (code === 'rate_limited') {
      setTimeout(() => this.pump(), 100);
    } else if (code === 'unavailable' || code === 'connection closed') {
      this.drop(conn);
      this.pump();
    } else {
      this.out.delete(k); // not retryable: counted, not confirmed
      this.failed++;
      this.pump();
    }
  }
}

// ---- the bench: cluster, schedule, load, verification ----

type StepRecord = {
  step: Step; node: string; at: number; ms: number; converged_ms: number; settled_ms?: number; detail: string; error?: string;
};
type Migrations = { replicationBehind?: number; handoffsOut?: unknown[]; copying?: unknown };
type Anomaly = { at: number; text: string };

class Bench {
  readonly o: Opts;
  readonly say: (s: string) => void;
  dir = '';
  cluster: TestCluster | undefined;
  baseArgs: string[] = [];
  /** The nodes clients may be sent to: started, converged, and not being stopped. */
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
    for (const u of this.users) if (u.out.size) this.phase.noteStall(u.name, u.lastProgress, t);
    if (!name) return;
    this.phase = new Phase(name, t);
    this.phases.push(this.phase);
    this.say(`[${this.t(t)}] ${name}`);
  }

  confirm(u: User, t: number, latency: number): void {
    const ph = this.phase;
    ph.confirmed++;
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
    this.targets = [...this.cluster.nodes];
    return version;
  }

  /** Starts a new node joining through every live one (none for the first). */
  private async newNode(): Promise<TestNode> {
    const name = `bench-${++this.started}`;
    const data = join(this.dir, name);
    await mkdir(data);
    const n = new TestNode(data, { name });
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
      this.targets = this.targets.filter((x) => x !== n);
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
    this.targets = this.targets.filter((x) => x !== n);
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
      const rec: StepRecord = { step, node: '', at: t0, ms: 0, converged_ms: 0, detail: '' };
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
        if (step === 'join' || step === 'restart') this.targets.push(n);
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

  async connectUsers(): Promise<void> {
    const run = Math.random().toString(36).slice(2, 7);
    this.users = Array.from({ length: this.o.users }, (_, i) => new User(`c${run}-${i % 2 ? 'b' : 'a'}${i >> 1}`, this));
    for (let i = 0; i < this.users.length; i += 2) {
      this.users[i]!.partner = this.users[i + 1]!;
      this.users[i + 1]!.partner = this.users[i]!;
    }
    // a0 b0 a1 b1 … round-robin over the nodes: the two of a pair start on different nodes.
    for (let i = 0; i < this.users.length; i += CONNECT_BATCH) {
      await Promise.all(this.users.slice(i, i + CONNECT_BATCH).map((u, j) => u.connect(this.targets[(i + j) % this.targets.length]!.url)));
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
    for (const u of this.users) {
      const c = u.c;
      u.c = undefined;
      c?.ws.terminate();
    }
    await Promise.all((this.cluster?.nodes ?? []).map((n) => {
      if (n.proc) this.expected.add(n.proc);
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

type Loss = { cid: string; missing_at: string; from: string; to: string; confirmed: string; phase: string; step: string; gateway: string; owners: string };
/** Lost messages grouped by where they are missing, the phase and the step they were confirmed in. */
type LossGroup = { missing_at: string; phase: string; step: string; count: number; users: string[]; first: string; last: string };
type Verification = {
  timelines: number; entries: number; confirmed: number; unconfirmed_end: number;
  lost_recipient: number; lost_sender: number; duplicated: number; reordered: number; seq_mismatch: number;
  seq_gaps: number; mid_repeats: number; loss_groups: LossGroup[]; losses: Loss[]; problems: string[];
};

/** A confirmed send, as the shared checker takes it, with when and through which node it was confirmed. */
type BenchSend = Confirmed & { at: number; node: string };

/**
 * Checks the timelines read back against the confirmed sends with the checker the churn tests
 * use (test/helpers/invariants.ts), and sorts what it finds into this report's counts; losses
 * are also grouped by where they are missing, phase and step, with the first few in detail.
 * A send's order on its connection is known when its 'sent' was not a dup (`storedBy`).
 */
function check(b: Bench, timelines: Map<User, Entry[]>): Verification {
  const v: Verification = {
    timelines: timelines.size, entries: 0, confirmed: 0, unconfirmed_end: 0, lost_recipient: 0, lost_sender: 0,
    duplicated: 0, reordered: 0, seq_mismatch: 0, seq_gaps: 0, mid_repeats: 0, loss_groups: [], losses: [], problems: [],
  };
  const groups = new Map<string, LossGroup>();
  const problem = (s: string) => {
    if (v.problems.length < 20) v.problems.push(s);
  };
  const phaseAt = (at: number) => [...b.phases].reverse().find((p) => p.start <= at)?.name ?? '?';
  const byName = new Map<string, Entry[]>();
  const sends: BenchSend[] = [];
  for (const [u, tl] of timelines) {
    byName.set(u.name, tl);
    v.entries += tl.length;
    v.confirmed += u.confirmed.size;
    v.unconfirmed_end += u.out.size;
    for (const [k, c] of u.confirmed) {
      const by = u.storedBy.get(k);
      sends.push({
        from: u.name, to: u.partner.name, mid: c.mid, seq: c.seq, cid: `${u.name}-${k}`,
        ...(by ? { conn: by[0], idx: by[1] } : {}), at: c.at, node: c.node,
      });
    }
  }
  const lose = (m: BenchSend, where: string) => {
    const phase = phaseAt(m.at);
    const step = b.stepAt(m.at);
    const key = `${where} ${phase} ${step}`;
    const g = groups.get(key) ?? { missing_at: where, phase, step, count: 0, users: [], first: b.t(m.at), last: '' };
    groups.set(key, g);
    g.count++;
    g.last = b.t(m.at);
    if (!g.users.includes(m.from)) g.users.push(m.from);
    if (v.losses.length >= 10) return;
    v.losses.push({
      cid: m.cid, missing_at: where, from: m.from, to: m.to, confirmed: b.t(m.at), phase,
      step, gateway: m.node, owners: b.owners(m.at, m.from, m.to),
    });
  };
  // A message's body starts with its sender's counter: `<sender>-<counter>` is its cid.
  const cidOf = (e: Entry) => `${e.from}-${e.body.slice(0, e.body.indexOf(' '))}`;
  for (const x of findViolations(byName, sends, { cidOf })) {
    switch (x.kind) {
      case 'lost':
        if (x.role === 'sender') v.lost_sender++;
        else v.lost_recipient++;
        lose(x.send!, x.role!);
        continue;
      case 'mismatch':
        v.seq_mismatch++;
        break;
      case 'duplicate':
        v.duplicated += x.count;
        break;
      case 'reordered':
      case 'group_order': // no groups here
        v.reordered++;
        break;
      case 'gaps':
        v.seq_gaps++;
        break;
      case 'mid_twice':
        v.mid_repeats += x.count;
        break;
    }
    problem(x.text);
  }
  v.loss_groups = [...groups.values()];
  return v;
}

// ---- report ----

function phaseResult(p: Phase) {
  const s = ((p.end ?? now()) - p.start) / 1000;
  const stalled = [...p.stallByUser.values()].filter((ms) => ms > 1000).length;
  return {
    seconds: round1(s),
    confirmed: p.confirmed,
    confirmed_per_s: Math.round(p.confirmed / s),
    delivered: p.delivered,
    delivered_per_s: Math.round(p.delivered / s),
    sent_latency_ms: latencySummary(p.latencies),
    longest_stall_ms: Math.round(p.stall.ms),
    longest_stall_user: p.stall.user || null,
    users_stalled_over_1s: stalled,
    unavailable: p.unavailable,
    errors: p.errors,
    reconnects: p.reconnects,
    connect_failures: p.connectFailures,
    goaways: p.goaways,
    /** Cores kept busy on average by our nodes, by the load generator and by any other process. */
    cores_nodes: Math.round((p.cpuNodes / s) * 100) / 100,
    cores_bench: Math.round((p.cpuBench / s) * 100) / 100,
    cores_other: Math.max(0, Math.round(((p.cpuAll - p.cpuNodes - p.cpuBench) / s) * 100) / 100),
  };
}
type PhaseResult = ReturnType<typeof phaseResult>;

function table(results: Record<string, PhaseResult>, ratios: Record<string, Record<string, number | null>>): string[] {
  const names = Object.keys(results);
  const cols = [...names, ...Object.keys(ratios)];
  const lat = (r: PhaseResult, k: 'p50' | 'p99' | 'max') => (r.sent_latency_ms ? String(r.sent_latency_ms[k]) : 'n/a');
  const rows: [string, (r: PhaseResult) => string, string | undefined][] = [
    ['seconds', (r) => r.seconds.toFixed(1), undefined],
    ['confirmed sends/s', (r) => String(r.confirmed_per_s), 'confirmed_per_s'],
    ['delivered msgs/s', (r) => String(r.delivered_per_s), 'delivered_per_s'],
    ['send→sent p50 ms', (r) => lat(r, 'p50'), 'p50'],
    ['send→sent p99 ms', (r) => lat(r, 'p99'), 'p99'],
    ['send→sent max ms', (r) => lat(r, 'max'), 'max'],
    ['longest stall ms', (r) => String(r.longest_stall_ms), 'longest_stall'],
    ['users stalled > 1 s', (r) => String(r.users_stalled_over_1s), undefined],
    ['unavailable errors', (r) => String(r.unavailable), undefined],
    ['other errors', (r) => Object.entries(r.errors).map(([k, n]) => `${k}:${n}`).join(',') || '0', undefined],
    ['reconnects', (r) => String(r.reconnects), undefined],
    ['failed connects', (r) => String(r.connect_failures), undefined],
    ['goaways', (r) => String(r.goaways), undefined],
    ['cores busy: nodes', (r) => r.cores_nodes.toFixed(2), undefined],
    ['cores busy: bench', (r) => r.cores_bench.toFixed(2), undefined],
    ['cores busy: other', (r) => r.cores_other.toFixed(2), undefined],
  ];
  const cells = rows.map(([label, f, key]) => [label, ...names.map((n) => f(results[n]!)),
    ...Object.values(ratios).map((q) => (key && q[key] != null ? q[key]!.toFixed(2) : ''))]);
  const header = ['', ...cols];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  return [header, ...cells].map((r) => '  ' + r.map((x, i) => (i ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  '));
}

function ratio(a: PhaseResult | undefined, s: PhaseResult | undefined): Record<string, number | null> {
  const q = (x: number | undefined, y: number | undefined) => (x !== undefined && y ? Math.round((x / y) * 100) / 100 : null);
  return {
    confirmed_per_s: q(a?.confirmed_per_s, s?.confirmed_per_s), delivered_per_s: q(a?.delivered_per_s, s?.delivered_per_s),
    p50: q(a?.sent_latency_ms?.p50, s?.sent_latency_ms?.p50), p99: q(a?.sent_latency_ms?.p99, s?.sent_latency_ms?.p99),
    max: q(a?.sent_latency_ms?.max, s?.sent_latency_ms?.max), longest_stall: q(a?.longest_stall_ms, s?.longest_stall_ms),
  };
}

type LogProblem = { phase: string; msg: string; count: number; nodes: string[]; first: string };

/** Warnings and errors (pino level >= 40, and anything on stderr) in the nodes' logs, by phase and message. */
function nodeProblems(b: Bench): LogProblem[] {
  const byKey = new Map<string, LogProblem>();
  for (const n of b.cluster?.nodes ?? []) {
    for (const line of n.log) {
      let j: { level?: number; time?: number; msg?: string; err?: unknown } | undefined;
      try {
        j = JSON.parse(line) as typeof j;
      } catch {
        j = undefined;
      }
      if (j && (j.level ?? 0) < 40) continue;
      const at = j?.time;
      const phase = at === undefined ? 'stderr' : ([...b.phases].reverse().find((p) => p.start <= at)?.name ?? 'startup');
      const msg = (j ? `${j.msg ?? ''}${j.err ? ` (${JSON.stringify(j.err).slice(0, 200)})` : ''}` : line.trim()).slice(0, 300);
      const key = `${phase}\n${j?.msg ?? msg}`;
      const p = byKey.get(key) ?? { phase, msg, count: 0, nodes: [], first: at === undefined ? '' : b.t(at) };
      byKey.set(key, p);
      p.count++;
      if (!p.nodes.includes(n.opts.name!)) p.nodes.push(n.opts.name!);
    }
  }
  return [...byKey.values()];
}

function report(b: Bench, v: Verification | undefined, command: string, machine: string) {
  const o = b.o;
  const results: Record<string, PhaseResult> = {};
  for (const p of b.phases) if (p.name !== 'warmup' && p.name !== 'drain') results[p.name] = phaseResult(p);
  const ratios: Record<string, Record<string, number | null>> = { 'churn/steady': ratio(results.churn, results.steady) };
  if (results.recovery) ratios['recovery/steady'] = ratio(results.recovery, results.steady);
  const problems = nodeProblems(b);
  const failedSends = b.users.reduce((s, u) => s + u.failed, 0);
  const bad = v ? v.lost_recipient + v.lost_sender + v.duplicated + v.reordered + v.seq_mismatch + v.seq_gaps + v.mid_repeats : 0;
  const steady = b.phases.find((p) => p.name === 'steady')!;
  const result = {
    command, machine, node: process.version, ok: v !== undefined && bad === 0 && b.failures.length === 0,
    nodes: o.nodes, users: o.users, window: o.window, body: o.body, replicas: o.replicas,
    seconds: o.seconds, recovery: o.recovery, schedule: o.schedule, settle: o.settle,
    steps: b.steps.map((s) => ({ ...s, at: round1((s.at - steady.start) / 1000) })),
    phases: results, ratios,
    confirmed_per_second: Array.from(b.perSecond, (x) => x ?? 0),
    verification: v ?? null, failed_sends: failedSends,
    anomalies: b.anomalies.map((a) => `${b.t(a.at)} ${a.text}`),
    node_warnings: problems, failures: b.failures, dir: b.dir,
  };

  const lines = ['', ...table(results, ratios)];
  const bounds = b.phases.filter((p) => p.name !== 'warmup').map((p) => `${p.name} at ${Math.round((p.start - steady.start) / 1000)} s`);
  lines.push(`\n  confirmed per second from the start of the steady phase (${bounds.join(', ')}):`, `  ${result.confirmed_per_second.join(' ')}`);
  if (v) {
    lines.push(
      `\n  verification: ${v.timelines} timelines, ${v.entries} entries; ${v.confirmed} confirmed sends (${v.unconfirmed_end} unconfirmed at the end, ${failedSends} failed)`,
      `  lost at the recipient ${v.lost_recipient}, lost at the sender ${v.lost_sender}, duplicated ${v.duplicated}, reordered ${v.reordered}, ` +
        `seq mismatch ${v.seq_mismatch}, timelines with seq gaps ${v.seq_gaps}, repeated mids ${v.mid_repeats}`,
    );
    for (const g of v.loss_groups) {
      lines.push(`    ${g.count} missing at the ${g.missing_at}, confirmed ${g.first} to ${g.last} in ${g.phase} (${g.step}), from ${g.users.length} senders: ${g.users.slice(0, 6).join(' ')}${g.users.length > 6 ? ' …' : ''}`);
    }
    for (const l of v.losses) lines.push(`    lost ${l.cid} (${l.from}→${l.to}) at the ${l.missing_at}: confirmed ${l.confirmed} in ${l.phase} (${l.step}) via ${l.gateway}; owners then ${l.owners}`);
    for (const p of v.problems) lines.push(`    ${p}`);
  }
  for (const a of result.anomalies.slice(0, 10)) lines.push(`  anomaly: ${a}`);
  if (result.anomalies.length > 10) lines.push(`  … ${result.anomalies.length - 10} more anomalies (see --json)`);
  if (problems.length) lines.push(`  node log warnings and errors (phase, count, nodes, first at):`);
  for (const p of problems.slice(0, 15)) lines.push(`    ${p.phase} ×${p.count} ${p.nodes.join(',')} ${p.first}: ${p.msg}`);
  if (problems.length > 15) lines.push(`    … ${problems.length - 15} more kinds (see --json)`);
  const busy = Object.entries(results).filter(([, r]) => r.cores_other > OTHER_CORES_WARN);
  if (busy.length) {
    lines.push(`  WARNING: other processes kept ${busy.map(([n, r]) => `${r.cores_other} cores busy in ${n}`).join(', ')}: the ratios are skewed`);
  }
  for (const f of b.failures) lines.push(`  FAILED: ${f}`);
  return { result, lines };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseOpts(argv);
  const out = o.json ? process.stderr : process.stdout;
  const say = (s: string) => out.write(s + '\n');
  const cpu = cpus();
  const machine = `${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`;
  const command = `node bench/churn.ts ${argv.join(' ')}`.trim();
  say(`command:  ${command}`);
  say(`machine:  ${machine}; node ${process.version}`);

  const b = new Bench(o, say);
  process.on('exit', () => b.killAllNow());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void b.close().finally(() => {
      process.stderr.write(`churn: interrupted${b.dir ? `; node data and logs kept in ${b.dir}` : ''}\n`);
      if (b.dir) void writeLogs(b).finally(() => process.exit(130));
      else process.exit(130);
    }));
  }

  let ok = false;
  try {
    const t0 = now();
    const version = await b.startCluster();
    say(`cluster:  ${o.nodes} nodes of our own, R=${o.replicas}, ring ${version} after ${((now() - t0) / 1000).toFixed(1)} s; data and logs in ${b.dir}`);
    const sampler = setInterval(() => b.sampleCpu(), CPU_SAMPLE_MS);
    sampler.unref();
    b.enter('warmup');
    await b.connectUsers();
    const split = b.users.filter((u, i) => i % 2 === 0 && u.node !== u.partner.node).length;
    say(`load:     ${o.users} users in ${o.users / 2} pairs (${split} split across nodes), window ${o.window}, body ${o.body} B; schedule ${o.schedule.join(', ') || '(none)'}${o.settle ? ', settling after each step' : ''}`);
    b.start();
    await sleep(o.warmup * 1000);
    b.enter('steady');
    await sleep(o.seconds * 1000);
    b.enter('churn');
    await Promise.all([b.runSchedule(), sleep(o.seconds * 1000)]);
    if (o.recovery) {
      b.enter('recovery');
      await sleep(o.recovery * 1000);
    }
    b.enter('drain');
    const open = await b.drain();
    b.enter();
    clearInterval(sampler);
    if (open) b.failures.push(`${open} sends still unconfirmed ${o.drain} s after the load stopped`);

    b.closing = true;
    for (const u of b.users) u.c?.close();
    say(`[${b.t()}] reading back ${b.users.length} timelines`);
    let v: Verification | undefined;
    try {
      v = await b.verify();
    } catch (e) {
      b.failures.push(`verification: ${errorText(e)}`);
    }
    const { result, lines } = report(b, v, command, machine);
    ok = result.ok;
    for (const l of lines) say(l);
    if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  } catch (e) {
    say(`churn: ${errorText(e)}`);
  } finally {
    await b.close();
    if (b.dir) {
      if (ok && !o.keep) await rm(b.dir, { recursive: true, force: true });
      else {
        await writeLogs(b);
        say(`node data and logs kept in ${b.dir}`);
      }
    }
  }
  return ok ? 0 : 1;
}

/** Each node's log lines (all its lives) into <dir>/<name>.log. */
async function writeLogs(b: Bench): Promise<void> {
  await Promise.all((b.cluster?.nodes ?? []).map((n) => writeFile(join(b.dir, `${n.opts.name}.log`), n.log.join('\n') + '\n')));
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`churn: ${errorText(e)}\n`);
    process.exit(1);
  },
);
