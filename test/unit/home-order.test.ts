// The home's per-sender order across its two ways out (1:1 copies straight to the recipient's
// home, group posts through the group's home), made deterministic: the peers are stand-ins whose
// answers the test releases, so the interleavings that once needed a loaded CPU happen on cue.
import test from 'ava';
import type { Delivery, GroupPost, PostResult } from '../../src/protocol/peer.ts';
import { UnavailableError } from '../../src/protocol/errors.ts';
import { homeOnStore, removeStores } from '../helpers/store.ts';
import { until } from '../helpers/node.ts';

test.after.always(removeStores);

type Gate = { open(): void; wait: Promise<void> };
const gate = (): Gate => {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { open, wait };
};

type Home = Awaited<ReturnType<typeof homeOnStore>>['home'];

/** The group's home, standing in: it fans out, so bob's copy lands, and alice's own copy (her
 * dedup entry) is written at her home. */
async function fanOut(home: Home, posts: GroupPost[], landed: string[]): Promise<PostResult[]> {
  for (const p of posts) landed.push(p.body);
  await home.deliverFan(posts.map((p) => ({ mid: p.mid, conv: 'g:team', from: p.from, group: 'team', body: p.body, ts: p.ts, users: [p.from], cid: p.cid })));
  return posts.map((p) => ({ mid: p.mid }));
}

/** A handoff pauses alice's writes for 100 ms, as while a newcomer copies her. */
function pauseAlice(home: Home): void {
  const pause = home.freeze((u) => u === 'alice', 60_000);
  setTimeout(() => pause.release(), 100);
}

/** A home of `alice` on a cluster where bob and the group live on other nodes (stand-ins). */
async function setup(o: { postFails?: number } = {}) {
  const landed: string[] = [];
  const postGate = gate();
  let postFails = o.postFails ?? 0;
  const { home, store } = await homeOnStore({
    owns: (u) => u === 'alice',
    replicating: () => true,
    deliverRemote: async (d: Delivery) => {
      landed.push(d.body);
    },
    postGroup: async (_group: string, posts: GroupPost[]): Promise<PostResult[]> => {
      await postGate.wait;
      if (postFails > 0) {
        postFails--;
        throw new UnavailableError('the group home did not answer in time');
      }
      return fanOut(home, posts, landed);
    },
  });
  return { home, landed, postGate, store };
}

test('a 1:1 copy waiting behind a group post is not handed over early by the outbox replay', async (t) => {
  const { home, landed, postGate } = await setup();
  const g = home.sendGroup('alice', 'team', 'c1', 'g1');
  const d = home.send('alice', 'bob', 'c2', 'd2');
  // The copy of d2 is in the outbox, waiting for g1; the replay timer fires meanwhile.
  await new Promise((r) => setTimeout(r, 50));
  const replay = await home.replayOutbox();
  t.deepEqual(replay, { delivered: 0, failed: 0 }, 'the replay leaves a copy that is on its way');
  t.deepEqual(landed, [], 'nothing overtook the group post');
  postGate.open();
  await Promise.all([g, d]);
  t.deepEqual(landed, ['g1', 'd2']);
});

test('a group post that fails with unavailable is tried again in its place, and the 1:1 copy behind it waits', async (t) => {
  const { home, landed, postGate } = await setup({ postFails: 2 });
  const g = home.sendGroup('alice', 'team', 'c1', 'g1');
  const d = home.send('alice', 'bob', 'c2', 'd2');
  postGate.open();
  const [gr, dr] = await Promise.all([g, d]);
  t.true(gr.seq > 0 && dr.seq > 0, 'both are answered sent');
  t.deepEqual(landed, ['g1', 'd2'], 'the copy did not go ahead of the failed post');
});

test('a resent 1:1 cid keeps its copy behind the group posts made before it', async (t) => {
  const { home, landed, postGate } = await setup();
  const g = home.sendGroup('alice', 'team', 'c1', 'g1');
  const d = home.send('alice', 'bob', 'c2', 'd2');
  const again = home.send('alice', 'bob', 'c2', 'd2');
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(landed, []);
  postGate.open();
  const [, first, second] = await Promise.all([g, d, again]);
  t.is(second.mid, first.mid);
  t.deepEqual(landed, ['g1', 'd2'], 'the copy went once, after the post');
});

test('a copy whose replicas did not confirm in time is handed over again before the sender\'s next copy', async (t) => {
  // The first wait for alice's replicas fails (the confirmation timed out); every later one
  // passes at once. The second send's copy must not reach bob's home ahead of the first's.
  const landed: string[] = [];
  let waits = 0;
  const { home } = await homeOnStore({
    owns: (u) => u === 'alice',
    replicating: () => true,
    replicated: () => (++waits === 1
      ? new Promise<void>((_, ko) => setTimeout(() => ko(new UnavailableError('the replicas of alice did not confirm in time')), 50))
      : Promise.resolve()),
    deliverRemote: async (d: Delivery) => {
      landed.push(d.body);
    },
  });
  const first = home.send('alice', 'bob', 'c1', 'd1');
  const second = home.send('alice', 'bob', 'c2', 'd2');
  await t.throwsAsync(first, { name: 'UnavailableError' }, 'the first send is not confirmed: its client sends it again');
  t.true((await second).seq > 0);
  t.deepEqual(landed, ['d1', 'd2'], 'the first copy went again, ahead of the second');
  const again = await home.send('alice', 'bob', 'c1', 'd1');
  t.true(again.dup, 'the resend finds the first entry');
  t.deepEqual(landed, ['d1', 'd2', 'd1'], 'its copy is handed over again (idempotent at bob\'s home)');
});

