// Attacks on the peer port by holders of the swarm key: a node that is not a member sends absorb,
// handoff and push; a member (its identity copied) sends absorb and deliver for keys the ring
// does not name it for, and malformed pushes; 128 idle TCP connections sit on a node's peer port
// while it restarts. Each is refused and counted, and nobody's data or client sees it.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { cleanup, readAll, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { underAttack } from '../helpers/attack.ts';
import { createPeerNet } from '../../src/transport/index.ts';
import type { PeerNet } from '../../src/transport/index.ts';
import type { ImClient } from '../../src/client/client.ts';
import type { ServerFrame as Frame } from '../../src/protocol/frames.ts';
import { dmConv } from '../../src/protocol/frames.ts';

const silent = pino({ level: 'silent' });
const nets: PeerNet[] = [];
const dirs: string[] = [];
let c: TestCluster;
/** Clients of the test under way, closed at its end (a later test restarts a node they use). */
let clients: ImClient[] = [];
test.afterEach.always(() => {
  for (const x of clients) x.close();
  clients = [];
});

test.before(async () => {
  c = await startCluster(3);
});
test.after.always(async () => {
  await Promise.all(nets.map((n) => n.stop().catch(() => undefined)));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await cleanup();
});

const name = (n: TestNode): string => n.opts.name!;

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'im-evil-'));
  dirs.push(d);
  return d;
}

/** A libp2p node with the cluster's key: a fresh identity, or a copy of a member's. */
async function keyed(identityOf?: TestNode): Promise<PeerNet> {
  const dir = await tempDir();
  if (identityOf) await copyFile(join(identityOf.data, 'peer.key'), join(dir, 'peer.key'));
  const n = await createPeerNet({ dataDir: dir, port: 0, psk: await readFile(c.psk) }, { log: silent });
  nets.push(n);
  return n;
}

/** Sum of a counter's samples whose labels include all of `labels`. */
async function counter(n: TestNode, metric: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await n.get('/metrics')).text;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A victim homed on `home` with a few messages, logged in there and recording every frame. */
async function victim(home: TestNode, prefix: string): Promise<{ user: string; cl: ImClient; frames: Frame[]; bodies: string[] }> {
  const user = c.nameOn(home, prefix);
  const { c: cl } = await home.login(user, 'dv');
  clients.push(cl);
  const frames: Frame[] = [];
  cl.on('frame', (f: Frame) => void frames.push(f));
  for (let i = 0; i < 3; i++) await cl.send(`${prefix}-peer`, `${prefix}${i}`, `${prefix} says ${i}`);
  const bodies = (await readAll(cl)).map((e) => e.body);
  return { user, cl, frames, bodies };
}

/** A page that would replace `user`'s timeline with one forged entry. */
function forgedPage(user: string): Record<string, unknown> {
  return {
    users: [{ user, seq: 1, convs: [], cursors: [] }],
    entries: [{ user, mid: 'forged-1', conv: dmConv(user, 'mallory'), from: 'mallory', to: user, body: 'forged by mallory', ts: Date.now(), seq: 1, dkey: 'm:forged-1', ocum: 0 }],
  };
}

async function bystanders(from: TestNode, to: TestNode, tag: string): Promise<{ from: ImClient; to: string; reader: ImClient }> {
  const a = c.nameOn(from, `by${tag}a`);
  const b = c.nameOn(to, `by${tag}b`);
  const { c: sender } = await from.login(a, 'db');
  const { c: reader } = await to.login(b, 'db');
  clients.push(sender, reader);
  return { from: sender, to: b, reader };
}

async function unchanged(t: ExecutionContext, v: { cl: ImClient; frames: Frame[]; bodies: string[] }): Promise<void> {
  t.deepEqual((await readAll(v.cl)).map((e) => e.body), v.bodies, 'the victim\'s timeline is unchanged');
  t.false(v.frames.some((f) => JSON.stringify(f).includes('mallory')), 'no forged frame reached the victim');
}

