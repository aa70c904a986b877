// The replicator with a real store and a stand-in for the peer link and the ring: what a home
// commits reaches its replica in order and a write is confirmed only on the replica's answer; a
// refusing replica is asked again after RETRY_MS; stopping ends every retry and answers the wait.
import test from 'ava';
import { pino } from 'pino';
import { dm, openStore, removeStores } from '../helpers/store.ts';
import { createReplicator } from '../../src/replica/replicator.ts';
import type { Replicator } from '../../src/replica/replicator.ts';
import { ManualClock } from '../../src/clock/index.ts';
import { COPY_DEADLINE_MS, RETRY_MS } from '../../src/channel/timing.ts';
import { validatePage } from '../../src/protocol/peer.ts';
import type { PeerRequest } from '../../src/protocol/peer.ts';
import type { Ring } from '../../src/ring/index.ts';
import type { Store } from '../../src/store/index.ts';

test.after.always(removeStores);

const log = pino({ level: 'silent' });
/** Two nodes: `home` is every user's home, `replica` their one replica. */
const ring = { replicas: 2, owner: () => 'home', owners: () => ['home', 'replica'], has: () => true } as unknown as Ring;

/** Lets promise chains and store I/O run until `ok()` holds (real time: the manual clock only
 * drives the replicator's pauses). */
async function until(ok: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
  if (!ok()) throw new Error(`never: ${what}`);
}

type Answer = (msg: Extract<PeerRequest, { t: 'replicate' }>) => Promise<unknown>;

/** A home whose store commits go to a replicator, and a replica node (its own store and
 * replicator) behind a stand-in request function that hands each page to `answer`. */
async function pair(opts: { clock?: ManualClock; signal?: AbortSignal } = {}) {
  const { s: replicaStore } = await openStore();
  const replica = createReplicator({
    self: 'replica', store: replicaStore, ring: () => ring, joined: () => true, peerOf: (n) => n,
    request: () => Promise.reject(new Error('a replica sends nothing here')), ringChange: () => new Promise(() => undefined), log,
  });
  const requests: Extract<PeerRequest, { t: 'replicate' }>[] = [];
  // What the replica's node does with a replicate request: validate the page, then apply it.
  const applied: Answer = (msg) => replica.apply('home', validatePage(msg.page, 65536));
  const link = { answer: applied };
  let home: Replicator | undefined;
  const { s: homeStore } = await openStore({ onCommit: (entries, changed) => home!.committed(entries, changed) });
  home = createReplicator({
    self: 'home', store: homeStore, ring: () => ring, joined: () => true, peerOf: (n) => `addr-${n}`,
    request: (peer, msg) => {
      if (peer !== 'addr-replica' || msg.t !== 'replicate') throw new Error(`unexpected request to ${peer}`);
      requests.push(msg);
      return link.answer(msg);
    },
    // The ring never changes here: a failed batch waits for the clock.
    ringChange: () => new Promise(() => undefined),
    log, ...opts,
  });
  return { home, homeStore, replicaStore, requests, link, applied };
}

/** Commits one DM from alice to bob at the home. */
async function send(s: Store) {
  const items = dm('alice', 'bob');
  await s.append(items).durable;
  return items[0]!.mid;
}

/** The mids of a user's timeline in a store. */
const mids = async (s: Store, user: string) => (await s.sync(user, 0, 100)).entries.map((e) => e.mid);

test('a committed entry goes to the replica, and wait resolves only once the replica answered', async (t) => {
  const p = await pair();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  p.link.answer = async (msg) => {
    await gate;
    return p.applied(msg);
  };
  const mid = await send(p.homeStore);
  let confirmed = false;
  const waited = p.home.wait('alice').then(() => (confirmed = true));
  await until(() => p.requests.length === 1, 'the batch on the wire');
  // The first commit's first user went at once; the next waits behind it (one batch in flight).
  const page = validatePage(p.requests[0]!.page, 65536);
  t.deepEqual(page.entries.map((e) => [e.user, e.mid]), [['alice', mid]]);
  t.deepEqual(p.home.progress(), { replica: { queued: 1, inflight: 1, deferred: 0, behind: 0 } });
  await new Promise((r) => setTimeout(r, 50));
  t.is(p.requests.length, 1);
  t.false(confirmed, 'no confirmation before the replica answered');
  release();
  await waited;
  t.deepEqual(await mids(p.replicaStore, 'alice'), [mid]);
  await p.home.wait('bob'); // then bob's batch, answered in turn
  t.deepEqual(await mids(p.replicaStore, 'bob'), [mid]);
  t.is(p.requests.length, 2);
  t.is(p.home.pending(), 0);
  t.is(p.home.behind(), 0);
  await Promise.all([p.homeStore.close(), p.replicaStore.close()]);
});

