// Fuzzes the peer boundary of a real node over libp2p with the cluster's swarm key: from a keyed
// non-member (a fresh identity), and from a member (a killed node's identity key loaded into the
// fuzzing host, which keeps that member alive with heartbeats). Grammar-based requests and one-way
// messages of every type, mutated, in envelopes that are sometimes wrong; random frames, length
// prefixes past the limit, truncated frames, streams opened and reset. The target must never
// exit, never log an error, and keep serving a bystander.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey, Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import * as lp from 'it-length-prefixed';
import type { Libp2p } from 'libp2p';
import WebSocket from 'ws';
import { createHost } from '../../src/transport/host.ts';
import { PEER_PROTOCOL } from '../../src/transport/envelope.ts';
import { underAttack } from '../helpers/attack.ts';
import { startCluster } from '../helpers/cluster.ts';
import { badLogLines, Counts, fuzzRun } from '../helpers/fuzz.ts';
import type { FuzzRun } from '../helpers/fuzz.ts';
import { cleanup, startNode, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { peerCase } from './peer-frames.ts';
import type { PeerCtx } from './peer-frames.ts';

test.after.always(cleanup);

const FILE = 'test/fuzz/peer.test.ts';
const IN_FLIGHT = 64;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Env = { k?: string; id?: number; m?: { t?: string } };

/** The fuzzing host: a libp2p node with the swarm key that answers what the target asks it
 * (ping → alive, anything else → an error) and counts the answers to its own requests. */
class FuzzHost {
  host!: Libp2p;
  answered = new Set<number>();
  duplicates: number[] = [];
  /** Connections closed (by either side): a stream flood may make libp2p drop the connection. */
  connCloses = 0;
  reopened = 0;
  served = 0;
  #streams = new Set<Stream>();

  static async create(key: PrivateKey, psk: Uint8Array): Promise<FuzzHost> {
    const f = new FuzzHost();
    f.host = await createHost({ privateKey: key, host: '127.0.0.1', port: 0, psk, pingIntervalMs: 1000 });
    await f.host.handle(PEER_PROTOCOL, (stream) => f.read(stream), { maxInboundStreams: 1024, maxOutboundStreams: 1024 });
    f.host.addEventListener('connection:close', () => f.connCloses++);
    await f.host.start();
    return f;
  }

  read(stream: Stream): void {
    this.#streams.add(stream);
    void (async () => {
      try {
        for await (const data of lp.decode(stream, { maxDataLength: 16 * 1024 * 1024 })) {
          let envs: Env[];
          try {
            envs = JSON.parse(Buffer.from(data.subarray()).toString());
          } catch {
            continue;
          }
          for (const e of Array.isArray(envs) ? envs : []) {
            if ((e.k === 'r' || e.k === 'e') && typeof e.id === 'number') {
              if (this.answered.has(e.id)) this.duplicates.push(e.id);
              this.answered.add(e.id);
            }
            if (e.k === 'q' && typeof e.id === 'number') {
              this.served++;
              const reply = e.m?.t === 'ping' ? `{"k":"r","id":${e.id},"m":{"t":"done","value":true}}` : `{"k":"e","id":${e.id},"message":"the fuzzer serves nothing"}`;
              if (stream.status === 'open') stream.send(lp.encode.single(Buffer.from(`[${reply}]`)));
            }
          }
        }
      } catch {
        // aborted by either side
      } finally {
        this.#streams.delete(stream);
      }
    })();
  }

  /** A new stream; opened again once if the first attempt fails (a busy target may reset a
   * stream while negotiating it, e.g. right after a flood of streams). */
  async open(addr: string, again = true): Promise<Stream> {
    let s: Stream;
    try {
      s = await this.host.dialProtocol(multiaddr(addr), PEER_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
    } catch (e) {
      if (!again) throw e;
      this.reopened++;
      return this.open(addr, false);
    }
    this.read(s);
    return s;
  }

  async stop(): Promise<void> {
    await this.host.stop();
  }
}

/** Raw WebSocket connections logged in as the fuzzer's own users: where pushes and relays land. */
async function victims(node: TestNode, users: string[]): Promise<WebSocket[]> {
  const out: WebSocket[] = [];
  for (const u of users) {
    const ws = new WebSocket(node.url);
    ws.on('error', () => undefined);
    const welcome = new Promise<void>((ok) => ws.on('message', (d) => d.toString().includes('"welcome"') && ok()));
    await new Promise((ok) => ws.once('open', ok));
    ws.send(JSON.stringify({ op: 'login', id: 1, token: await token(u), device: 'd1' }));
    await welcome;
    out.push(ws);
  }
  return out;
}

/** Sends cases to `addr` until the budget is spent. Frames the target must accept go on one
 * stream, whose every request must be answered exactly once; frames that abort a stream go on
 * another, opened again as needed. */
async function fuzzPeer(run: FuzzRun, f: FuzzHost, addr: string, ctx: PeerCtx, stop: () => boolean, mustAnswer: boolean): Promise<Outcome> {
  const counts = new Counts();
  let id = 0;
  const nextId = () => ++id;
  let good = await f.open(addr);
  let goodSince = f.connCloses;
  let reconnects = 0;
  let bad = await f.open(addr);
  const expected = new Map<number, string>();
  const deadline = Date.now() + run.budgetMs;
  const unanswered = () => {
    let n = 0;
    for (const i of expected.keys()) if (!f.answered.has(i)) n++;
    return n;
  };
  const failures: string[] = [];
  for (let n = 0; Date.now() < deadline && !stop() && failures.length === 0; n++) {
    try {
      await one(n);
    } catch (e) {
      failures.push(`case #${n}: ${(e as Error).message}`);
    }
  }
  async function one(n: number): Promise<void> {
    const c = peerCase(run.rng(n), ctx, nextId);
    counts.add(c.kind.includes(':') ? (c.kind.includes('+') ? 'several-envelopes' : c.kind.split(':')[0]!) : c.kind);
    if ('frame' in c) {
      let s = bad;
      if (c.valid) {
        if (good.status !== 'open') {
          if (f.connCloses === goodSince) {
            failures.push(`the target closed the stream of valid frames (before case #${n}) with the connection still open`);
            return;
          }
          // The connection went down (a stream flood of ours, case 'open-reset'): its requests with it.
          reconnects++;
          for (const i of expected.keys()) if (!f.answered.has(i)) expected.delete(i);
          good = await f.open(addr);
          goodSince = f.connCloses;
        }
        s = good;
        for (const i of c.ids) expected.set(i, `#${n} ${c.kind}`);
      } else if (bad.status !== 'open' || bad.writeStatus !== 'writable') s = bad = await f.open(addr);
      if (!s.send(c.frame)) await Promise.race([new Promise((ok) => s.addEventListener('drain', ok, { once: true })), sleep(1000)]);
    } else if ('raw' in c) {
      const s = await f.open(addr);
      if (s.status === 'open') s.send(c.raw);
      if (c.then === 'reset') s.abort(new Error('fuzz reset'));
      else if (c.then === 'close') await s.close().catch(() => undefined);
      else setTimeout(() => s.abort(new Error('fuzz done')), 500);
    } else {
      const opened = await Promise.allSettled(Array.from({ length: c.streams }, () => f.open(addr, false)));
      for (const o of opened) if (o.status === 'fulfilled') o.value.abort(new Error('fuzz reset'));
    }
    const waitUntil = Date.now() + 10_000;
    while (unanswered() > IN_FLIGHT && Date.now() < waitUntil) await sleep(5);
    if (n % 16 === 0) await sleep(0);
  }
  await until(() => unanswered() === 0, 'answers', 30_000, 50).catch(() => undefined);
  const missing = [...expected].filter(([i]) => !f.answered.has(i));
  // As a member, the fuzzer refuses every request the target makes of it, replication included:
  // a write that needs it as a replica waits (its caller would time out), so there only
  // "never twice" is checked.
  if (missing.length && mustAnswer) failures.push(`${missing.length} requests never answered, e.g. ${missing.slice(0, 5).map(([i, k]) => `${i} (${k})`).join(', ')}`);
  if (f.duplicates.length) failures.push(`requests answered twice: ${f.duplicates.slice(0, 5).join(', ')}`);
  return { counts, requests: expected.size, failures, reconnects, unanswered: missing.length };
}

type Outcome = { counts: Counts; requests: number; failures: string[]; reconnects: number; unanswered: number };

function report(t: import('ava').ExecutionContext, run: FuzzRun, target: TestNode, what: string, r: Outcome, f: FuzzHost, p99: number, exit: string | undefined): void {
  const replay = run.replay(FILE);
  t.log(`seed ${run.seed} (${what}): ${r.counts}; ${r.requests} requests on the stream of valid frames, ${r.unanswered} unanswered, none twice; ${r.reconnects} reconnections; the target asked the fuzzer ${f.served} times; bystander p99 ${p99} ms`);
  t.is(exit, undefined, `the target must not exit. Replay: ${replay}`);
  t.deepEqual(r.failures, [], `replay: ${replay}`);
  t.deepEqual(badLogLines(target.log).slice(0, 10), [], `the target logged errors. Replay: ${replay}`);
  t.true(r.counts.total >= 10, `only ${r.counts.total} cases ran`);
  t.true(f.answered.size > 0, 'the target answered requests');
}

test('peer frames from a keyed non-member never crash the node', async (t) => {
  const run = fuzzRun(20253, 3500);
  const node = await startNode({ name: 'n1' });
  let exit: string | undefined;
  node.proc!.once('exit', (code, signal) => {
    exit = `node exited (code ${code}, signal ${signal})`;
    t.log(exit, node.log.slice(-3).join('\n'));
  });
  const alice = (await node.login('by-alice')).c;
  const bob = (await node.login('by-bob')).c;
  const vs = await victims(node, ['fz0', 'fz1']); // connections c3 and c4
  const psk = await readFile(join(node.data, 'swarm.key'));
  const f = await FuzzHost.create(await generateKeyPair('Ed25519'), psk);
  let r!: Awaited<ReturnType<typeof fuzzPeer>>;
  const figures = await underAttack(t, 'fuzz: peer frames from a keyed non-member', { target: node, from: alice, to: 'by-bob', reader: bob }, async () => {
    r = await fuzzPeer(run, f, node.p2p, { self: 'fzn0', conns: ['c3', 'c4', 'fzc0'] }, () => exit !== undefined, true);
  });
  await f.stop();
  for (const v of vs) v.terminate();
  report(t, run, node, 'keyed non-member', r, f, figures.bystanderP99, exit);
});

test('peer frames from a member (its identity key, its heartbeats) never crash the node', async (t) => {
  const run = fuzzRun(20254, 3500);
  const cluster = await startCluster(3);
  const [n1, n2] = cluster.nodes as [TestNode, TestNode, TestNode];
  const ring = cluster.ring();
  // The bystander's users live (home and replica) on n1 and n3 only: n2 is the fuzzer's.
  const away = (prefix: string, home: string) => {
    for (let i = 0; ; i++) {
      const o = ring.owners(`${prefix}${i}`);
      if (o[0] === home && !o.includes('n2')) return `${prefix}${i}`;
    }
  };
  const [a, b] = [away('by-alice', 'n1'), away('by-bob', 'n3')];
  let exit: string | undefined;
  n1.proc!.once('exit', (code, signal) => {
    exit = `n1 exited (code ${code}, signal ${signal})`;
    t.log(exit, n1.log.slice(-3).join('\n'));
  });
  const alice = (await n1.login(a)).c;
  const bob = (await n1.login(b)).c;
  const vs = await victims(n1, [away('fzv', 'n1'), away('fzw', 'n3')]); // c3 and c4, homed away from n2 too
  // Become n2: kill it, and load its identity into the fuzzing host.
  const key = privateKeyFromProtobuf(await readFile(join(n2.data, 'peer.key')));
  const psk = await readFile(cluster.psk);
  const addrs = cluster.nodes.map((n) => n.p2p);
  await n2.kill();
  const f = await FuzzHost.create(key, psk);
  // Heartbeats as n2 would gossip them, to n1 and n3, so that n2 stays a live member.
  const members = (await f.host.dialProtocol(multiaddr(addrs[0]!), PEER_PROTOCOL)) as Stream;
  members.send(lp.encode.single(Buffer.from('[{"k":"q","id":1000000000,"m":{"t":"members"}}]')));
  const entries = await new Promise<{ name: string; heartbeat: number }[]>((ok, ko) => {
    void (async () => {
      for await (const d of lp.decode(members)) {
        const envs = JSON.parse(Buffer.from(d.subarray()).toString()) as { k: string; m?: { value?: unknown } }[];
        for (const e of envs) if (e.k === 'r') return ok(e.m!.value as { name: string; heartbeat: number }[]);
      }
      ko(new Error('no member table'));
    })();
  });
  const me = entries.find((e) => e.name === 'n2')!;
  t.truthy(me, 'n1 lists n2');
  let beat = me.heartbeat + 1000;
  let beating = true;
  const gossipTo = await Promise.all([addrs[0]!, addrs[2]!].map((ad) => f.open(ad)));
  const heart = (async () => {
    while (beating) {
      const frame = lp.encode.single(Buffer.from(JSON.stringify([{ k: 'm', m: { t: 'gossip', entries: [{ ...me, heartbeat: beat++ }] } }])));
      for (const s of gossipTo) if (s.status === 'open') s.send(frame);
      await sleep(200);
    }
  })();
  await until(async () => (await cluster.view(n1))?.members.find((m) => m.name === 'n2')?.state === 'up', 'n1 to see the fuzzer as n2, up', 10_000);

  let r!: Awaited<ReturnType<typeof fuzzPeer>>;
  const figures = await underAttack(t, 'fuzz: peer frames from a member', { target: n1, from: alice, to: b, reader: bob }, async () => {
    r = await fuzzPeer(run, f, addrs[0]!, { self: 'n2', conns: ['c3', 'c4', 'fzc0'] }, () => exit !== undefined, false);
  });
  const n2State = (await cluster.view(n1))?.members.find((m) => m.name === 'n2')?.state;
  beating = false;
  await heart;
  await f.stop();
  for (const v of vs) v.terminate();
  t.log(`n2 (the fuzzer) was '${n2State}' on n1 at the end`);
  report(t, run, n1, 'member n2', r, f, figures.bystanderP99, exit);
});