test.serial('a keyed non-member: absorb, handoff pause and push are refused and counted; no timeline or client is touched', async (t) => {
  const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
  const v = await victim(n1, 'va');
  const evil = await keyed();
  const peer = await evil.dial(n1.p2p);
  const fig = await underAttack(t, 'peers: keyed non-member absorb/handoff/push', { target: n1, ...(await bystanders(n1, n2, 'a')) }, async () => {
    for (let i = 0; i < 20; i++) {
      const r = await evil.request(peer, { t: 'absorb', page: forgedPage(v.user) });
      t.like(r, { t: 'fail', code: 'unavailable' }, JSON.stringify(r));
      // A pause of the users "moving" to a live member's name, to a made-up ring, or as a member.
      for (const h of [
        { target: name(n2), members: [name(n1), name(n2)] },
        { target: 'mallory', members: [name(n1), 'mallory'] },
        { target: 'mallory', members: [name(n1), name(n2), name(n3), 'mallory', 'ghost'] },
        { target: name(n1), members: [name(n1), name(n2), name(n3)] },
      ]) {
        const hr = await evil.request(peer, { t: 'handoff', ...h, from: '', to: null, after: {}, freeze: true, limit: 1000 });
        t.like(hr, { t: 'fail', code: 'forbidden' }, `${JSON.stringify(h)} → ${JSON.stringify(hr)}`);
      }
      // Pushes to every connection id the gateway may have given out so far, and a deliver.
      for (let k = 1; k <= 60; k++) {
        evil.send(peer, { t: 'push', conn: `c${k}`, frame: { op: 'msg', seq: 99, mid: 'forged-2', conv: dmConv(v.user, 'mallory'), from: 'mallory', to: v.user, body: 'forged by mallory', ts: 1 } });
      }
      evil.send(peer, { t: 'pushmsg', msg: { mid: 'forged-3', conv: dmConv(v.user, 'mallory'), from: 'mallory', body: 'forged by mallory', ts: 1 }, to: [['c1', 99], ['c2', 99]] });
      const d = await evil.request(peer, { t: 'deliver', rv: 'x', items: [{ user: v.user, mid: 'forged-4', conv: dmConv(v.user, 'mallory'), from: 'mallory', to: v.user, body: 'forged by mallory', ts: 1 }] });
      t.like(d, { t: 'fail', code: 'unavailable' });
    }
  });
  // Writes of the victim were never paused: it still sends at once.
  const t0 = performance.now();
  await v.cl.send(`va-peer`, 'after', 'va after the attack');
  const sendMs = performance.now() - t0;
  v.bodies.push('va after the attack');
  await unchanged(t, v);
  await until(async () => (await counter(n1, 'im_peer_refused_total', { type: 'push', reason: 'not_member' })) >= 20 * 60, 'the refused pushes counted', 5000, 50);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'absorb', reason: 'not_member' })) >= 20);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'handoff', reason: 'not_target' })) >= 40);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'handoff', reason: 'bad_members' })) >= 40);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'pushmsg', reason: 'not_member' })) >= 20);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'deliver', reason: 'not_member' })) >= 20);
  t.true(fig.rssGrowthMiB < 64, `RSS grew ${fig.rssGrowthMiB} MiB`);
  t.log(`victim's send after the attack: ${Math.round(sendMs)} ms`);
});