test('a refusing replica is asked again after RETRY_MS on the clock, and then the write is confirmed', async (t) => {
  const clock = new ManualClock();
  const p = await pair({ clock });
  // The first batch (alice's) is refused for every user in it (the replica's ring disagrees for now).
  p.link.answer = async (msg) => {
    p.link.answer = p.applied;
    const users = [...new Set([...msg.page.users.map((u) => u.user), ...msg.page.entries.map((e) => e.user)])];
    return { t: 'done', value: { gaps: {}, refused: users } };
  };
  const mid = await send(p.homeStore);
  let confirmed = false;
  const waited = p.home.wait('alice').then(() => (confirmed = true));
  // On the clock: the pause before asking again, and the deadline of alice's waiting write.
  await until(() => clock.waiting === 2 && p.requests.length === 2 && p.home.pending() === 1, 'alice waiting to be asked again, bob in');
  t.deepEqual(p.home.progress(), { replica: { queued: 0, inflight: 0, deferred: 1, behind: 1 } });
  await clock.advance(RETRY_MS - 1);
  await new Promise((r) => setTimeout(r, 20));
  t.is(p.requests.length, 2, 'not asked again before RETRY_MS');
  t.false(confirmed);
  await clock.advance(1);
  await waited;
  t.is(p.requests.length, 3);
  t.deepEqual(validatePage(p.requests[2]!.page, 65536).entries.map((e) => [e.user, e.mid]), [['alice', mid]]);
  t.deepEqual(await mids(p.replicaStore, 'alice'), [mid]);
  t.deepEqual(await mids(p.replicaStore, 'bob'), [mid]);
  t.is(p.home.behind(), 0);
  t.is(p.home.pending(), 0);
  await Promise.all([p.homeStore.close(), p.replicaStore.close()]);
});

test('aborting the signal ends the retry loop and answers the waiting write unavailable', async (t) => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const p = await pair({ clock, signal: stop.signal });
  p.link.answer = () => Promise.reject(new Error('replica unreachable'));
  await send(p.homeStore);
  const waited = p.home.wait('alice');
  // A failed batch is put back and the queue pauses RETRY_MS before it tries again (on the clock
  // too: the waiting write's deadline).
  await until(() => p.requests.length === 1 && clock.waiting === 2, 'the first attempt failed, pausing');
  await clock.advance(RETRY_MS);
  await until(() => p.requests.length === 2 && clock.waiting === 2, 'the second attempt failed, pausing');
  t.deepEqual(validatePage(p.requests[1]!.page, 65536).entries.map((e) => e.user).sort(), ['alice', 'bob']);
  t.is(p.home.behind(), 2);
  stop.abort();
  const e = await t.throwsAsync(waited);
  t.is(e?.name, 'UnavailableError');
  await until(() => clock.waiting === 0, 'the pause ended');
  await clock.advance(60_000);
  await new Promise((r) => setTimeout(r, 50));
  t.is(p.requests.length, 2, 'nothing asks again once stopped');
  t.is(clock.waiting, 0);
  // A write after the stop is not confirmed either; its commit is queued but not sent.
  await send(p.homeStore);
  await t.throwsAsync(p.home.wait('alice'), { name: 'UnavailableError' });
  await new Promise((r) => setTimeout(r, 50));
  t.is(p.requests.length, 2);
  await Promise.all([p.homeStore.close(), p.replicaStore.close()]);
});

test('a write its replica never acknowledges is unavailable at the deadline on the clock, not before', async (t) => {
  const clock = new ManualClock();
  const p = await pair({ clock });
  // The replica takes the batch but never answers.
  p.link.answer = () => new Promise(() => undefined);
  await send(p.homeStore);
  let failed: Error | undefined;
  const waited = p.home.wait('alice').catch((e: Error) => (failed = e));
  await until(() => p.requests.length === 1 && clock.waiting === 1, 'the batch on the wire, the write waiting');
  await clock.advance(COPY_DEADLINE_MS - 1);
  await new Promise((r) => setTimeout(r, 20));
  t.is(failed, undefined, 'still waiting just before the deadline');
  await clock.advance(1);
  await waited;
  t.is(failed?.name, 'UnavailableError');
  t.regex(failed!.message, /did not confirm in time/);
  t.is(clock.waiting, 0, 'nothing left on the clock');
  await Promise.all([p.homeStore.close(), p.replicaStore.close()]);
});
