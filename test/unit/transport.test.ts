// The peer transport (src/transport/) with in-memory stand-ins for libp2p and its streams, on a
// manual clock: the inbound pipeline (length-prefixed decode → validate → dispatch) dispatches
// frames cut anywhere in order and counts them, aborts only the stream that sent a bad frame and
// reads nothing after it, and serves a request back on its own stream; request timeouts and waits
// for room in the send queue follow the clock; aborting the node's signal ends every wait.
import test from 'ava';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import * as lp from 'it-length-prefixed';
import type { Libp2p } from 'libp2p';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { ManualClock } from '../../src/clock/index.ts';
import type { Envelope } from '../../src/transport/envelope.ts';
import { Inbound, readFrames } from '../../src/transport/inbound.ts';
import type { Handlers } from '../../src/transport/inbound.ts';
import type { PeerMsg, QueueFull } from '../../src/transport/index.ts';
import { Link } from '../../src/transport/link.ts';
import type { LinkCounters } from '../../src/transport/link.ts';
import { PeerNetImpl } from '../../src/transport/peer-net.ts';
import type { Settings } from '../../src/transport/peer-net.ts';
import { Requests } from '../../src/transport/requests.ts';

const MAX_FRAME = 1024;

const newPeer = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
const frame = (envs: unknown): Uint8Array => lp.encode.single(Buffer.from(JSON.stringify(envs))).subarray();
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Log lines as objects, to check what was said. */
function logger(): { log: Logger; lines: Array<{ level: number; msg: string; reason?: string }> } {
  const lines: Array<{ level: number; msg: string; reason?: string }> = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) }), lines };
}

