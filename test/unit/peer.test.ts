// The peer transport over real libp2p on 127.0.0.1: requests, ordering and coalescing,
// backpressure under pnet, private-network refusal, hostile frames, errors, identity.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Stream } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import * as lp from 'it-length-prefixed';
import { createLibp2p } from 'libp2p';
import type { Libp2p } from 'libp2p';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createPeerNet, generateSwarmKey, PEER_PROTOCOL } from '../../src/transport/index.ts';
import type { PeerMsg, PeerNet, PeerNetInit, PeerStats } from '../../src/transport/index.ts';

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

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'im-peer-'));
  dirs.push(d);
  return d;
}

async function net(init: Partial<PeerNetInit> = {}, log = silent): Promise<PeerNet> {
  const n = await createPeerNet({ dataDir: await tempDir(), port: 0, psk, ...init }, { log });
  nets.push(n);
  return n;
}

/** Polls a condition (no fixed sleeps): resolves when it holds, fails after timeoutMs. */
async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const statsFor = (n: PeerNet, peer: string): PeerStats | undefined => n.stats().find((s) => s.peer === peer);

async function rejects(t: ExecutionContext, p: Promise<unknown>, name: string): Promise<Error> {
  const err = await t.throwsAsync(p);
  t.is(err?.name, name, err?.message);
  return err as Error;
}

