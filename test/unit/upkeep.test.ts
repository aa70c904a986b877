// Session upkeep on the gateway side: renewals name the connections held, per home, in pages
// that fit a peer frame; what a home lacks is registered again, in pages too; a connection the
// home answers a newer seq for than it was pushed is caught up.
import test from 'ava';
import pino from 'pino';
import { createRing } from '../../src/ring/index.ts';
import { createUpkeep } from '../../src/gateway/upkeep.ts';
import type { Home, Homes } from '../../src/home/home.ts';
import type { SessionRef } from '../../src/presence/index.ts';
import { PEER_BUDGET_CHARS } from '../../src/protocol/peer.ts';
import type { PeerRequest } from '../../src/protocol/peer.ts';

function setup(n: number) {
  const ring = createRing(['n1', 'n2']);
  const sessions: SessionRef[] = [];
  for (let i = 0; sessions.length < n; i++) {
    sessions.push({ user: `user-with-a-longish-name-${i}`, device: `device-${i % 7}`, gateway: 'n1', conn: `c${i}` });
  }
  const sent: PeerRequest[] = [];
  const localRenewed: string[] = [];
  const localRegistered: SessionRef[] = [];
  let lacks = new Set<string>();
  const home = {
    tick() {},
    renew(_gw: string, conns: string[]) {
      localRenewed.push(...conns);
      return conns.filter((c) => lacks.has(c));
    },
    register(list: SessionRef[]) {
      localRegistered.push(...list);
      return list.map((s) => [s.conn, seqOf(s.conn)]);
    },
  } as unknown as Home;
  // The seq each home answers per connection (0 unless set), and the catch-ups asked for.
  const seqs = new Map<string, number>();
  const seqOf = (conn: string) => seqs.get(conn) ?? 0;
  const caughtUp: Array<[string, number]> = [];
  let answer = (page: SessionRef[]): unknown => page.map((s) => [s.conn, seqOf(s.conn)]);
  const upkeep = createUpkeep({
    self: 'n1', ring: () => ring, peerOf: (name) => (name === 'n2' ? 'peer-n2' : undefined),
    request: async (_peer, msg) => {
      sent.push(msg);
      if (msg.t === 'renew') return { t: 'done', value: msg.conns.filter((c) => lacks.has(c)) };
      return { t: 'done', value: msg.t === 'register' ? answer(msg.sessions) : 0 };
    },
    home, homes: {} as Homes, sessions: () => sessions, watches: () => [], log: pino({ level: 'silent' }),
    catchUp: (conn, seq) => caughtUp.push([conn, seq]),
  });
  const remote = sessions.filter((s) => ring.owner(s.user) === 'n2');
  return {
    upkeep, sessions, sent, localRenewed, localRegistered, remote, seqs, caughtUp,
    lack: (s: Set<string>) => (lacks = s), answerWith: (f: typeof answer) => (answer = f),
  };
}

test('30,000 sessions are renewed in pages that fit a peer frame, each connection once', async (t) => {
  const { upkeep, sent, localRenewed, remote, sessions } = setup(30_000);
  await upkeep.renew();
  const renews = sent.filter((m): m is Extract<PeerRequest, { t: 'renew' }> => m.t === 'renew');
  t.true(renews.length > 1, 'more than one page');
  for (const m of renews) t.true(JSON.stringify(m).length <= PEER_BUDGET_CHARS);
  const conns = renews.flatMap((m) => m.conns);
  t.deepEqual(new Set(conns), new Set(remote.map((s) => s.conn)));
  t.is(conns.length, remote.length);
  t.is(localRenewed.length, sessions.length - remote.length);
  t.false(sent.some((m) => m.t === 'register'), 'nothing registered when the home has every session');
});

test('sessions a home lacks are registered again in pages; a closed one is not', async (t) => {
  const { upkeep, sent, remote, sessions, localRegistered, lack } = setup(30_000);
  const local = sessions.filter((s) => !remote.includes(s));
  // The remote home lost everything (it restarted); the local one lacks one session.
  lack(new Set([...remote.map((s) => s.conn), local[0]!.conn]));
  // One remote connection closed since: its session must not come back.
  const closed = remote.at(-1)!;
  sessions.splice(sessions.indexOf(closed), 1);
  await upkeep.renew();
  const regs = sent.filter((m): m is Extract<PeerRequest, { t: 'register' }> => m.t === 'register');
  t.true(regs.length > 1, 'more than one page');
  for (const m of regs) t.true(JSON.stringify(m).length <= PEER_BUDGET_CHARS);
  const got = regs.flatMap((m) => m.sessions.map((s) => s.conn));
  t.is(got.length, remote.length - 1);
  t.false(got.includes(closed.conn));
  t.deepEqual(localRegistered.map((s) => s.conn), [local[0]!.conn]);
});

test('after a ring change every session is registered with its home in pages', async (t) => {
  const { upkeep, sent, remote } = setup(30_000);
  await upkeep.ringChanged();
  const regs = sent.filter((m): m is Extract<PeerRequest, { t: 'register' }> => m.t === 'register');
  t.true(regs.length > 1);
  for (const m of regs) t.true(JSON.stringify(m).length <= PEER_BUDGET_CHARS);
  t.is(regs.flatMap((m) => m.sessions).length, remote.length);
});

test('the seq each home answers a registration with reaches catchUp, for local and remote homes alike', async (t) => {
  const { upkeep, sessions, remote, seqs, caughtUp } = setup(50);
  const local = sessions.filter((s) => !remote.includes(s));
  seqs.set(remote[0]!.conn, 17);
  seqs.set(local[0]!.conn, 4);
  await upkeep.ringChanged();
  const got = new Map(caughtUp);
  t.is(got.size, sessions.length, 'every registered connection is checked');
  t.is(got.get(remote[0]!.conn), 17);
  t.is(got.get(local[0]!.conn), 4);
  t.is(got.get(remote[1]!.conn), 0);
});

test('a malformed registration answer from a peer catches nothing up and throws nothing', async (t) => {
  const { upkeep, caughtUp, remote, answerWith } = setup(50);
  for (const bad of [7, 'x', null, [[1, 2]], [['c1', 'nine']], [['c1', 1.5]], [['c1', Number.MAX_VALUE]], [{ conn: 'c1', seq: 3 }]]) {
    answerWith(() => bad);
    caughtUp.length = 0;
    await t.notThrowsAsync(upkeep.ringChanged());
    t.false(caughtUp.some(([conn]) => remote.some((s) => s.conn === conn)), `answer ${JSON.stringify(bad)}`);
  }
});
