// Membership with real node processes: a join, a crash (SIGKILL), a restart on old data, a
// graceful leave, and strangers on the peer port (without the cluster key, and with it but
// sending garbage). Times to convergence, detection and leave are measured and logged.
//
// Two clusters, one after the other (every test is serial): A lives through join → crash →
// restart; B through graceful leave → hostile peers. B's first test kills A's nodes.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Stream } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import * as lp from 'it-length-prefixed';
import { createLibp2p } from 'libp2p';
import type { Libp2p } from 'libp2p';
import { pino } from 'pino';
import { cleanup, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { ClusterView, TestCluster } from '../helpers/cluster.ts';
import { createRing } from '../../src/ring/index.ts';
import { createPeerNet, generateSwarmKey, PEER_PROTOCOL } from '../../src/transport/index.ts';
import type { PeerNet } from '../../src/transport/index.ts';
import type { GoawayEvent, MsgEvent } from '../../src/protocol/frames.ts';

const PRESENCE_TIMEOUT_MS = 3000;
const ARGS = ['--presence-timeout', String(PRESENCE_TIMEOUT_MS)];
// Suspect after 2 s (at once on a dropped connection) + confirm 3 s + gossip, with room for a busy machine.
const DETECTION_BOUND_MS = 10_000;
const JOIN_BOUND_MS = 10_000;
// A leaver gossips `leaving` before it exits: the others should not need the failure detector.
const LEAVE_BOUND_MS = 2_000;

const silent = pino({ level: 'silent' });
const nets: PeerNet[] = [];
const hosts: Libp2p[] = [];
const dirs: string[] = [];

test.after.always(async () => {
  await Promise.all(nets.map((n) => n.stop().catch(() => undefined)));
  await Promise.all(hosts.map((h) => Promise.resolve(h.stop()).catch(() => undefined)));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await cleanup();
});

const name = (n: TestNode): string => n.opts.name!;
const names = (ns: TestNode[]): string[] => ns.map(name).sort();
const ms = (t0: number): number => Math.round(performance.now() - t0);

/** A user name whose home, on the ring of exactly these members, is `home`. */
function homedOn(members: string[], home: string, prefix: string): string {
  const ring = createRing(members);
  for (let i = 0; ; i++) if (ring.owner(`${prefix}${i}`) === home) return `${prefix}${i}`;
}

async function views(c: TestCluster, ns: TestNode[]): Promise<(ClusterView & { peer?: string })[] | undefined> {
  const vs = await Promise.all(ns.map((n) => c.view(n)));
  return vs.every((v) => v !== undefined) ? (vs as (ClusterView & { peer?: string })[]) : undefined;
}

/**
 * Every one of `survivors` lists `gone` in one of `states` and has exactly the survivors on its
 * ring, at the version those members give: the version, or undefined while they disagree.
 */
async function agreeGone(c: TestCluster, survivors: TestNode[], gone: string, states: string[]): Promise<string | undefined> {
  const expected = createRing(names(survivors)).version;
  const vs = await views(c, survivors);
  if (!vs) return undefined;
  for (const v of vs) {
    const st = v.members.find((m) => m.name === gone)?.state;
    if (st === undefined || !states.includes(st)) return undefined;
    if (JSON.stringify(v.ring.members) !== JSON.stringify(names(survivors)) || v.ring.version !== expected) return undefined;
  }
  return expected;
}

async function healthz(t: ExecutionContext, ns: TestNode[]): Promise<void> {
  for (const n of ns) {
    const r = await n.get('/healthz');
    t.is(r.status, 200, `${name(n)} /healthz: ${r.text}`);
    t.like(JSON.parse(r.text), { ok: true, node: name(n) });
  }
}

/** from (logged in on `via`) sends to `to` (logged in on `at`); `to` gets the push and finds it by sync. */
async function chat(t: ExecutionContext, via: TestNode, from: string, at: TestNode, to: string, cid: string): Promise<void> {
  const { c: snd } = await via.login(from, `d-${cid}`);
  const { c: rcv } = await at.login(to, `d-${cid}`);
  const got = rcv.waitFor<MsgEvent>((f) => f.op === 'msg' && (f as MsgEvent).from === from && (f as MsgEvent).body === cid);
  const sent = await snd.send(to, cid, cid);
  t.like(await got, { mid: sent.mid, from, to, body: cid });
  t.true((await rcv.sync(0, 1000)).msgs.some((m) => m.mid === sent.mid), `${to} finds ${cid} by sync`);
  snd.close();
  rcv.close();
}

function metricValue(text: string, metric: string): number {
  const m = new RegExp(`^${metric}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

// ---------------------------------------------------------------- cluster A: join, crash, restart

let a: TestCluster;
let peerBeforeKill = '';

test.serial('a fourth node joins: every node agrees on the new ring, and its users are reachable at once', async (t) => {
  a = await startCluster(3, ARGS);
  const [n1, n2, n3] = a.nodes as [TestNode, TestNode, TestNode];
  const before = await a.converged();
  t.is(before, createRing(['n1', 'n2', 'n3']).version);

  const four = ['n1', 'n2', 'n3', 'n4'];
  const alice = homedOn(four, 'n1', 'join-a');
  const bob = homedOn(four, 'n4', 'join-b'); // homed elsewhere before the join
  // bob's session predates the join: his gateway (n3) must register it with his new home.
  const { c: bc } = await n3.login(bob);
  const { c: w } = await n1.login(alice);

  const t0 = performance.now();
  const n4 = await a.add({ wait: false });
  const started = ms(t0);
  const after = await a.converged(JOIN_BOUND_MS + 5000);
  const took = ms(t0);
  t.log(`join: process start → listening ${started} ms, → all 4 agree ${took} ms`);
  // The bound is the join's, from the newcomer listening to every node agreeing: the process start
  // before it (Node loading and compiling the node's modules) took 4.9 s in one run and 9.1 s in
  // another on the same 2 cores, with other test files running beside it.
  t.true(took - started < JOIN_BOUND_MS, `converged ${took - started} ms after the newcomer listened`);
  t.not(after, before, 'the ring version changed');
  t.is(after, createRing(four).version);
  const vs = (await views(a, a.nodes))!;
  for (const v of vs) {
    t.deepEqual(v.members.map((m) => [m.name, m.state]), four.map((x) => [x, 'up']), `${v.node}'s member table`);
    t.deepEqual(v.ring.members, four);
  }
  t.is(vs[3]!.members.find((m) => m.name === 'n4')!.url, n4.url);
  await healthz(t, a.nodes);

  // Right after convergence: a client on n1 messages a user homed on the new node.
  const sent = await w.send(bob, 'j1', 'hello new home');
  t.like(sent, { seq: 1 });
  t.like((await bc.sync(0)).msgs, [{ mid: sent.mid, from: alice, to: bob, seq: 1 }]);
  // bob's home is n4 now, and n4 learns he is online: the n3 gateway re-registers his session
  // on the ring change (a push in that window may be lost; sync, above, is the repair).
  const t1 = performance.now();
  await until(async () => (await w.presence([bob])).users[bob]?.online === true, 'bob online at his new home', 3000);
  t.log(`join: bob's session known at his new home ${ms(t1)} ms after the first send`);
  const n4view = (await a.view(n4))! as ClusterView & { online?: number };
  t.true((n4view.online ?? 0) >= 1, `n4 holds presence of its users: ${JSON.stringify(n4view.online)}`);
  const got = bc.waitFor<MsgEvent>((f) => f.op === 'msg');
  const again = await w.send(bob, 'j2', 'pushed by the new home');
  t.like(await got, { mid: again.mid, from: alice, to: bob, seq: 2 });
  // and sync through another gateway reads it from n4
  const { c: b2 } = await n2.login(bob, 'd2');
  t.deepEqual((await b2.sync(0)).msgs.map((m) => m.mid), [sent.mid, again.mid]);
  for (const c of [bc, w, b2]) c.close();
});