test('a copy that fails while a handoff pauses the sender\'s writes is tried again, ahead of the sender\'s next copy', async (t) => {
  // d1 is inside the router when bob's home gives it back (its deadline passed), during a pause
  // of alice's writes (a newcomer is copying her). d2, made before the pause, is still waiting for
  // alice's replicas. Were d1 given up to the replay timer, d2 would reach bob first.
  const landed: string[] = [];
  let refuse = 1;
  let waits = 0;
  const { home } = await homeOnStore({
    owns: (u) => u === 'alice',
    replicating: () => true,
    replicated: () => (++waits === 2 ? new Promise<void>((r) => setTimeout(r, 200)) : Promise.resolve()),
    deliverRemote: async (d: Delivery) => {
      if (d.body === 'd1' && refuse > 0) {
        refuse--;
        pauseAlice(home);
        throw new UnavailableError("bob's home did not answer in time");
      }
      landed.push(d.body);
    },
  });
  const first = home.send('alice', 'bob', 'c1', 'd1');
  const second = home.send('alice', 'bob', 'c2', 'd2');
  const [a, b] = await Promise.all([first, second]);
  t.true(a.seq > 0 && b.seq > 0, 'both are answered sent');
  t.deepEqual(landed, ['d1', 'd2'], 'd1 was tried again in its place');
});

test('a group post refused while a handoff pauses the sender\'s writes is posted again before the group\'s next post', async (t) => {
  // g1's batch is refused by the group's home during a pause of alice's writes; g2 waits behind
  // it. Were g1 given up (alice's client would send it again later), g2 would reach the group first.
  const landed: string[] = [];
  let refuse = 1;
  let taken = 0;
  const inFlight = gate();
  const bothTaken = gate();
  const { home } = await homeOnStore({
    owns: (u) => u === 'alice',
    replicating: () => true,
    onSent: () => {
      if (++taken === 2) bothTaken.open();
    },
    deliverRemote: async (d: Delivery) => {
      landed.push(d.body);
    },
    postGroup: async (_group: string, posts: GroupPost[]): Promise<PostResult[]> => {
      if (refuse > 0) {
        refuse--;
        inFlight.open();
        await bothTaken.wait; // g2 is taken behind g1, before the pause
        pauseAlice(home);
        throw new UnavailableError('the group home did not answer in time');
      }
      return fanOut(home, posts, landed);
    },
  });
  const g1 = home.sendGroup('alice', 'team', 'c1', 'g1');
  await inFlight.wait; // g1's batch is out: g2 goes in the next one
  const g2 = home.sendGroup('alice', 'team', 'c2', 'g2');
  const [a, b] = await Promise.all([g1, g2]);
  t.true(a.seq > 0 && b.seq > 0, 'both are answered sent');
  t.deepEqual(landed, ['g1', 'g2'], 'g1 was posted again in its place');
});

test('a copy waiting again for its replicas still waits for the group post made before it', async (t) => {
  // g1 is in flight to the group's home; d2's first wait for alice's replicas fails, and the
  // second passes while g1 is still out. d2's copy must not reach bob ahead of g1.
  const landed: string[] = [];
  const postGate = gate();
  let failNext = false;
  let failed = false;
  const rewaited = gate();
  const { home } = await homeOnStore({
    owns: (u) => u === 'alice',
    replicating: () => true,
    replicated: () => {
      if (!failNext) {
        if (failed) rewaited.open(); // a wait after the failed one: d2's copy waiting again
        return Promise.resolve();
      }
      failNext = false;
      failed = true;
      return new Promise<void>((_, ko) => setTimeout(() => ko(new UnavailableError('the replicas of alice did not confirm in time')), 20));
    },
    deliverRemote: async (d: Delivery) => {
      landed.push(d.body);
    },
    postGroup: async (_group: string, posts: GroupPost[]): Promise<PostResult[]> => {
      await postGate.wait;
      return fanOut(home, posts, landed);
    },
  });
  const g = home.sendGroup('alice', 'team', 'c1', 'g1');
  failNext = true;
  const d = home.send('alice', 'bob', 'c2', 'd2');
  d.catch(() => undefined);
  await rewaited.wait; // d2's copy waited again and its replicas confirmed
  await new Promise((r) => setTimeout(r, 50)); // time for it to overtake, were it free to
  t.deepEqual(landed, [], 'nothing overtook the group post');
  postGate.open();
  await g;
  await until(() => landed.length >= 2, "d2's copy to be handed over");
  t.deepEqual(landed, ['g1', 'd2']);
});
