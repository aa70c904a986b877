// A multi-host test bed: every node in its own Linux network namespace with addresses of its own,
// peers joined by two bridges and a trunk, faults made by taking links down. Needs root and
// iproute2; the machine's own network is never touched beyond one veth per node for clients.
//
// Topology of a bed (slot s, chosen per bed so that beds of parallel test files never collide):
//
//   namespace imnet-s-sw ("switch"):  bridge brA ── trA ═ trunk ═ trB ── bridge brB
//                                       │ p1 p2 (side A)                │ p3 p4 p5 (side B)
//   namespace imnet-s-n<i> (node i):  peer0 10.77.0.<i>/24   (peer network, behind a bridge port p<i>)
//                                     cli0  10.78.s.<4i-2>/30 (client network, veth to the root
//                                           namespace's imb<s>n<i> at 10.78.s.<4i-3>; never faulted)
//
// Node i runs `ip netns exec imnet-s-n<i> node src/node/main.ts --host <cli0> --port 7001
// --p2p-host <peer0> --p2p-port 9001 --announce <peer0> --public-url ws://<cli0>:7001/ws
// --psk-file … --join <every node started before it>` in secure mode (test/helpers/node.ts's
// secret), so the test process (root namespace) reaches every node's client port whatever the
// peer network does.
//
// API:
//   if (!(await netnsAvailable())) … (netnsWhyNot() says why)
//   const bed = await createBed({ nodes: 5, sideA: [1, 2], args: ['--replicas', '2'] });
//   bed.nodes            TestNode[] in order: bed.nodes[0] is n1 (url, http, p2p, login(), …)
//   bed.node(i)          node i (1-based, as in the names n1..nN and the addresses)
//   bed.hosts            per node (0-based like nodes): { i, name, ns, peerIp, clientIp, side }
//   bed.cluster          a TestCluster over the bed's nodes: converged(), view(n), nameOn(n, prefix)
//   bed.isolate(i) / bed.heal(i)       node i's peer link down / up (on the switch side)
//   bed.split() / bed.join()           the trunk down / up: side A | side B
//   bed.flap(i | 'trunk', times, ms)   down ms, up ms, `times` times
//   bed.kill(i) / bed.start(i)         SIGKILL node i / start it again (same data, addresses, ports)
//   bed.faults           [{ at: epoch ms, op, target }] every fault in order, when it took effect
//   bed.namespaces()     namespaces of this bed that exist now
//   bed.destroy()        kills the nodes, deletes the namespaces (and so every veth); idempotent
// Call test/helpers/node.ts's cleanup() as well (after.always): it removes the data folders.
//
// Clean-up when things go wrong: each bed writes /tmp/imnet/<slot> ("<pid> <token>") before it
// creates anything, and starts a detached watcher that deletes the bed's namespaces (killing what
// runs in them) once the test process is gone, also after a SIGKILL. createBed also removes the
// namespaces of slots whose process is dead. scripts/netns-cluster.sh uses slot 0, never reaped here.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { TestCluster } from './cluster.ts';
import { onCleanup, startNode } from './node.ts';
import type { TestNode } from './node.ts';

export const STATE_DIR = '/tmp/imnet';
export const NS_PREFIX = 'imnet-';
export const CLIENT_PORT = 7001;
export const P2P_PORT = 9001;
const MAX_NODES = 60;
const MAX_SLOT = 250;

export type BedOpts = {
  nodes: number;
  /** Nodes (1-based) on bridge A; the rest are on bridge B. Default: the first half, rounded down. */
  sideA?: number[];
  /** More node flags, for every node. */
  args?: string[];
  env?: Record<string, string>;
  /** Wait until every node lists every node up on one ring (default true). */
  converge?: boolean;
};

export type BedHost = { i: number; name: string; ns: string; peerIp: string; clientIp: string; side: 'A' | 'B' };
export type Fault = { at: number; op: 'isolate' | 'heal' | 'split' | 'join' | 'kill' | 'start'; target: number | 'trunk' };

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((ok, ko) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) ko(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else ok(stdout);
    });
  });
}
const ip = (...args: string[]): Promise<string> => run('ip', args);

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Names of the namespaces that exist now and start with `prefix`. */
export async function listNamespaces(prefix = NS_PREFIX): Promise<string[]> {
  const out = await ip('netns', 'list');
  return out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(prefix));
}

const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Kills whatever runs in each namespace and waits (up to 5 s) until it is gone, while the links
 * are still there: a socket of a process that dies after its links are gone keeps retrying its
 * FIN, and with it the namespace and its root-side veth, for minutes. Then deletes the root ends
 * of the client links (`imb<slot>n*`) and the namespaces, the switch last. Synchronous, for exit handlers. */
