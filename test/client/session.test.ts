// The SDK's resilient session (src/client/session.ts) against real nodes: gap repair, batched
// acks, resend after a lost connection, a node killed and a node leaving under a sending client,
// a replaced device and a refused login. The session runs on Node's global WebSocket, as an app's
// would; faults in transit come from a WebSocket subclass that drops chosen frames.
import test from 'ava';
import { ImSession } from '../../src/client/index.ts';
import type { Entry, SentReply } from '../../src/client/index.ts';
import { cleanup, readAll, startNode, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';

test.after.always(cleanup);

const sessions: ImSession[] = [];
test.afterEach.always(() => {
  for (const s of sessions.splice(0)) s.close();
});

const uid = (p: string) => `${p}${Math.random().toString(36).slice(2, 8)}`;

function session(urls: string[], user: string, opts: Partial<ConstructorParameters<typeof ImSession>[0]> = {}): ImSession {
  const s = new ImSession({ urls, token: () => token(user), device: 'sdk', since: 0, ...opts });
  sessions.push(s);
  return s;
}

/** Collects a session's messages and checks each arrives once, in seq order, with no gap. */
function collect(s: ImSession): Entry[] {
  const got: Entry[] = [];
  s.on('message', (e) => got.push(e));
  return got;
}
const contiguous = (es: Entry[]) => es.every((e, i) => e.seq === (es[0]?.seq ?? 1) + i);

/** A global WebSocket that loses chosen incoming frames and counts the frames it sends, by op. */
function faulty(drop: (frame: { op?: string; seq?: number }) => boolean, sent: Map<string, number>) {
  return class extends WebSocket {
    override addEventListener(type: string, fn: (ev: any) => void): void {
      if (type !== 'message') return super.addEventListener(type, fn);
      super.addEventListener('message', (ev: MessageEvent) => {
        if (typeof ev.data === 'string' && drop(JSON.parse(ev.data) as { op?: string; seq?: number })) return;
        fn(ev);
      });
    }
    override send(data: string): void {
      const op = (JSON.parse(data) as { op: string }).op;
      sent.set(op, (sent.get(op) ?? 0) + 1);
      super.send(data);
    }
  };
}

let one: TestNode;
test.before(async () => {
  one = await startNode();
});

test.serial('a push lost on the way is fetched with sync: the app sees every seq once, in order', async (t) => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sent = new Map<string, number>();
  const lost = new Set([3, 7, 8]);
  const WS = faulty((f) => f.op === 'msg' && f.seq !== undefined && lost.delete(f.seq), sent);
  const b = session([one.url], bob, { WebSocket: WS });
  const got = collect(b);
  await b.ready();
  const a = session([one.url], alice);
  for (let i = 1; i <= 10; i++) await a.sendTo(bob, `m${i}`);
  await until(() => got.length >= 10, 'bob to see 10 messages', 10_000);
  t.deepEqual(got.map((e) => e.body), Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
  t.true(contiguous(got));
  t.is(lost.size, 0, 'the three pushes were dropped in transit');
  t.true((sent.get('sync') ?? 0) >= 1, 'the gaps were filled with sync');
});

test.serial('acks go in batches and move the device cursor: a new login replays nothing', async (t) => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sent = new Map<string, number>();
  const b = session([one.url], bob, { WebSocket: faulty(() => false, sent), ackDelayMs: 200 });
  const got = collect(b);
  await b.ready();
  const a = session([one.url], alice);
  await Promise.all(Array.from({ length: 200 }, (_, i) => a.sendTo(bob, `m${i}`)));
  await until(() => got.length === 200, 'bob to see 200 messages', 15_000);
  await until(() => b.seq === 200 && (sent.get('ack') ?? 0) > 0, 'an ack', 5000);
  await new Promise((r) => setTimeout(r, 400)); // the last batch
  const acks = sent.get('ack') ?? 0;
  t.true(acks >= 1 && acks <= 40, `${acks} ack frames for 200 messages`);
  b.close();
  const again = session([one.url], bob, { since: 'acked' });
  const replayed = collect(again);
  await again.ready();
  t.is(again.welcome?.acked, 200, 'the cursor is at the last seq delivered');
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(replayed, [], 'nothing is replayed to the device again');
});