test.serial('a keyed member: absorb and deliver for keys the ring does not name it for, and malformed pushes, are refused and counted', async (t) => {
  const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
  // A victim on n1 whose copies n3 does not hold: n3 may not hand it over.
  const ring = c.ring();
  let user = '';
  for (let i = 0; !user; i++) if (ring.owner(`vb${i}`) === name(n1) && !ring.owners(`vb${i}`, 2).includes(name(n3))) user = `vb${i}`;
  const { c: cl } = await n1.login(user, 'dv');
  clients.push(cl);
  const frames: Frame[] = [];
  cl.on('frame', (f: Frame) => void frames.push(f));
  for (let i = 0; i < 3; i++) await cl.send('vb-peer', `vb${i}`, `vb says ${i}`);
  const v = { cl, frames, bodies: (await readAll(cl)).map((e) => e.body) };
  // n3's identity: n1 takes it for n3 (a member), on a second connection.
  const fake = await keyed(n3);
  const peer = await fake.dial(n1.p2p);
  const before = await counter(n1, 'im_peer_invalid_frames_total');
  // A sender homed on n2 (not on n3) whose copy n3 claims to deliver.
  const other = c.nameOn(n2, 'vbsender');
  await underAttack(t, 'peers: keyed member absorb/deliver/push for keys not its own', { target: n1, ...(await bystanders(n1, n2, 'b')) }, async () => {
    for (let i = 0; i < 20; i++) {
      t.like(await fake.request(peer, { t: 'absorb', page: forgedPage(user) }), { t: 'fail', code: 'forbidden' });
      const d = await fake.request(peer, { t: 'deliver', rv: 'x', items: [{ user, mid: `forged-d${i}`, conv: dmConv(user, other), from: other, to: user, body: 'forged by mallory', ts: 1 }] });
      t.like(d, { t: 'fail', code: 'unavailable' });
      for (let k = 1; k <= 30; k++) {
        fake.send(peer, { t: 'push', conn: `c${k}`, frame: { op: 'welcome', user: 'mallory', device: 'x', node: 'mallory', seq: 0, acked: 0 } });
        fake.send(peer, { t: 'push', conn: `c${k}`, frame: { op: 'msg', seq: 1, mid: 'forged-p', conv: 'not a conversation', from: 'mallory', body: 'forged by mallory', ts: 1 } });
      }
    }
  });
  await fake.stop();
  await unchanged(t, v);
  await until(async () => (await counter(n1, 'im_peer_refused_total', { type: 'push', reason: 'invalid' })) >= 20 * 60, 'the malformed pushes counted', 5000, 50);
  t.true((await counter(n1, 'im_peer_invalid_frames_total')) - before >= 20 * 60);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'absorb', reason: 'not_holder' })) >= 20);
  t.true((await counter(n1, 'im_peer_refused_total', { type: 'deliver', reason: 'not_home' })) >= 20);
  // The real n3 is still a member in good standing, and the cluster is whole.
  await c.converged();
});

test.serial('128 idle TCP connections on a node\'s peer port while it restarts: it rejoins and serves', async (t) => {
  const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
  const port = n2.p2pPort;
  const held = new Set<Socket>();
  let holding = true;
  let opened = 0;
  // Keeps 128 idle connections open, opening a new one whenever one closes (the node restarting
  // resets them; libp2p drops those that never finish the handshake).
  const open = (): void => {
    if (!holding) return;
    const s = connect(port, '127.0.0.1');
    opened++;
    held.add(s);
    s.on('error', () => undefined);
    s.on('close', () => {
      held.delete(s);
      if (holding) setTimeout(open, 20);
    });
  };
  for (let i = 0; i < 128; i++) open();
  const user = c.nameOn(n2, 'vc');
  const fig = await underAttack(t, 'peers: 128 idle connections on the peer port across a restart', { target: n1, ...(await bystanders(n1, n3, 'c')) }, async () => {
    await until(() => held.size === 128, 'the 128 connections', 5000, 20);
    await n2.kill();
    await n2.start(n2.port);
    t.is(n2.p2pPort, port, 'the same peer port');
    await c.converged(30_000);
    const { c: cl } = await n2.login(user, 'd1');
    clients.push(cl);
    const sent = await cl.send('vc-peer', 'c1', 'after the restart');
    t.truthy(sent.mid);
    t.true((await readAll(cl)).some((e) => e.body === 'after the restart'));
  });
  holding = false;
  const idle = held.size;
  for (const s of held) s.destroy();
  t.log(`${opened} idle connections opened in all, ${idle} still open at the end; n1 RSS growth ${fig.rssGrowthMiB} MiB`);
  const health = await n2.get('/healthz');
  t.is(health.status, 200, health.text);
});