function deleteNamespacesSync(names: string[]): void {
  const pids: number[] = [];
  for (const ns of names) {
    try {
      const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      pids.push(...out.split('\n').filter(Boolean).map(Number));
    } catch {
      // no such namespace
    }
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const end = Date.now() + 5000; pids.some((p) => pidAlive(p)) && Date.now() < end;) sleepSync(20);
  const slots = new Set(names.map((n) => /^imnet-(\d+)-/.exec(n)?.[1]).filter((x) => x !== undefined));
  try {
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const m of links.matchAll(/^\d+: (imb(\d+)n\d+)[@:]/gm)) {
      if (slots.has(m[2]!)) execFileSync('ip', ['link', 'del', m[1]!], { stdio: 'ignore' });
    }
  } catch {
    // a link went with its namespace meanwhile
  }
  for (const ns of [...names].sort((a, b) => Number(a.endsWith('-sw')) - Number(b.endsWith('-sw')))) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // no such namespace
    }
  }
}

function listNamespacesSync(prefix: string): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

let probe: Promise<string | undefined> | undefined;

/** Why namespaces cannot be used here (not root, no `ip`, no permission, no veth or bridge), or undefined. */
export function netnsWhyNot(): Promise<string | undefined> {
  probe ??= (async () => {
    if (process.platform !== 'linux') return `not Linux (${process.platform})`;
    if (process.getuid?.() !== 0) return 'not root';
    const ns = `${NS_PREFIX}probe-${process.pid}-${randomBytes(3).toString('hex')}`;
    try {
      await ip('-V');
    } catch (e) {
      return `no iproute2 (${(e as Error).message})`;
    }
    try {
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'add', 'name', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1');
      await ip('-n', ns, 'link', 'add', 'name', 'probe2', 'type', 'bridge');
      return undefined;
    } catch (e) {
      return (e as Error).message;
    } finally {
      deleteNamespacesSync([ns]);
    }
  })();
  return probe;
}

export async function netnsAvailable(): Promise<boolean> {
  return (await netnsWhyNot()) === undefined;
}

/** Deletes the namespaces of beds whose process is gone (killed runs), and their state files. */
async function reapLeftovers(): Promise<void> {
  const owners = new Map<number, boolean>();
  for (const f of await readdir(STATE_DIR).catch(() => [] as string[])) {
    const slot = Number(f);
    if (!Number.isInteger(slot) || slot < 1) continue;
    const pid = Number((await readFile(join(STATE_DIR, f), 'utf8').catch(() => '')).split(' ')[0]);
    owners.set(slot, pid > 0 && pidAlive(pid));
  }
  const stale = new Set<number>();
  for (const ns of await listNamespaces()) {
    const slot = Number(/^imnet-(\d+)-/.exec(ns)?.[1]);
    // Slot 0 is the operator script's. A namespace with no state file is an orphan.
    if (slot >= 1 && owners.get(slot) !== true) stale.add(slot);
  }
  for (const [slot, alive] of owners) if (!alive) stale.add(slot);
  for (const slot of stale) {
    deleteNamespacesSync(await listNamespaces(`${NS_PREFIX}${slot}-`));
    await unlink(join(STATE_DIR, String(slot))).catch(() => undefined);
  }
}