test.serial('dial, requests both ways, simultaneous streams, peer events', async (t) => {
  const a = await net();
  const b = await net();
  const eventsA: Array<{ peer: string; up: boolean }> = [];
  const eventsB: Array<{ peer: string; up: boolean }> = [];
  a.onPeer((e) => eventsA.push(e));
  b.onPeer((e) => eventsB.push(e));
  a.onRequest(async (from, m) => ({ t: 'from-a', from, echo: m }));
  b.onRequest(async (from, m) => ({ t: 'from-b', from, echo: m }));
  const gotA: unknown[] = [];
  const gotB: unknown[] = [];
  a.onMessage((_, m) => gotA.push(m));
  b.onMessage((_, m) => gotB.push(m));

  t.regex(a.addrs[0]!, new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${a.peerId}$`));
  t.is(await a.dial(b.addrs[0]!), b.peerId);
  t.true(a.connected(b.peerId));
  await until(() => eventsA.some((e) => e.peer === b.peerId && e.up) && eventsB.some((e) => e.peer === a.peerId && e.up), 2000, 'peer:connect');

  // Both sides write first in the same tick: each may open its own stream; both must work.
  a.send(b.peerId, { t: 'hello', n: 1 });
  b.send(a.peerId, { t: 'hello', n: 2 });
  const [ra, rb] = await Promise.all([a.request(b.peerId, { t: 'q', x: 1 }), b.request(a.peerId, { t: 'q', x: 2 })]);
  t.deepEqual(ra, { t: 'from-b', from: a.peerId, echo: { t: 'q', x: 1 } });
  t.deepEqual(rb, { t: 'from-a', from: b.peerId, echo: { t: 'q', x: 2 } });
  await until(() => gotA.length === 1 && gotB.length === 1, 2000, 'messages');
  t.deepEqual(gotB, [{ t: 'hello', n: 1 }]);
  t.deepEqual(gotA, [{ t: 'hello', n: 2 }]);

  // Many requests in flight on the same stream(s), answered by id.
  const many = await Promise.all(Array.from({ length: 200 }, (_, i) => a.request(b.peerId, { t: 'q', i })));
  t.true(many.every((r, i) => (r.echo as { i: number }).i === i));

  await b.stop();
  await until(() => eventsA.some((e) => e.peer === b.peerId && !e.up), 3000, 'peer:disconnect');
  t.false(a.connected(b.peerId));
});

test.serial('10,000 one-way messages arrive in order, in far fewer frames (lazy dial via addAddrs)', async (t) => {
  const a = await net();
  const b = await net();
  const N = 10_000;
  const seen: number[] = [];
  let from = '';
  b.onMessage((f, m) => {
    from = f;
    seen.push((m as { i: number }).i);
  });
  // No explicit dial: the first send opens the connection from the stored address.
  a.addAddrs(b.peerId, b.addrs);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) a.send(b.peerId, { t: 'm', i, body: 'a chat message of a typical size, about this long' });
  await until(() => seen.length === N, 10_000, 'all messages');
  const ms = performance.now() - t0;
  t.is(from, a.peerId);
  t.true(seen.every((v, i) => v === i), 'in order');
  const s = statsFor(a, b.peerId)!;
  t.is(s.msgsOut, N);
  t.true(s.framesOut < N / 10, `framesOut ${s.framesOut}`);
  t.is(statsFor(b, a.peerId)!.msgsIn, N);
  t.is(statsFor(b, a.peerId)!.framesIn, s.framesOut);
  t.is(s.dropped, 0);
  t.log(`${N} msgs in ${ms.toFixed(0)} ms (${Math.round((N / ms) * 1000)}/s), ${s.framesOut} frames, ${s.bytesOut} bytes`);

  // Sent one at a time (one per tick), each goes out alone: coalescing never delays.
  const before = statsFor(a, b.peerId)!.framesOut;
  for (let i = 0; i < 5; i++) {
    a.send(b.peerId, { t: 'm', i: N + i });
    await until(() => seen.length === N + i + 1, 2000, 'single message');
  }
  t.is(statsFor(a, b.peerId)!.framesOut, before + 5);
});

test.serial('backpressure: 40 MB in 1 KB messages to a busy receiver under pnet', async (t) => {
  // What is measured here is libp2p's write buffer under pnet; the send queue's own bound (32 MiB
  // by default, about what this burst can pile up) is tested in peer-queue.test.ts.
  const a = await net({ maxQueueBytes: 256 * 1024 * 1024 });
  const b = await net();
  const N = 40_000;
  const body = 'x'.repeat(1000);
  let next = 0;
  let outOfOrder = 0;
  let sink = 0;
  b.onMessage((_, m) => {
    const { i, body: s } = m as { i: number; body: string };
    if (i !== next) outOfOrder++;
    next = i + 1;
    // Some real work per message, so the receiver is the slow side.
    for (let k = 0; k < s.length; k += 8) sink = (sink + s.charCodeAt(k)) | 0;
  });
  await a.dial(b.addrs[0]!);
  let peakQueued = 0;
  const t0 = performance.now();
  // Pushed in bursts from several ticks, as a busy node would, while earlier bursts are in flight.
  for (let burst = 0; burst < 40; burst++) {
    for (let j = 0; j < N / 40; j++) a.send(b.peerId, { t: 'bulk', i: burst * (N / 40) + j, body });
    peakQueued = Math.max(peakQueued, statsFor(a, b.peerId)!.queued);
    await new Promise((r) => setImmediate(r));
  }
  await until(() => next === N, 15_000, 'bulk transfer');
  const ms = performance.now() - t0;
  const s = statsFor(a, b.peerId)!;
  t.is(outOfOrder, 0);
  t.is(s.msgsOut, N);
  t.is(s.dropped, 0);
  t.true(a.connected(b.peerId), 'connection survived (no pnet WASM memory error)');
  // libp2p's own write buffer holds at most about two frames (maxFrameBytes/4 each) at a time.
  t.true(s.peakBuffered <= 2.5 * 1024 * 1024, `peakBuffered ${s.peakBuffered}`);
  t.is(s.buffered, 0);
  t.is(s.queued, 0);
  t.log(
    `${(s.bytesOut / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms (${Math.round((N / ms) * 1000)} msgs/s), ${s.framesOut} frames, ` +
      `${s.stalls} drain waits, peak libp2p write buffer ${(s.peakBuffered / 1e6).toFixed(2)} MB, peak queue ${(peakQueued / 1e6).toFixed(1)} MB (sink ${sink & 1})`,
  );
});

test.serial('a node with another swarm key cannot connect', async (t) => {
  const a = await net({ dialTimeoutMs: 1000 });
  const x = await net({ psk: generateSwarmKey(), dialTimeoutMs: 1000 });
  const events: string[] = [];
  a.onPeer((e) => events.push(`a:${e.peer}:${e.up}`));
  x.onPeer((e) => events.push(`x:${e.peer}:${e.up}`));
  for (const [from, to] of [[a, x], [x, a]] as const) {
    const t0 = Date.now();
    const err = await t.throwsAsync(from.dial(to.addrs[0]!));
    t.true(['PeerGoneError', 'PeerTimeoutError'].includes(err!.name), err!.name);
    t.true(Date.now() - t0 < 1000 + 1000, `rejected after ${Date.now() - t0} ms`);
    t.log(`${err!.name} after ${Date.now() - t0} ms: ${err!.message}`);
  }
  // A lazy send to it is dropped and counted, never thrown.
  a.addAddrs(x.peerId, x.addrs);
  t.notThrows(() => a.send(x.peerId, { t: 'hi' }));
  await until(() => statsFor(a, x.peerId)?.dropped === 1, 4000, 'drop');
  await rejects(t, a.request(x.peerId, { t: 'q' }), 'PeerGoneError');
  t.false(a.connected(x.peerId));
  t.deepEqual(events, []);
});

test.serial('hostile frames abort only their own stream', async (t) => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
  const victim = await net({ maxFrameBytes: 64 * 1024 }, log);
  const friend = await net();
  victim.onRequest(async (from, m) => ({ t: 'ok', from, m }));
  const got: Array<{ from: string; m: unknown }> = [];
  victim.onMessage((from, m) => got.push({ from, m }));

  const evil = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk }),
  });
  hosts.push(evil);
  const evilId = evil.peerId.toString();
  const target = multiaddr(victim.addrs[0]!);
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  const hostile: Array<[string, Uint8Array | ReturnType<typeof lp.encode.single>]> = [
    ['not length-prefixed', new Uint8Array(16).fill(0xff)],
    ['frame over maxFrameBytes', lp.encode.single(new Uint8Array(65 * 1024))],
    ['invalid JSON', lp.encode.single(enc('{"k":"m", oops'))],
    ['invalid UTF-8', lp.encode.single(new Uint8Array([0x5b, 0xff, 0x5d]))],
    ['not an array', lp.encode.single(enc('{"k":"m","m":{"t":"x"}}'))],
    ['unknown kind', lp.encode.single(enc('[{"k":"m","m":{"t":"x"}},{"k":"z","m":1}]'))],
    ['bad request id', lp.encode.single(enc('[{"k":"q","id":-1,"m":{"t":"x"}}]'))],
    ['extra field', lp.encode.single(enc('[{"k":"m","m":{"t":"x"},"extra":1}]'))],
    ['error without message', lp.encode.single(enc('[{"k":"e","id":1}]'))],
  ];
  let expected = 0;
  for (const [what, bytes] of hostile) {
    const stream: Stream = await evil.dialProtocol(target, PEER_PROTOCOL, { signal: AbortSignal.timeout(3000) });
    const closed = new Promise<void>((r) => stream.addEventListener('close', () => r(), { once: true }));
    stream.send(bytes);
    expected++;
    await until(() => statsFor(victim, evilId)?.badFrames === expected, 3000, `abort on ${what}`);
    await closed;
    t.not(stream.status, 'open', what);
  }
  t.is(got.length, 0, 'nothing from an invalid frame is dispatched, not even its valid envelopes');
  t.true(lines.some((l) => l.includes(evilId) && l.includes('invalid frame')), 'a warning names the peer');

  // The connection and other peers are unaffected: the evil host can still talk properly...
  const ok = await evil.dialProtocol(target, PEER_PROTOCOL, { signal: AbortSignal.timeout(3000) });
  ok.send(lp.encode.single(enc('[{"k":"m","m":{"t":"fine"}}]')));
  await until(() => got.length === 1, 2000, 'valid message after garbage');
  t.deepEqual(got[0], { from: evilId, m: { t: 'fine' } });
  // ...and a normal peer's request still works.
  await friend.dial(victim.addrs[0]!);
  t.deepEqual(await friend.request(victim.peerId, { t: 'q' }), { t: 'ok', from: friend.peerId, m: { t: 'q' } });
});

test.serial('request errors: timeout, remote throw, peer gone, stopped', async (t) => {
  const a = await net({ requestTimeoutMs: 400 });
  const b = await net();
  let hangs = 0;
  b.onRequest(async (_, m) => {
    const { t: kind } = m as PeerMsg;
    if (kind === 'hang') {
      hangs++;
      return new Promise<PeerMsg>(() => undefined);
    }
    if (kind === 'throw') throw new Error('no such user: bob');
    return { t: 'ok' };
  });
  await a.dial(b.addrs[0]!);

  let t0 = Date.now();
  await rejects(t, a.request(b.peerId, { t: 'hang' }), 'PeerTimeoutError');
  t.true(Date.now() - t0 < 1500);
  await rejects(t, a.request(b.peerId, { t: 'hang' }, { timeoutMs: 100 }), 'PeerTimeoutError');
  const remote = await rejects(t, a.request(b.peerId, { t: 'throw' }), 'PeerRemoteError');
  t.is(remote.message, 'no such user: bob');
  const ac = new AbortController();
  const aborted = a.request(b.peerId, { t: 'hang' }, { signal: ac.signal });
  ac.abort(new Error('caller gave up'));
  t.is((await t.throwsAsync(aborted))?.message, 'caller gave up');
  t.deepEqual(await a.request(b.peerId, { t: 'fine' }), { t: 'ok' });

  // Not serialisable: rejected at once, nothing sent.
  await rejects(t, a.request(b.peerId, { t: 'big', n: 1n }), 'PeerMessageError');

  const before = hangs;
  const pending = a.request(b.peerId, { t: 'hang' }, { timeoutMs: 10_000 });
  await until(() => hangs > before, 2000, 'request arrived');
  t0 = Date.now();
  await b.stop();
  await rejects(t, pending, 'PeerGoneError');
  t.true(Date.now() - t0 < 1500, `gone after ${Date.now() - t0} ms`);

  const c = await net();
  await a.dial(c.addrs[0]!);
  c.onRequest(() => new Promise<PeerMsg>(() => undefined));
  const local = a.request(c.peerId, { t: 'hang' }, { timeoutMs: 10_000 });
  await a.stop();
  await rejects(t, local, 'PeerGoneError');
  await rejects(t, a.request(c.peerId, { t: 'x' }), 'PeerGoneError');
  t.notThrows(() => a.send(c.peerId, { t: 'x' }));
});

test('generateSwarmKey writes a v1 swarm key file', (t) => {
  const key = generateSwarmKey();
  t.is(key.length, 95);
  t.regex(new TextDecoder().decode(key), /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/);
  t.notDeepEqual(generateSwarmKey(), key);
});

test.serial('identity survives a restart on the same data directory', async (t) => {
  const dataDir = await tempDir();
  const first = await createPeerNet({ dataDir, port: 0, psk }, { log: silent });
  const id = first.peerId;
  await first.stop();
  t.is(((await stat(join(dataDir, 'peer.key'))).mode & 0o777), 0o600);
  const second = await net({ dataDir });
  t.is(second.peerId, id);
  const other = await net();
  t.not(other.peerId, id);
});
