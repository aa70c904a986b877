// The gateway alone: in-memory homes and social role, insecure auth, and fake sockets, so that
// what a client is answered (and what the homes are asked) shows without a node or a network.
import test from 'ava';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import type { WebSocket } from 'ws';
import { createGateway } from '../../src/gateway/gateway.ts';
import type { Gateway } from '../../src/gateway/gateway.ts';
import { createAuth } from '../../src/gateway/auth.ts';
import { LaneClosedError } from '../../src/gateway/lane.ts';
import type { Lane } from '../../src/gateway/lane.ts';
import type { Homes } from '../../src/home/home.ts';
import { DEFAULTS } from '../../src/node/config.ts';
import { createMetrics } from '../../src/node/metrics.ts';
import { ManualClock } from '../../src/clock/index.ts';
import { UnavailableError } from '../../src/protocol/errors.ts';

type Frame = { op: string } & Record<string, unknown>;

/** A WebSocket as the gateway uses one: frames it sends are parsed and kept, in order. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  frames: Frame[] = [];
  closedWith: { code: number; reason: string } | undefined;

  send(data: string, written?: () => void): void {
    this.frames.push(JSON.parse(data) as Frame);
    this.emit('frame');
    written?.();
  }

  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
    setImmediate(() => this.emit('close'));
  }

  terminate(): void {
    this.close(1006, '');
  }

  /** A text frame from the client. */
  client(frame: object): void {
    this.emit('message', Buffer.from(JSON.stringify(frame)), false);
  }

  /** The first frame after the `seen` first ones that matches `op` (waits for it). */
  async next(op: string, seen = 0): Promise<Frame> {
    for (;;) {
      const f = this.frames.slice(seen).find((x) => x.op === op);
      if (f) return f;
      await new Promise((r) => this.once('frame', r));
    }
  }
}

/** Homes that answer from memory; a test replaces the calls it is about. */
function memoryHomes(over: Partial<Homes> = {}): Homes & { calls: { fn: string; args: unknown[] }[] } {
  const calls: { fn: string; args: unknown[] }[] = [];
  const rec = <T>(fn: string, value: T) => async (...args: unknown[]) => {
    calls.push({ fn, args });
    return value;
  };
  return {
    calls,
    send: rec('send', { mid: 'm1', seq: 1, ts: 1000 }),
    sendGroup: rec('sendGroup', { mid: 'm2', seq: 2, ts: 1000 }),
    group: rec('group', undefined),
    typing: rec('typing', undefined),
    receipts: rec('receipts', {}),
    login: rec('login', { seq: 0, acked: 0 }),
    logout: rec('logout', undefined),
    sync: rec('sync', { msgs: [], more: false }),
    history: rec('history', { msgs: [], more: false }),
    ack: rec('ack', undefined),
    read: rec('read', undefined),
    unread: rec('unread', { total: 0, convs: {} }),
    presence: rec('presence', {}),
    watch: rec('watch', undefined),
    unwatch: rec('unwatch', undefined),
    ...over,
  } as Homes & { calls: { fn: string; args: unknown[] }[] };
}