test.serial('a killed node is declared dead by all survivors within the detection bound; they keep serving', async (t) => {
  t.truthy(a, 'cluster A is up');
  const [n1, n2, n3, n4] = a.nodes as [TestNode, TestNode, TestNode, TestNode];
  await a.converged();
  const four = names(a.nodes);
  const survivors = [n1, n3, n4];
  const surv = names(survivors);
  peerBeforeKill = ((await a.view(n2)) as ClusterView & { peer: string }).peer;
  for (const v of (await views(a, survivors))!) t.is(v.members.find((m) => m.name === 'n2')!.peer, peerBeforeKill);

  // A session on the doomed gateway, of a user homed on a survivor (so his home must expire it).
  const ghost = homedOn(four, 'n3', 'ghost');
  const deadHomed = homedOn(four, 'n2', 'orphan'); // homed on n2 before the crash
  const { c: g } = await n2.login(ghost);
  const { c: watcher } = await n1.login(homedOn(four, 'n4', 'pw'));
  await until(async () => (await watcher.presence([ghost])).users[ghost]?.online === true, 'ghost online', 2000);

  const t0 = performance.now();
  await n2.kill();
  const killed = ms(t0);
  const [detected, offline] = await Promise.all([
    (async () => {
      const v = await until(() => agreeGone(a, survivors, 'n2', ['dead']), 'survivors to agree n2 is dead', DETECTION_BOUND_MS + 10_000, 50);
      return { v, ms: ms(t0) };
    })(),
    (async () => {
      await until(async () => (await watcher.presence([ghost])).users[ghost]?.online === false, 'ghost offline', PRESENCE_TIMEOUT_MS + 10_000, 50);
      return ms(t0);
    })(),
  ]);
  t.log(`crash: SIGKILL took ${killed} ms; survivors agree n2 dead after ${detected.ms} ms; ghost offline after ${offline} ms (presence timeout ${PRESENCE_TIMEOUT_MS})`);
  t.true(detected.ms < DETECTION_BOUND_MS, `detected after ${detected.ms} ms`);
  t.is(detected.v, createRing(surv).version);
  // Sessions of a crashed gateway are renewed every timeout/3; allow one renew period past the timeout.
  t.true(offline < PRESENCE_TIMEOUT_MS + PRESENCE_TIMEOUT_MS / 3 + 500, `offline after ${offline} ms`);
  const pres = await watcher.presence([ghost]);
  t.is(typeof (pres.users[ghost] as { last_seen?: number }).last_seen, 'number');
  await g.closedWith(2000); // the dead gateway's client saw its connection drop

  // converged() also holds: every live node lists exactly the live nodes up.
  t.is(await a.converged(), detected.v!);
  await healthz(t, survivors);
  // Chat between survivors' users, each pair across gateways.
  await chat(t, n1, homedOn(surv, 'n3', 'k-a'), n4, homedOn(surv, 'n1', 'k-b'), 'after-kill-1');
  await chat(t, n3, homedOn(surv, 'n4', 'k-c'), n1, homedOn(surv, 'n4', 'k-d'), 'after-kill-2');
  // Writes for a user the dead node was home to are accepted again (docs/CLUSTER.md, invariant 7: within 10 s of the crash).
  const { c: s } = await n4.login(homedOn(surv, 'n1', 'k-e'));
  const sent = await s.send(deadHomed, 'orphan-1', 'to a user whose home died');
  const acceptedAt = ms(t0);
  t.log(`crash: a write for a user homed on the dead node accepted ${acceptedAt} ms after the kill`);
  t.true(acceptedAt < 10_000);
  const { c: o } = await n3.login(deadHomed);
  t.deepEqual((await o.sync(0)).msgs.map((m) => m.mid), [sent.mid]);
  for (const c of [watcher, s, o]) c.close();
});

