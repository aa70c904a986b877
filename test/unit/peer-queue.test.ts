// The per-peer send queue's bounds over real libp2p on 127.0.0.1: past its envelope or byte bound
// a request waits for room (and fails with PeerBusyError when none comes in time), a one-way
// message is dropped; every case is counted.
import test from 'ava';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Stream } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';
import type { Libp2p } from 'libp2p';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createPeerNet, generateSwarmKey, PEER_PROTOCOL } from '../../src/transport/index.ts';
import type { PeerNet, PeerNetInit, QueueFull } from '../../src/transport/index.ts';

const psk = generateSwarmKey();
const silent = pino({ level: 'silent' });
const dirs: string[] = [];
const nets: PeerNet[] = [];
const hosts: Libp2p[] = [];

test.after.always(async () => {
  await Promise.all(nets.map((n) => n.stop()));
  await Promise.all(hosts.map((h) => h.stop()));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function net(init: Partial<PeerNetInit> = {}, counts?: Record<QueueFull, number>): Promise<PeerNet> {
  const d = await mkdtemp(join(tmpdir(), 'im-peerq-'));
  dirs.push(d);
  const n = await createPeerNet({ dataDir: d, port: 0, psk, ...init }, { log: silent, onQueueFull: (k) => counts && counts[k]++ });
  nets.push(n);
  return n;
}

async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A keyed peer that reads our protocol's streams very slowly (one chunk per 100 ms): our writes
 * stall. (One that never reads would abort the stream once its read buffer passes 4 MiB.) */
async function sink(): Promise<{ peer: string; addrs: string[] }> {
  const h = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()],
    streamMuxers: [yamux()], connectionProtector: preSharedKey({ psk }),
  });
  hosts.push(h);
  await h.handle(PEER_PROTOCOL, (stream: Stream) => {
    void (async () => {
      for await (const _ of stream) await new Promise((r) => setTimeout(r, 100));
    })().catch(() => undefined);
  });
  return { peer: h.peerId.toString(), addrs: h.getMultiaddrs().map((a) => a.toString()) };
}

test.serial('the envelope bound: one tick past it, one-way messages are dropped and counted', async (t) => {
  const counts = { waited: 0, timeout: 0, dropped: 0 };
  const a = await net({ maxQueueMsgs: 100 }, counts);
  const b = await net();
  let got = 0;
  b.onMessage(() => void got++);
  await a.dial(b.addrs[0]!);
  for (let i = 0; i < 500; i++) a.send(b.peerId, { t: 'x', i });
  t.is(counts.dropped, 400);
  await until(() => got === 100, 5000, 'the 100 queued messages');
  const s = a.stats().find((x) => x.peer === b.peerId)!;
  t.is(s.queueDrops, 400);
  t.is(s.queued, 0);
});

test.serial('a request waits for room in order, then goes and is answered', async (t) => {
  const counts = { waited: 0, timeout: 0, dropped: 0 };
  const a = await net({ maxQueueMsgs: 2 }, counts);
  const b = await net();
  const order: number[] = [];
  b.onMessage(() => undefined);
  b.onRequest(async (_, m) => {
    order.push((m as { i: number }).i);
    return { t: 'done', i: (m as { i: number }).i };
  });
  await a.dial(b.addrs[0]!);
  a.send(b.peerId, { t: 'x' });
  a.send(b.peerId, { t: 'x' });
  const answers = await Promise.all([1, 2, 3].map((i) => a.request(b.peerId, { t: 'q', i })));
  t.deepEqual(answers.map((r) => r.i), [1, 2, 3]);
  t.deepEqual(order, [1, 2, 3], 'waiting requests keep their order');
  t.true(counts.waited >= 1, `waited ${counts.waited}`);
  t.is(counts.timeout, 0);
});

test.serial('the byte bound: toward a peer that reads slowly, the queue stays bounded and the rest is dropped', async (t) => {
  const counts = { waited: 0, timeout: 0, dropped: 0 };
  const bound = 512 * 1024;
  const a = await net({ maxQueueBytes: bound }, counts);
  const s = await sink();
  a.addAddrs(s.peer, s.addrs);
  const body = 'y'.repeat(64 * 1024);
  let peak = 0;
  // Far more than the stream windows and the queue take together, over many ticks.
  for (let i = 0; i < 400; i++) {
    a.send(s.peer, { t: 'bulk', i, body });
    peak = Math.max(peak, a.stats().find((x) => x.peer === s.peer)?.queued ?? 0);
    if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
  }
  await until(() => counts.dropped > 0, 5000, 'drops');
  t.true(peak <= bound + body.length + 64, `peak queue ${peak} characters`);
  t.log(`peak queue ${(peak / 1024).toFixed(0)} KiB for a bound of ${bound / 1024} KiB; dropped ${counts.dropped}`);
});

test.serial('toward a peer that does not answer its dial, a request waits for room, then fails with PeerBusyError', async (t) => {
  const counts = { waited: 0, timeout: 0, dropped: 0 };
  const a = await net({ maxQueueBytes: 256 * 1024, dialTimeoutMs: 3000 }, counts);
  // Accepts TCP and says nothing: the private-network handshake, hence the dial, hangs.
  const sockets: Socket[] = [];
  const server = createServer((sock) => void sockets.push(sock));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const x of sockets) x.destroy();
    server.close();
  });
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
  a.addAddrs(peer, [`/ip4/127.0.0.1/tcp/${(server.address() as AddressInfo).port}`]);
  const body = 'z'.repeat(64 * 1024);
  for (let i = 0; i < 10; i++) a.send(peer, { t: 'bulk', i, body });
  t.is(counts.dropped, 6, 'four 64 KiB messages fill 256 KiB');
  const t0 = performance.now();
  const err = await t.throwsAsync(a.request(peer, { t: 'q' }, { timeoutMs: 300 }));
  t.is(err?.name, 'PeerBusyError', err?.message);
  t.regex(err!.message, /send queue to .* stayed full for 300 ms/);
  t.true(performance.now() - t0 < 2000);
  t.deepEqual(counts, { waited: 1, timeout: 1, dropped: 6 });
  // A request waiting when the net stops is rejected, not left hanging.
  const pending = a.request(peer, { t: 'q' }, { timeoutMs: 10_000 });
  await a.stop();
  t.is((await t.throwsAsync(pending))?.name, 'PeerGoneError');
});