function setup(homes: Homes, opts: { clock?: ManualClock; signal?: AbortSignal } = {}): { gw: Gateway; connect(): FakeSocket } {
  const gw = createGateway({
    name: 'n1', config: DEFAULTS, homes,
    auth: createAuth({ secret: 'a-secret-of-at-least-32-bytes-....', insecure: true, maxTokenLifeS: 3600 }),
    metrics: createMetrics('n1'), log: pino({ level: 'silent' }),
    social: {
      socialOp: async () => undefined,
      contacts: async () => ({ contacts: [], more: false }),
      profiles: async () => ({}),
    },
    ...(opts.clock ? { clock: opts.clock } : { now: () => Date.now() }),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return {
    gw,
    connect() {
      const ws = new FakeSocket();
      gw.accept(ws as unknown as WebSocket);
      return ws;
    },
  };
}

async function loggedIn(connect: () => FakeSocket, user = 'alice'): Promise<FakeSocket> {
  const ws = connect();
  ws.client({ op: 'login', id: 1, user });
  await ws.next('welcome');
  return ws;
}

test('a send after login reaches the home with the connection\'s lane, and the client gets sent', async (t) => {
  const homes = memoryHomes();
  const { connect } = setup(homes);
  const ws = await loggedIn(connect);
  t.like(ws.frames[0], { op: 'welcome', id: 1, user: 'alice', device: 'default', node: 'n1', seq: 0, acked: 0 });
  ws.client({ op: 'send', id: 2, to: 'bob', cid: 'c-1', body: 'hi' });
  const sent = await ws.next('sent');
  t.deepEqual(sent, { op: 'sent', id: 2, mid: 'm1', seq: 1, ts: 1000 });
  const call = homes.calls.find((c) => c.fn === 'send')!;
  t.deepEqual(call.args.slice(0, 4), ['alice', 'bob', 'c-1', 'hi']);
  t.is(typeof (call.args[4] as Lane).open, 'function', 'the send goes with the connection\'s lane');
});

test('frames before login are refused; frames during login are held and answered after it', async (t) => {
  let welcome!: () => void;
  const homes = memoryHomes({ login: () => new Promise((ok) => (welcome = () => ok({ seq: 0, acked: 0 }))) });
  const { connect } = setup(homes);
  const ws = connect();
  ws.client({ op: 'unread', id: 1 });
  t.like(await ws.next('error'), { id: 1, code: 'unauthenticated', message: 'log in first' });
  ws.client({ op: 'login', id: 2, user: 'alice' });
  await new Promise((r) => setImmediate(r));
  ws.client({ op: 'unread', id: 3 });
  await new Promise((r) => setImmediate(r));
  t.false(ws.frames.some((f) => f.op === 'unread'), 'held while the home has not answered the login');
  welcome();
  await ws.next('unread');
  t.deepEqual(ws.frames.slice(1).map((f) => f.op), ['welcome', 'unread']);
});

test('an unknown op is a bad_request error, and the connection stays usable', async (t) => {
  const { connect } = setup(memoryHomes());
  const ws = await loggedIn(connect);
  ws.client({ op: 'teleport', id: 7 });
  const err = await ws.next('error');
  t.is(err.code, 'bad_request');
  t.is(err.id, 7);
  t.regex(err.message as string, /unknown op 'teleport'/);
  ws.client({ op: 'ping', id: 8 });
  t.like(await ws.next('pong'), { id: 8 });
  ws.client({ op: 'send', id: 9, to: 'bob', cid: 'c-2', body: 'still here' });
  t.like(await ws.next('sent'), { id: 9, mid: 'm1' });
  t.is(ws.closedWith, undefined);
});

test('an unavailable home is an unavailable error that says a retry with the same cid is safe', async (t) => {
  const homes = memoryHomes({ send: async () => { throw new UnavailableError('the home of bob is not reachable'); } });
  const { connect } = setup(homes);
  const ws = await loggedIn(connect);
  ws.client({ op: 'send', id: 3, to: 'bob', cid: 'c-3', body: 'hello?' });
  t.deepEqual(await ws.next('error'), {
    op: 'error', id: 3, code: 'unavailable', message: 'the home of bob is not reachable; retrying (with the same cid) is safe',
  });
});

test('a closed lane answers nothing; a bug is internal with the message of today', async (t) => {
  let fail: Error = new LaneClosedError('the connection closed');
  const homes = memoryHomes({ send: async () => { throw fail; } });
  const { connect } = setup(homes);
  const ws = await loggedIn(connect);
  ws.client({ op: 'send', id: 4, to: 'bob', cid: 'c-4', body: 'x' });
  ws.client({ op: 'ping', id: 5 });
  await ws.next('pong');
  await new Promise((r) => setImmediate(r));
  t.false(ws.frames.some((f) => f.op === 'error'), 'nobody to answer');
  fail = new TypeError('oops');
  ws.client({ op: 'send', id: 6, to: 'bob', cid: 'c-5', body: 'x' });
  t.deepEqual(await ws.next('error'), { op: 'error', id: 6, code: 'internal', message: 'internal error; it is logged on the node' });
});

test('a closed connection\'s unwatch retries on the clock, and stops once the signal aborts', async (t) => {
  const clock = new ManualClock(1_000_000);
  const stop = new AbortController();
  let unwatches = 0;
  const homes = memoryHomes({ unwatch: async () => { unwatches++; throw new UnavailableError('home down'); } });
  const { gw, connect } = setup(homes, { clock, signal: stop.signal });
  const ws = await loggedIn(connect);
  ws.client({ op: 'watch', id: 2, users: ['bob', 'carol'] });
  await ws.next('ok');
  ws.emit('close');
  await new Promise((r) => setImmediate(r));
  t.is(gw.size(), 0);
  t.is(unwatches, 1);
  t.is(clock.waiting, 1, 'waiting to try again');
  await clock.advance(1000);
  t.is(unwatches, 2, 'tried again after a second');
  t.is(clock.waiting, 1);
  stop.abort();
  await new Promise((r) => setImmediate(r));
  t.is(clock.waiting, 0, 'no retry is waiting once the gateway stops');
  await clock.advance(60_000);
  t.is(unwatches, 2, 'and none happens later');
});

test('sweep closes a connection that has not logged in within the login timeout (by the clock)', async (t) => {
  const clock = new ManualClock(1_000_000);
  const { gw, connect } = setup(memoryHomes(), { clock });
  const ws = connect();
  await clock.advance(DEFAULTS.loginTimeoutMs);
  gw.sweep();
  t.is(ws.closedWith, undefined, 'not yet: the timeout has just been reached');
  await clock.advance(1);
  gw.sweep();
  t.deepEqual(ws.closedWith, { code: 4001, reason: 'login timeout' });
  t.is(gw.size(), 0);
});

test('typing: a connection\'s first notices have the whole burst, then TYPING_PER_S a second; over it, refused with an id, dropped without', async (t) => {
  const clock = new ManualClock(1_000_000);
  const homes = memoryHomes();
  const { connect } = setup(homes, { clock });
  const ws = await loggedIn(connect);
  // Long after login: the bucket is full, not more than full.
  await clock.advance(3_600_000);
  for (let i = 0; i < 7; i++) ws.client({ op: 'typing', id: 10 + i, to: 'bob' });
  ws.client({ op: 'typing', to: 'bob' });
  for (let i = 0; i < 7; i++) await ws.next(i < 5 ? 'ok' : 'error', 1);
  await new Promise((r) => setImmediate(r));
  // Replies may come in any order (docs/PROTOCOL.md, section 1): by id.
  const answers = ws.frames.filter((f) => typeof f.id === 'number' && (f.id as number) >= 10).sort((a, b) => (a.id as number) - (b.id as number));
  t.deepEqual(answers.map((f) => f.op), ['ok', 'ok', 'ok', 'ok', 'ok', 'error', 'error']);
  t.like(answers[5], { code: 'rate_limited' });
  t.is(ws.frames.length, 8, 'the notice without an id over the limit is dropped without a word');
  t.is(homes.calls.filter((c) => c.fn === 'typing').length, 5);
  await clock.advance(500);
  ws.client({ op: 'typing', id: 20, to: 'bob' });
  t.like(await ws.next('ok', 8), { id: 20 }, 'a second later, one more');
});

test('unwatch before any watch is ok, and a connection that never watched asks no home to unwatch when it closes', async (t) => {
  const homes = memoryHomes();
  const { connect } = setup(homes);
  const ws = await loggedIn(connect);
  ws.client({ op: 'unwatch', id: 2, users: ['bob'] });
  t.like(await ws.next('ok'), { id: 2 });
  ws.emit('close');
  await new Promise((r) => setImmediate(r));
  t.is(homes.calls.filter((c) => c.fn === 'unwatch').length, 1, 'only the explicit unwatch');
});

test('catchUp replays what a connection lacks from its home, live pushes meanwhile go behind it, each seq once', async (t) => {
  const entry = (seq: number) => ({ mid: `m${seq}`, seq, conv: 'bob', from: 'bob', to: 'alice', ts: 1000 + seq, body: `b${seq}` });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const syncs: number[] = [];
  const homes = memoryHomes({
    sync: async (_user: string, after: number) => {
      syncs.push(after);
      if (syncs.length === 1) return { msgs: [], more: false }; // the replay after login
      await gate;
      return { msgs: [2, 3, 4, 5].filter((s) => s > after).map(entry), more: false };
    },
  } as Partial<Homes>);
  const { gw, connect } = setup(homes);
  const ws = await loggedIn(connect);
  await new Promise((r) => setImmediate(r));
  const conn = gw.sessions()[0]!.conn;
  gw.push(conn, { op: 'msg', ...entry(1) });
  gw.push(conn, { op: 'msg', ...entry(1) }); // a repeat: dropped
  gw.catchUp(conn, 1); // nothing lacking: no read
  t.deepEqual(syncs, [0]);
  gw.catchUp(conn, 4);
  gw.catchUp(conn, 4); // already catching up: no second read
  t.deepEqual(syncs, [0, 1]);
  gw.push(conn, { op: 'msg', ...entry(5) }); // live, while the read is under way: held back
  gw.push(conn, { op: 'msg', ...entry(6) });
  t.deepEqual(ws.frames.filter((f) => f.op === 'msg').map((f) => f.seq), [1]);
  release();
  const seqs = () => ws.frames.filter((f) => f.op === 'msg').map((f) => f.seq);
  for (let i = 0; i < 50 && seqs().length < 6; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(seqs(), [1, 2, 3, 4, 5, 6]);
});

test('a catch-up whose read fails closes the connection (1011), so the client logs in again and replays', async (t) => {
  let n = 0;
  const homes = memoryHomes({
    sync: async () => {
      if (++n === 1) return { msgs: [], more: false };
      throw new UnavailableError('the home is moving');
    },
  } as Partial<Homes>);
  const { gw, connect } = setup(homes);
  const ws = await loggedIn(connect);
  await new Promise((r) => setImmediate(r));
  gw.catchUp(gw.sessions()[0]!.conn, 3);
  for (let i = 0; i < 50 && !ws.closedWith; i++) await new Promise((r) => setImmediate(r));
  t.like(ws.closedWith, { code: 1011, reason: 'catch-up failed' });
});

test('a push past the next seq fills the gap from the home first; a home that lacks the entries too costs one read, not a loop', async (t) => {
  const entry = (seq: number) => ({ mid: `m${seq}`, seq, conv: 'bob', from: 'bob', to: 'alice', ts: 1000 + seq, body: `b${seq}` });
  let has = [1, 2, 3];
  const syncs: number[] = [];
  const homes = memoryHomes({
    sync: async (_user: string, after: number) => {
      syncs.push(after);
      return { msgs: syncs.length === 1 ? [] : has.filter((s) => s > after).map(entry), more: false };
    },
  } as Partial<Homes>);
  const { gw, connect } = setup(homes);
  const ws = await loggedIn(connect);
  await new Promise((r) => setImmediate(r));
  const conn = gw.sessions()[0]!.conn;
  const seqs = () => ws.frames.filter((f) => f.op === 'msg').map((f) => f.seq);
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  gw.push(conn, { op: 'msg', ...entry(1) });
  gw.push(conn, { op: 'msg', ...entry(3) }); // 2 never came
  await settle();
  t.deepEqual(seqs(), [1, 2, 3]);
  t.deepEqual(syncs, [0, 1], 'one read, from the last seq pushed');
  // The home lacks 4 as well (it is not readable there yet): 5 goes out after one read.
  has = [1, 2, 3, 5];
  gw.push(conn, { op: 'msg', ...entry(5) });
  await settle();
  t.deepEqual(seqs(), [1, 2, 3, 5]);
  t.deepEqual(syncs, [0, 1, 3]);
  t.is(ws.closedWith, undefined);
});