/** Takes a free slot: its state file is created exclusively ("<pid> <token>"). */
async function claimSlot(token: string): Promise<number> {
  await mkdir(STATE_DIR, { recursive: true });
  await reapLeftovers();
  const first = process.pid % MAX_SLOT;
  for (let k = 0; k < MAX_SLOT; k++) {
    const slot = 1 + ((first + k) % MAX_SLOT);
    if ((await listNamespaces(`${NS_PREFIX}${slot}-`)).length) continue;
    try {
      await writeFile(join(STATE_DIR, String(slot)), `${process.pid} ${token}\n`, { flag: 'wx' });
      return slot;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new Error(`no free test-bed slot in ${STATE_DIR}`);
}

// Runs detached: once the test process is gone (even SIGKILLed), removes the bed if still its.
const WATCHER = `
P=$1; S=$2; T=$3; F=$4
while kill -0 "$P" 2>/dev/null; do sleep 1; done
[ "$(cat "$F" 2>/dev/null)" = "$P $T" ] || exit 0
NS=$(ip netns list | awk '{print $1}' | grep "^imnet-$S-")
PIDS=$(for ns in $NS; do ip netns pids "$ns"; done)
[ -n "$PIDS" ] && kill -9 $PIDS 2>/dev/null
for k in 1 2 3 4 5 6 7 8 9 10; do
  A=; for p in $PIDS; do kill -0 "$p" 2>/dev/null && A=1; done
  [ -z "$A" ] && break; sleep 0.5
done
for l in $(ip -o link show | sed -n "s/^[0-9]*: \\(imb$S""n[0-9]*\\)[@:].*/\\1/p"); do ip link del "$l"; done
for ns in $(echo "$NS" | grep -v -- '-sw$') $(echo "$NS" | grep -- '-sw$'); do ip netns del "$ns"; done
rm -f "$F"`;

export class Bed {
  readonly slot: number;
  readonly prefix: string;
  readonly nodes: TestNode[] = [];
  readonly hosts: BedHost[] = [];
  readonly faults: Fault[] = [];
  readonly cluster: TestCluster;
  readonly #stateFile: string;
  readonly #sw: string;
  #watcher: number | undefined;
  #destroyed = false;
  readonly #onExit = (): void => this.#destroySync();
  readonly #onSignal = (sig: NodeJS.Signals): void => {
    this.#destroySync();
    process.kill(process.pid, sig);
  };

  constructor(slot: number, psk: string, args: string[]) {
    this.slot = slot;
    this.prefix = `${NS_PREFIX}${slot}-`;
    this.#sw = `${this.prefix}sw`;
    this.#stateFile = join(STATE_DIR, String(slot));
    this.cluster = new TestCluster(psk, args);
    this.cluster.nodes = this.nodes;
  }

  /** Node i, 1-based. */
  node(i: number): TestNode {
    const n = this.nodes[i - 1];
    if (!n) throw new Error(`the bed has no node ${i}`);
    return n;
  }

  host(i: number): BedHost {
    const h = this.hosts[i - 1];
    if (!h) throw new Error(`the bed has no node ${i}`);
    return h;
  }

  namespaces(): Promise<string[]> {
    return listNamespaces(this.prefix);
  }

  async isolate(i: number): Promise<void> {
    await ip('-n', this.#sw, 'link', 'set', `p${this.host(i).i}`, 'down');
    this.faults.push({ at: Date.now(), op: 'isolate', target: i });
  }

  async heal(i: number): Promise<void> {
    await ip('-n', this.#sw, 'link', 'set', `p${this.host(i).i}`, 'up');
    this.faults.push({ at: Date.now(), op: 'heal', target: i });
  }

  async split(): Promise<void> {
    await ip('-n', this.#sw, 'link', 'set', 'trA', 'down');
    await ip('-n', this.#sw, 'link', 'set', 'trB', 'down');
    this.faults.push({ at: Date.now(), op: 'split', target: 'trunk' });
  }

  async join(): Promise<void> {
    await ip('-n', this.#sw, 'link', 'set', 'trA', 'up');
    await ip('-n', this.#sw, 'link', 'set', 'trB', 'up');
    this.faults.push({ at: Date.now(), op: 'join', target: 'trunk' });
  }

  /** `times` times: the link down for `ms`, then up for `ms`. Ends up. */
  async flap(target: number | 'trunk', times: number, ms: number): Promise<void> {
    const pause = () => new Promise((r) => setTimeout(r, ms));
    for (let k = 0; k < times; k++) {
      await (target === 'trunk' ? this.split() : this.isolate(target));
      await pause();
      await (target === 'trunk' ? this.join() : this.heal(target));
      await pause();
    }
  }

  async kill(i: number): Promise<void> {
    await this.node(i).kill();
    this.faults.push({ at: Date.now(), op: 'kill', target: i });
  }

  /** Starts node i again (after kill or stop) on its data, addresses and ports; resolves once it listens. */
  async start(i: number): Promise<void> {
    await this.node(i).start();
    this.faults.push({ at: Date.now(), op: 'start', target: i });
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    await Promise.all(this.nodes.map((n) => n.kill()));
    this.#destroySync();
  }

  /** @internal Builds the topology (createBed). */
  async build(count: number, sideA: Set<number>): Promise<void> {
    const token = (await readFile(this.#stateFile, 'utf8')).trim().split(' ')[1]!;
    const watcher = spawn('sh', ['-c', WATCHER, 'imnet-watch', String(process.pid), String(this.slot), token, this.#stateFile], { detached: true, stdio: 'ignore' });
    watcher.unref();
    this.#watcher = watcher.pid;
    process.once('exit', this.#onExit);
    if (isMainThread) for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, this.#onSignal);

    const sw = this.#sw;
    await ip('netns', 'add', sw);
    await ip('-n', sw, 'link', 'set', 'lo', 'up');
    for (const br of ['brA', 'brB']) {
      await ip('-n', sw, 'link', 'add', 'name', br, 'type', 'bridge');
      await ip('-n', sw, 'link', 'set', br, 'up');
    }
    await ip('-n', sw, 'link', 'add', 'name', 'trA', 'type', 'veth', 'peer', 'name', 'trB');
    for (const [end, br] of [['trA', 'brA'], ['trB', 'brB']] as const) {
      await ip('-n', sw, 'link', 'set', end, 'master', br);
      await ip('-n', sw, 'link', 'set', end, 'up');
    }
    for (let i = 1; i <= count; i++) {
      const ns = `${this.prefix}n${i}`;
      const side = sideA.has(i) ? 'A' : 'B';
      const base = 4 * (i - 1);
      const host: BedHost = { i, name: `n${i}`, ns, peerIp: `10.77.0.${i}`, clientIp: `10.78.${this.slot}.${base + 2}`, side };
      this.hosts.push(host);
      const rootEnd = `imb${this.slot}n${i}`;
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', sw, 'link', 'add', 'name', `p${i}`, 'type', 'veth', 'peer', 'name', 'peer0', 'netns', ns);
      await ip('-n', sw, 'link', 'set', `p${i}`, 'master', `br${side}`);
      await ip('-n', sw, 'link', 'set', `p${i}`, 'up');
      await ip('-n', ns, 'addr', 'add', `${host.peerIp}/24`, 'dev', 'peer0');
      await ip('-n', ns, 'link', 'set', 'peer0', 'up');
      await ip('link', 'add', 'name', rootEnd, 'type', 'veth', 'peer', 'name', 'cli0', 'netns', ns);
      await ip('addr', 'add', `10.78.${this.slot}.${base + 1}/30`, 'dev', rootEnd);
      await ip('link', 'set', rootEnd, 'up');
      await ip('-n', ns, 'addr', 'add', `${host.clientIp}/30`, 'dev', 'cli0');
      await ip('-n', ns, 'link', 'set', 'cli0', 'up');
    }
  }

  /** @internal Starts node i (createBed), joining through every live node. */
  async startNew(i: number, args: string[], env: Record<string, string> | undefined): Promise<void> {
    const h = this.host(i);
    const seeds = this.cluster.live().flatMap((n) => ['--join', n.p2p]);
    const n = await startNode({
      name: h.name, netns: h.ns, httpHost: h.clientIp, ...(env ? { env } : {}),
      args: [
        '--host', h.clientIp, '--port', String(CLIENT_PORT), '--public-url', `ws://${h.clientIp}:${CLIENT_PORT}/ws`,
        '--p2p-host', h.peerIp, '--p2p-port', String(P2P_PORT), '--announce', h.peerIp,
        '--psk-file', this.cluster.psk, ...args, ...seeds,
      ],
    });
    this.nodes.push(n);
  }

  #destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    process.off('exit', this.#onExit);
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, this.#onSignal);
    for (const n of this.nodes) {
      if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
    }
    deleteNamespacesSync(listNamespacesSync(this.prefix));
    try {
      execFileSync('rm', ['-f', this.#stateFile]);
    } catch {
      // already gone
    }
    if (this.#watcher) {
      try {
        process.kill(this.#watcher, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}

/** Creates the namespaces, bridges and links, starts the nodes one by one (n1 first, each joining
 * through those before it) and, unless told not to, waits until the ring has converged. */
export async function createBed(opts: BedOpts): Promise<Bed> {
  const why = await netnsWhyNot();
  if (why) throw new Error(`network namespaces are not available: ${why}`);
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > MAX_NODES) throw new Error(`nodes: 1 to ${MAX_NODES}`);
  const sideA = new Set(opts.sideA ?? Array.from({ length: Math.floor(opts.nodes / 2) }, (_, k) => k + 1));
  const dir = await mkdtemp(join(tmpdir(), 'im-psk-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const psk = join(dir, 'swarm.key');
  await writeFile(psk, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`, { mode: 0o600 });
  const slot = await claimSlot(randomBytes(8).toString('hex'));
  const bed = new Bed(slot, psk, opts.args ?? []);
  try {
    await bed.build(opts.nodes, sideA);
    for (let i = 1; i <= opts.nodes; i++) await bed.startNew(i, opts.args ?? [], opts.env);
    if (opts.converge !== false) await bed.cluster.converged(60_000);
  } catch (e) {
    await bed.destroy();
    throw e;
  }
  return bed;
}