test.serial('a node restarted on its old data keeps its peer id and rejoins', async (t) => {
  t.truthy(peerBeforeKill, 'n2 was killed by the previous test');
  const n2 = a.nodes[1]!;
  t.is(n2.proc?.signalCode, 'SIGKILL');
  const t0 = performance.now();
  await n2.start(n2.port);
  const v = await a.converged(JOIN_BOUND_MS + 5000);
  const took = ms(t0);
  t.log(`restart: n2 back on its data, all 4 agree after ${took} ms`);
  t.true(took < JOIN_BOUND_MS, `rejoined after ${took} ms`);
  t.is(v, createRing(['n1', 'n2', 'n3', 'n4']).version);
  const vs = (await views(a, a.nodes))!;
  t.is(vs[1]!.peer, peerBeforeKill, 'same peer id as before the kill');
  for (const x of vs) t.is(x.members.find((m) => m.name === 'n2')!.peer, peerBeforeKill, `${x.node} knows n2 by its old peer id`);
  await healthz(t, a.nodes);
  const all = names(a.nodes);
  await chat(t, a.nodes[0]!, homedOn(all, 'n3', 'r-a'), a.nodes[2]!, homedOn(all, 'n2', 'r-b'), 'after-restart');

  // Killed and restarted at once, before anyone declared it dead: it comes back the same way.
  const t1 = performance.now();
  await n2.kill();
  await n2.start(n2.port);
  const v2 = await a.converged(JOIN_BOUND_MS + 5000);
  const quick = ms(t1);
  t.log(`restart: killed and restarted at once, all 4 agree after ${quick} ms`);
  t.true(quick < JOIN_BOUND_MS, `rejoined after ${quick} ms`);
  t.is(v2, v);
  t.is(((await a.view(n2)) as ClusterView & { peer: string }).peer, peerBeforeKill);
  await chat(t, a.nodes[3]!, homedOn(all, 'n1', 'r-c'), n2, homedOn(all, 'n2', 'r-d'), 'after-quick-restart');
});