/** A libp2p stream stand-in: what the peer sends is pushed in as chunks; what we send is kept. */
class FakeStream {
  status = 'open';
  writeStatus = 'writable';
  writeBufferLength = 0;
  writableNeedsDrain = false;
  sent: Uint8Array[] = [];
  abortedWith: Error | undefined;
  closed = false;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(...chunks: Uint8Array[]): void {
    this.#chunks.push(...chunks);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.status !== 'open') return;
      const c = this.#chunks.shift();
      if (c) yield c;
      else if (this.#ended) return;
      else await new Promise<void>((r) => (this.#wake = r));
    }
  }

  send(data: { subarray(): Uint8Array }): boolean {
    this.sent.push(data.subarray());
    return true;
  }

  abort(e: Error): void {
    this.status = 'aborted';
    this.writeStatus = 'closed';
    this.abortedWith = e;
    this.#wake?.();
  }

  async close(): Promise<void> {
    this.status = 'closed';
    this.writeStatus = 'closed';
    this.closed = true;
  }
}

function counters(): LinkCounters {
  return { framesOut: 0, framesIn: 0, bytesOut: 0, bytesIn: 0, msgsOut: 0, msgsIn: 0, dropped: 0, badFrames: 0, peakBuffered: 0, stalls: 0, queueWaits: 0, queueTimeouts: 0, queueDrops: 0 };
}

/** One peer's link and the inbound side that reads its streams, with handlers to fill in. */
function inbound(peer: string, clock = new ManualClock()) {
  const { log, lines } = logger();
  const requests = new Requests(clock);
  const handlers: Handlers = { peer: [] };
  const shutdown = new AbortController();
  const link = new Link({
    peer, maxChunkChars: MAX_FRAME / 4, maxQueueMsgs: 100, maxQueueBytes: 1 << 20, log, clock, signal: shutdown.signal,
    hooks: { open: () => new Promise<Stream>(() => undefined), isPending: (id) => requests.has(id), written: () => undefined, failed: () => undefined },
  });
  const inb = new Inbound({ maxFrameBytes: MAX_FRAME, log, requests, handlers, signal: shutdown.signal });
  return { link, inb, handlers, lines, requests };
}

test('the pipeline dispatches frames cut at any byte in order, counting frames, bytes and envelopes', async (t) => {
  const frames = [
    frame([{ k: 'm', m: { t: 'a' } }, { k: 'm', m: { t: 'b' } }]),
    frame([{ k: 'q', id: 1, m: { t: 'c' } }]),
    frame([{ k: 'r', id: 2, m: { t: 'd' } }, { k: 'e', id: 3, message: 'no' }]),
  ];
  const all = Buffer.concat(frames);
  // Pieces of 5 bytes: every frame spans several, and pieces hold the ends and starts of two frames.
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 5) pieces.push(all.subarray(i, i + 5));
  async function* source() {
    yield* pieces;
  }
  const c = counters();
  const got: Envelope[] = [];
  const bad: string[] = [];
  await readFrames(source(), { maxFrameBytes: MAX_FRAME, counters: c, bad: (r) => bad.push(r), dispatch: (e) => got.push(e) });
  t.deepEqual(got.map((e) => (e.k === 'e' ? e.message : (e.m as PeerMsg).t)), ['a', 'b', 'c', 'd', 'no']);
  t.deepEqual(bad, []);
  t.is(c.framesIn, 3);
  t.is(c.msgsIn, 5);
  t.is(c.bytesIn, all.length);
});

test('a dispatch that throws ends the pipeline with its error and releases the stream', async (t) => {
  let released = false;
  async function* source() {
    try {
      yield Buffer.concat([frame([{ k: 'm', m: 1 }]), frame([{ k: 'm', m: 2 }])]);
      yield frame([{ k: 'm', m: 3 }]);
    } finally {
      released = true;
    }
  }
  const got: unknown[] = [];
  const e = await t.throwsAsync(readFrames(source(), {
    maxFrameBytes: MAX_FRAME, counters: counters(), bad: () => undefined,
    dispatch: (env) => {
      got.push(env.k === 'm' && env.m);
      if (got.length === 2) throw new Error('handler broke');
    },
  }));
  t.is(e?.message, 'handler broke');
  t.deepEqual(got, [1, 2]);
  t.true(released);
});

test('a bad frame aborts its stream, is counted and warned about, and nothing after it is dispatched', async (t) => {
  const peer = await newPeer();
  const { link, inb, handlers, lines } = inbound(peer);
  const seen: unknown[] = [];
  handlers.message = (_from, m) => seen.push(m);
  const s = new FakeStream();
  link.attach(s as unknown as Stream);
  // One chunk: the frame after the bad one is already read from the stream when the bad one is seen.
  s.push(Buffer.concat([frame([{ k: 'm', m: 1 }]), frame([{ k: 'x' }]), frame([{ k: 'm', m: 2 }])]));
  await inb.read(link, s as unknown as Stream);
  t.deepEqual(seen, [1]);
  t.is(link.counters.badFrames, 1);
  t.is(link.counters.framesIn, 2);
  t.is(s.abortedWith?.message, 'invalid frame: envelope 0 is invalid');
  t.false(s.closed);
  t.deepEqual(link.streams, [], 'the stream is detached from its link');
  t.truthy(lines.find((l) => l.msg === 'invalid frame from peer; aborting its stream' && l.reason === 'envelope 0 is invalid'));

  // A length prefix past maxFrameBytes is it-length-prefixed's error: the same rule.
  const big = new FakeStream();
  big.push(lp.encode.single(new Uint8Array(MAX_FRAME + 1)).subarray());
  await inb.read(link, big as unknown as Stream);
  t.is(link.counters.badFrames, 2);
  t.regex(big.abortedWith?.message ?? '', /^invalid frame: /);
});

test('a stream the peer closes is closed on our side too, after every frame was dispatched', async (t) => {
  const peer = await newPeer();
  const { link, inb, handlers } = inbound(peer);
  const seen: unknown[] = [];
  handlers.message = (from, m) => seen.push([from, m]);
  const s = new FakeStream();
  s.push(frame([{ k: 'm', m: 'x' }]));
  s.end();
  await inb.read(link, s as unknown as Stream);
  t.deepEqual(seen, [[peer, 'x']]);
  t.true(s.closed);
  t.is(s.abortedWith, undefined);
});

test('a request is served and its answer goes back on the stream it came in on', async (t) => {
  const peer = await newPeer();
  const { link, inb, handlers } = inbound(peer);
  handlers.request = async (from, m) => ({ t: 'done', value: [from === peer, (m as PeerMsg).t] });
  const s = new FakeStream();
  link.attach(s as unknown as Stream);
  const reading = inb.read(link, s as unknown as Stream);
  s.push(frame([{ k: 'q', id: 7, m: { t: 'ping' } }]));
  for (let i = 0; i < 5 && s.sent.length === 0; i++) await tick();
  t.is(s.sent.length, 1);
  const [answer] = [...lp.decode([s.sent[0]!])].map((f) => JSON.parse(Buffer.from(f.subarray()).toString()));
  t.deepEqual(answer, [{ k: 'r', id: 7, m: { t: 'done', value: [true, 'ping'] } }]);
  s.end();
  await reading;
});

test('a request times out by the clock, not before', async (t) => {
  const clock = new ManualClock(1_000_000);
  const requests = new Requests(clock);
  const r = requests.add('p', 'ping', 1000);
  let settled = false;
  r.answer.catch(() => (settled = true));
  await clock.advance(999);
  t.false(settled);
  await clock.advance(1);
  const e = await t.throwsAsync(r.answer);
  t.is(e?.name, 'PeerTimeoutError');
  t.is(e?.message, 'request ping to p timed out after 1000 ms');
  t.false(requests.has(r.id));
  // An answered request leaves no timer behind.
  const a = requests.add('p', 'ping', 1000);
  t.true(requests.answer('p', a.id, { ok: { t: 'done' } }));
  t.deepEqual(await a.answer, { t: 'done' });
  t.is(clock.waiting, 0);
});

/** A PeerNet over a libp2p stand-in whose dials to peers never finish (until stopped). */
async function stalledNet(clock: ManualClock, signal: AbortSignal, queue: Partial<Settings> = {}) {
  const self = await newPeer();
  let stopped = 0;
  const node = {
    peerId: { toString: () => self },
    handle: async () => undefined,
    addEventListener: () => undefined,
    start: async () => undefined,
    stop: async () => {
      await tick();
      stopped++;
    },
    getMultiaddrs: () => [],
    getConnections: () => [],
    dialProtocol: (_p: unknown, _proto: string, o: { signal: AbortSignal }) =>
      new Promise((_resolve, reject) => o.signal.addEventListener('abort', () => reject(o.signal.reason), { once: true })),
  } as unknown as Libp2p;
  const cfg: Settings = {
    host: '127.0.0.1', port: 0, dialTimeoutMs: 600_000, requestTimeoutMs: 5000, maxFrameBytes: MAX_FRAME, pingIntervalMs: 1000,
    maxQueueMsgs: 100, maxQueueBytes: 1 << 20, ...queue,
  };
  const full: QueueFull[] = [];
  const net = new PeerNetImpl(node, cfg, { log: pino({ level: 'silent' }), clock, signal, onQueueFull: (k) => full.push(k) });
  await net.start();
  return { net, full, stopped: () => stopped };
}

test('a request waits for room in a full send queue by the clock, then fails with PeerBusyError', async (t) => {
  const clock = new ManualClock(1_000_000);
  const { net, full } = await stalledNet(clock, new AbortController().signal, { maxQueueMsgs: 1 });
  const peer = await newPeer();
  const first = net.request(peer, { t: 'a' }, { timeoutMs: 60_000 });
  first.catch(() => undefined);
  const second = net.request(peer, { t: 'b' }, { timeoutMs: 1000 });
  t.deepEqual(full, ['waited']);
  await clock.advance(1000);
  const e = await t.throwsAsync(second);
  t.is(e?.name, 'PeerBusyError');
  t.deepEqual(full, ['waited', 'timeout']);
  t.is(net.stats()[0]?.queueTimeouts, 1);
  await net.stop();
  t.is((await t.throwsAsync(first))?.name, 'PeerGoneError');
});

test('aborting the node\'s signal stops the peer net: waiting requests end with PeerGoneError, nothing stays on the clock', async (t) => {
  const clock = new ManualClock(1_000_000);
  const ctl = new AbortController();
  const { net, stopped } = await stalledNet(clock, ctl.signal, { maxQueueMsgs: 1 });
  const peer = await newPeer();
  const asked = net.request(peer, { t: 'a' });
  const waiting = net.request(peer, { t: 'b' });
  await tick();
  t.true(clock.waiting > 0);
  ctl.abort();
  // The node's own stop() after the abort waits until libp2p has stopped.
  await net.stop();
  t.is(stopped(), 1);
  const [a, b] = await Promise.allSettled([asked, waiting]);
  t.is(a.status === 'rejected' && (a.reason as Error).message, 'peer net stopped');
  t.is(b.status === 'rejected' && (b.reason as Error).name, 'PeerGoneError');
  t.is(clock.waiting, 0);
  t.is((await t.throwsAsync(net.request(peer, { t: 'c' })))?.message, 'peer net stopped');
});