test.serial('sends survive dropped connections: resent with their cid, in order, stored once', async (t) => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const a = session([one.url], alice, { window: 16 });
  await a.ready();
  const resends: string[] = [];
  a.on('send', (p) => p.state === 'resending' && resends.push(p.cid));
  const replies: Promise<SentReply>[] = [];
  for (let round = 0; round < 3; round++) {
    // Live again after the last drop: the sends go on the wire as they are made (a window of
    // them), and the network fails before any answer can come back (no turn of the event loop
    // in between), so every round has sends to resend, however loaded the machine.
    await until(() => a.state.state === 'live', 'the session to be live again', 20_000);
    for (let i = round * 40; i < (round + 1) * 40; i++) replies.push(a.sendTo(bob, `m${i}`));
    a.drop();
  }
  const done = await Promise.all(replies);
  t.is(done.length, 120);
  t.true(resends.length > 0, 'some sends were resent after a drop');
  // The sender's own seqs grow with the send order, and the recipient's timeline has each once, in order.
  t.true(done.every((r, i) => i === 0 || r.seq > done[i - 1]!.seq), 'sender seqs follow the send order');
  const { c } = await one.login(bob, 'check');
  const tl = (await readAll(c)).filter((e) => e.from === alice);
  t.deepEqual(tl.map((e) => e.body), Array.from({ length: 120 }, (_, i) => `m${i}`));
});

test.serial('a second login of the same device replaces the session, which stops; a refused login stops too', async (t) => {
  const alice = uid('alice');
  const first = session([one.url], alice, { device: 'phone' });
  await first.ready();
  const second = session([one.url], alice, { device: 'phone' });
  await second.ready();
  await until(() => first.state.state === 'closed', 'the first session to close', 5000);
  t.regex(first.state.reason ?? '', /replaced/);
  t.is(second.state.state, 'live');
  await t.throwsAsync(first.sendTo('bob', 'x'), { message: /closed/ });

  const errors: Error[] = [];
  const bad = session([one.url], alice, { token: 'not-a-token' });
  bad.on('error', (e) => errors.push(e));
  await t.throwsAsync(bad.ready(), { message: /login refused/ });
  t.is(bad.state.state, 'closed');
  t.true(errors.some((e) => /unauthenticated/.test(e.message)));
});

/** One sender session, one receiver session, on a 3-node cluster; `fault` strikes the sender's node mid-stream. */
async function underFault(t: import('ava').ExecutionContext, fault: (n: TestNode) => Promise<unknown>): Promise<void> {
  const cluster = await startCluster(3);
  const urls = cluster.nodes.map((n) => n.url);
  const [alice, bob] = [uid('alice'), uid('bob')];
  const a = session(urls, alice, { window: 8 });
  const b = session(urls, bob);
  const got = collect(b);
  const states: string[] = [];
  const bStates: string[] = [];
  a.on('state', (s) => states.push(`${s.state}${s.node ? `@${s.node}` : ''}`));
  b.on('state', (s) => bStates.push(`${s.state}${s.node ? `@${s.node}` : ''}`));
  await Promise.all([a.ready(), b.ready()]);
  const victim = cluster.nodes.find((n) => n.opts.name === a.state.node)!;
  const N = 150;
  const replies: Promise<SentReply>[] = [];
  for (let i = 0; i < N; i++) {
    replies.push(a.sendTo(bob, `m${i}`));
    if (i === 50) void fault(victim);
    await new Promise((r) => setTimeout(r, 10));
  }
  const done = await Promise.all(replies);
  t.is(done.length, N, 'every send was confirmed');
  t.not(a.state.node, victim.opts.name, 'the sender moved to another node');
  await until(() => got.filter((e) => e.from === alice).length >= N, () => `bob to get ${N} (has ${got.length}; victim ${victim.opts.name}; bob's states ${bStates.join(' → ')}; alice's ${states.join(' → ')})`, 30_000);
  const mine = got.filter((e) => e.from === alice);
  t.deepEqual(mine.map((e) => e.body), Array.from({ length: N }, (_, i) => `m${i}`), 'the receiver saw each once, in order');
  t.true(contiguous(got), 'the receiver saw no gap');
  // And the timeline itself, read afresh from a surviving node.
  const live = cluster.live()[0]!;
  const { c } = await live.login(bob, 'check');
  const tl = (await readAll(c)).filter((e) => e.from === alice);
  t.deepEqual(tl.map((e) => e.body), mine.map((e) => e.body));
  t.log(`sender states: ${states.join(' → ')}`);
}

test.serial('a node killed under a sending client: nothing lost, nothing twice, order kept', async (t) => {
  await underFault(t, (n) => n.kill());
});

test.serial('a node leaving under a sending client: nothing lost, nothing twice, order kept', async (t) => {
  await underFault(t, (n) => n.stop());
});