/** How many times this node has seen a member die (from /metrics). */
async function deaths(n: TestNode): Promise<number> {
  const m = await n.get('/metrics');
  return Number(/im_membership_events_total\{type="member:died",node="[^"]+"\} (\d+)/.exec(m.text)?.[1] ?? 0);
}

test.serial('a node whose event loop stalls for over a second is not thrown out', async (t) => {
  const n3 = a.nodes[2]!;
  const others = a.nodes.filter((n) => n !== n3);
  const before = await a.converged();
  const died = await Promise.all(others.map(deaths));
  t.true(died[0]! >= 1, 'n1 counted the earlier crash (the metric is read)');
  // SIGSTOP freezes the whole process (event loop, heartbeats, pings) like a long GC or a busy loop.
  n3.proc!.kill('SIGSTOP');
  const t0 = performance.now();
  const seen = new Set<string>();
  try {
    while (performance.now() - t0 < 1500) {
      for (const v of await Promise.all(others.map((n) => a.view(n)))) {
        seen.add(v!.ring.version);
        t.not(v!.members.find((m) => m.name === 'n3')!.state, 'dead');
      }
    }
  } finally {
    n3.proc!.kill('SIGCONT');
  }
  t.deepEqual([...seen], [before], 'the ring never changed while n3 was frozen');
  t.is(await a.converged(), before);
  t.deepEqual(await Promise.all(others.map(deaths)), died, 'no member:died event anywhere');
});

test.serial('a node that cannot hear a majority declares nobody dead and gives no keys to itself', async (t) => {
  const [n1, ...frozen] = a.live() as [TestNode, ...TestNode[]];
  t.true(frozen.length >= 2);
  const before = await a.converged();
  const died = await deaths(n1);
  // All the others frozen: to n1 this looks the same as n1 being the one cut off.
  for (const n of frozen) n.proc!.kill('SIGSTOP');
  try {
    const want = frozen.map((n) => n.opts.name).sort();
    const suspects = (x: ClusterView) => x.members.filter((m) => m.state === 'suspect').map((m) => m.name).sort();
    // Lost as soon as half of the others are suspect; then all of them are.
    const v = await until(async () => {
      const x = (await a.view(n1)) as (ClusterView & { majority?: boolean }) | undefined;
      return x && x.majority === false && JSON.stringify(suspects(x)) === JSON.stringify(want) ? x : undefined;
    }, 'n1 to suspect every frozen node and see it has lost the majority', 10_000, 100);
    t.deepEqual(suspects(v!), want);
    // Watched past suspect + confirm (3 s by default) and then some: nobody dead, the ring unchanged.
    const t0 = performance.now();
    while (performance.now() - t0 < 4000) {
      const later = await a.view(n1);
      t.is(later!.ring.version, before);
      t.false(later!.members.some((m) => m.state === 'dead'));
    }
  } finally {
    for (const n of frozen) n.proc!.kill('SIGCONT');
  }
  t.is(await a.converged(), before);
  t.is(await deaths(n1), died, 'no member:died event on n1');
  t.true(n1.log.some((l) => l.includes('cannot hear a majority')));
});

// ---------------------------------------------------------------- cluster B: leave, strangers

let b: TestCluster;

test.serial('a graceful leave: goaway names the others, exit 0, the others drop it at once', async (t) => {
  if (a) for (const n of a.nodes) await n.kill(); // at most one cluster at a time
  b = await startCluster(3, ARGS);
  const [n1, n2, n3] = b.nodes as [TestNode, TestNode, TestNode];
  const all = names(b.nodes);
  const { c: c1 } = await n3.login(homedOn(all, 'n1', 'lv-a'));
  const { c: c2 } = await n3.login(homedOn(all, 'n3', 'lv-b'));
  const goaways = [c1, c2].map((c) => c.waitFor<GoawayEvent>((f) => f.op === 'goaway', 10_000));
  const closes = [c1, c2].map((c) => c.closedWith(10_000));
  const leaverHomed = homedOn(all, 'n3', 'lv-c');

  const t0 = performance.now();
  const exit = n3.stop().then((code) => ({ code, ms: ms(t0) }));
  // While it drains, the leaver answers /healthz with 503 (docs/PROTOCOL.md, section 11).
  const draining = until(() => n3.get('/healthz').then((r) => r.status === 503, () => false), 'n3 /healthz 503 while draining', 5000, 10);
  const dropped = await until(() => agreeGone(b, [n1, n2], 'n3', ['leaving', 'dead']), 'n1 and n2 to drop n3', 10_000, 20);
  const droppedMs = ms(t0);
  await draining;
  const { code, ms: exitMs } = await exit;
  t.log(`leave: SIGTERM → n1 and n2 drop n3 from the ring ${droppedMs} ms; process exited (${code}) after ${exitMs} ms`);
  t.is(code, 0, 'exit code');
  t.true(droppedMs < LEAVE_BOUND_MS, `dropped after ${droppedMs} ms`);
  t.is(dropped, createRing(['n1', 'n2']).version);
  const others = [n1.url, n2.url].sort();
  for (const g of goaways) {
    const f = await g;
    t.is(f.reason, 'shutdown');
    t.deepEqual([...(f.nodes ?? [])].sort(), others);
  }
  await Promise.all(closes);
  t.is(await b.converged(), dropped!);
  await healthz(t, [n1, n2]);
  const two = names([n1, n2]);
  await chat(t, n1, homedOn(two, 'n2', 'lv-d'), n2, homedOn(two, 'n1', 'lv-e'), 'after-leave');
  // A user the leaver was home to can be written to at once.
  const { c } = await n2.login(homedOn(two, 'n1', 'lv-f'));
  await c.send(leaverHomed, 'lv-1', 'after its home left');
  c.close();

  // Bring the membership back to three for the next test: a fresh n4.
  await b.add();
});

test.serial('strangers on the peer port: no key, no connection; with the key, garbage is refused and counted', async (t) => {
  t.truthy(b, 'cluster B is up');
  const live = b.live();
  t.is(live.length, 3);
  await b.converged();
  const version = (await b.view(live[0]!))!.ring.version;

  // 1. Without the cluster key: every dial fails (pnet handshake), quickly.
  const wrong = await createPeerNet({ dataDir: await tempDir(), port: 0, psk: generateSwarmKey(), dialTimeoutMs: 2000 }, { log: silent });
  nets.push(wrong);
  for (const n of live) {
    const t0 = performance.now();
    const err = await t.throwsAsync(wrong.dial(n.p2p));
    t.true(['PeerGoneError', 'PeerTimeoutError'].includes(err!.name), `${name(n)}: ${err!.name}: ${err!.message}`);
    t.true(ms(t0) < 3000, `${name(n)} refused after ${ms(t0)} ms`);
  }

  // 2. With the key: a peer that is no member sends garbage to every node.
  const psk = await readFile(b.psk);
  const evil = await createPeerNet({ dataDir: await tempDir(), port: 0, psk }, { log: silent });
  nets.push(evil);
  const invalidOneWay = [
    { t: 'no-such-message', x: 1 },
    { t: 'gossip', entries: 'junk' },
    { t: 'push', conn: 'c1', frame: 'not a frame' },
    { t: 'push', conn: 'c1', frame: { op: 'msg', seq: 'one' } },
    { t: 'unwatch_all', watcher: { gateway: 'bad gateway!', conn: 'c1' } },
  ];
  const badRequests = [
    { t: 'call', key: 'x', rv: 'v', hops: 0, call: { fn: 'send', from: 'bad id!' } },
    { t: 'call', key: 'x', rv: 'v', hops: -1, call: { fn: 'sync', user: 'x', after: 0, limit: 1 } },
    { t: 'call', key: 'x', rv: 'v', hops: 0, call: { fn: 'no-such-fn' } },
    { t: 'deliver', rv: 'v', items: [{ user: 'x' }] },
    { t: 'register', sessions: 'all of them' },
    { t: 'no-such-request' },
  ];
  for (const n of live) {
    const peer = await evil.dial(n.p2p);
    for (const m of invalidOneWay) evil.send(peer, m);
    // Gossip with malformed entries only: parsed, entries ignored, nobody joins.
    evil.send(peer, { t: 'gossip', entries: [1, 'x', null, { name: 'ghost', peer: 'p', addrs: [], url: '', incarnation: -1, heartbeat: 0, status: 'alive' }] });
    // A push to a connection that does not exist: ignored.
    evil.send(peer, { t: 'push', conn: 'c999999', frame: { op: 'pong', ts: 1 } });
    for (const req of badRequests) {
      const r = await evil.request(peer, req);
      t.is(r.t, 'fail', `${name(n)} ${JSON.stringify(req)} → ${JSON.stringify(r)}`);
      t.is(r.code, 'bad_request', `${name(n)} ${JSON.stringify(req)} → ${JSON.stringify(r)}`);
    }
    // Well-formed, but a stranger is not a member: refused (see test/adversarial/peers.test.ts).
    t.like(await evil.request(peer, { t: 'renew', gateway: 'n1', conns: [] }), { t: 'fail', code: 'unavailable' });
    t.like(await evil.request(peer, { t: 'register', sessions: [{ user: 'u', device: 'd', gateway: 'n1', conn: 'c1' }] }), { t: 'fail', code: 'unavailable' });
    // A join with malformed entries: answered with the table, nothing added.
    const j = await evil.request(peer, { t: 'join', entries: [{ name: 'evil' }, 42] });
    t.is(j.t, 'done');
    t.false((j.value as { name: string }[]).some((e) => e.name === 'evil' || e.name === 'ghost'));
    // Still answered, but a stranger is told it is no member: its ping vouches for nothing.
    t.like(await evil.request(peer, { t: 'ping' }), { t: 'done', value: false });
  }
  const expected = invalidOneWay.length + badRequests.length;
  for (const n of live) {
    const count = await until(async () => {
      const v = metricValue((await n.get('/metrics')).text, 'im_peer_invalid_frames_total');
      return v >= expected ? v : 0;
    }, `${name(n)} to count the invalid peer frames`, 5000, 50);
    t.log(`${name(n)}: im_peer_invalid_frames_total ${count}`);
    t.true(count >= expected);
    t.true(n.log.some((l) => l.includes('invalid peer message dropped') && l.includes(evil.peerId)), `${name(n)} logs the dropped message`);
    t.true(n.log.some((l) => l.includes('invalid peer request refused') && l.includes(evil.peerId)), `${name(n)} logs the refused request`);
  }

  // 3. Raw junk on the peer protocol: the stream is aborted, the node stays up.
  const raw = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk }),
  });
  hosts.push(raw);
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  const junk: Uint8Array[] = [
    new Uint8Array(64).fill(0xff), // not length-prefixed
    lp.encode.single(enc('{"k":"m", oops')).subarray(),
    lp.encode.single(enc('[{"k":"z"}]')).subarray(),
    lp.encode.single(new Uint8Array(5 * 1024 * 1024), { maxDataLength: 8 * 1024 * 1024 }).subarray(0, 64), // announces a frame over the 4 MiB limit
  ];
  for (const n of live) {
    for (const bytes of junk) {
      const stream: Stream = await raw.dialProtocol(multiaddr(n.p2p), PEER_PROTOCOL, { signal: AbortSignal.timeout(3000) });
      stream.send(bytes);
      await until(() => stream.status !== 'open', `${name(n)} to abort a junk stream`, 5000, 20);
    }
    t.true(n.log.some((l) => l.includes('invalid frame from peer') && l.includes(raw.peerId.toString())), `${name(n)} logs the invalid frame`);
  }

  // The nodes are all up, still agree, and nobody was added by the strangers.
  for (const n of live) t.is(n.proc!.exitCode, null, `${name(n)} is running`);
  t.is(await b.converged(), version);
  // (the member tables hold only the cluster's own nodes: n3 is still listed, as gone)
  for (const v of (await views(b, live))!) t.deepEqual(v.members.map((m) => m.name).filter((x) => !names(b.nodes).includes(x)), []);
  await healthz(t, live);
  const ns = names(live);
  await chat(t, live[0]!, homedOn(ns, ns[1]!, 's-a'), live[2]!, homedOn(ns, ns[2]!, 's-b'), 'after-garbage');
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'im-stranger-'));
  dirs.push(d);
  return d;
}
