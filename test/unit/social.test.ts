// The social role on two homes (alice's and bob's), each on a real store, with stand-ins for the
// rest of the node: the other home is reached directly (copies appended to its store, admissions
// asked of its role), pushes are recorded, and time is a ManualClock.
import test from 'ava';
import { pino } from 'pino';
import { createSocial } from '../../src/social/index.ts';
import type { AdmitKind, ContactInfo, Social } from '../../src/social/index.ts';
import { GATE_STALE_MS, GATE_TTL_MS } from '../../src/social/gate.ts';
import { createMidGenerator, midTime } from '../../src/home/index.ts';
import { ManualClock } from '../../src/clock/index.ts';
import { DEDUP_KEY } from '../../src/store/index.ts';
import type { Store, StoredEntry } from '../../src/store/index.ts';
import type { Refusal } from '../../src/contacts/index.ts';
import type { ServerFrame } from '../../src/protocol/frames.ts';
import { openStore, removeStores } from '../helpers/store.ts';
import { UnavailableError } from '../../src/protocol/errors.ts';

const stores: Store[] = [];
const stops: AbortController[] = [];
test.after.always(async () => {
  for (const s of stops) s.abort();
  for (const s of stores) await s.close();
  await removeStores();
});

type Home = { social: Social; store: Store; pushed: { conn: string; frame: ServerFrame }[] };
type Opts = {
  /** What `revokeEverywhere` does (default: tells the other home at once). */
  revokeEverywhere?: (users: string[]) => Promise<void>;
  /** Wraps the other home's admission (to count the questions, or hold them). */
  admitAt?: (ask: () => Promise<Refusal | undefined>, to: string, from: string, kind: AdmitKind) => Promise<Refusal | undefined>;
  /** Holds the outbox's copies (default: handed over at once). */
  handOver?: (give: () => Promise<void>) => Promise<void>;
  /** Whether a social log is on every copy (default: at once). */
  replicated?: (key: string) => Promise<void>;
};

async function cluster(o: Opts = {}) {
  const clock = new ManualClock(1_700_000_000_000);
  const stop = new AbortController();
  stops.push(stop);
  const homes = new Map<string, Home>();
  const homeOf = (user: string): Home => homes.get(user.replace(/^s:/, ''))!;
  const make = async (user: string, tag: string): Promise<Home> => {
    let social: Social | undefined;
    const { s: store } = await openStore({ onCommit: (entries: StoredEntry[]) => social?.committed(entries) });
    stores.push(store);
    const pushed: Home['pushed'] = [];
    social = createSocial({
      store,
      owns: () => true,
      replicated: o.replicated ?? (async () => undefined),
      nextMid: createMidGenerator(tag, () => clock.now()),
      midTime,
      // The outbox's hand-over: the copy stored on the other side's home, deduplicated by mid.
      handOver: async (_sender, d) => {
        const give = async () => {
          await homeOf(d.user).store.append([{ ...d, dkey: DEDUP_KEY.mid(d.mid) }]).durable;
        };
        await (o.handOver ? o.handOver(give) : give());
      },
      lookup: () => ({ online: false }),
      lastSeen: () => undefined,
      sessions: (u) => [{ user: u, device: 'd1', gateway: 'gw', conn: `${u}-conn` }],
      watchers: () => [],
      push: (_gw, conn, frame) => pushed.push({ conn, frame }),
      relay: async () => undefined,
      infoAnywhere: async (viewer, users) => {
        const out: Record<string, ContactInfo> = {};
        for (const u of users) Object.assign(out, await homeOf(u).social.info(viewer, [u]));
        return out;
      },
      admitAt: (to, from, kind, epoch) => {
        const ask = () => homeOf(to).social.admit(to, from, kind, epoch);
        return o.admitAt ? o.admitAt(ask, to, from, kind) : ask();
      },
      revokeEverywhere: o.revokeEverywhere ?? (async (users) => {
        for (const h of homes.values()) h.social.revoke(users);
      }),
      limits: { maxContacts: 100, maxPending: 100 },
      clock,
      signal: stop.signal,
      log: pino({ level: 'silent' }),
    });
    return { social, store, pushed };
  };
  homes.set('alice', await make('alice', 'AAAAAAAA'));
  homes.set('bob', await make('bob', 'BBBBBBBB'));
  const a = homes.get('alice')!;
  const b = homes.get('bob')!;
  return { a, b, clock, stop };
}

/** Polls (in real time: the stores commit on their own) until `ok` holds. */
async function until(ok: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const stateOf = async (h: Home, user: string, other: string) =>
  (await h.social.contacts(user, undefined, 10)).contacts.find((c) => c.user === other)?.state ?? 'none';

test('a friend request and its accept reach both sides, the copy being the sender\'s own entry', async (t) => {
  const { a, b } = await cluster();
  await a.social.op('alice', { op: 'contact_request', user: 'bob', text: 'hi' });
  t.is(await stateOf(a, 'alice', 'bob'), 'requested');
  await until(async () => (await stateOf(b, 'bob', 'alice')) === 'pending', 'bob to see the request');
  await until(() => b.pushed.some((p) => p.frame.op === 'contact' && p.frame.state === 'pending'), 'bob\'s device to hear of it');
  const theirs = (await b.store.sync('s:bob', 0, 10)).entries.at(-1)!;
  const mine = (await a.store.sync('s:alice', 0, 10)).entries.at(-1)!;
  t.deepEqual([theirs.mid, theirs.body, theirs.from, theirs.ts], [mine.mid, mine.body, mine.from, mine.ts], 'the copy is the last pair entry');

  await b.social.op('bob', { op: 'contact_accept', user: 'alice' });
  t.is(await stateOf(b, 'bob', 'alice'), 'friend');
  await until(async () => (await stateOf(a, 'alice', 'bob')) === 'friend', 'alice to see the accept');
  const page = await a.social.contacts('alice', undefined, 10);
  t.deepEqual(page.contacts.map((c) => [c.user, c.state, c.presence?.online]), [['bob', 'friend', false]], 'with cinfo from bob\'s home');
});

test('a refusal answers only from a state on every copy: a removal whose replication failed is not taken as done by its retry', async (t) => {
  let down = false;
  const { a, b } = await cluster({
    replicated: async (key) => {
      if (down && key === 's:alice') throw new UnavailableError('a replica of alice did not acknowledge');
    },
  });
  await a.social.op('alice', { op: 'contact_request', user: 'bob' });
  await until(async () => (await stateOf(b, 'bob', 'alice')) === 'pending', 'bob to see the request');
  await b.social.op('bob', { op: 'contact_accept', user: 'alice' });
  await until(async () => (await stateOf(a, 'alice', 'bob')) === 'friend', 'alice to see the accept');
  down = true;
  // Committed here, not on every copy: the client hears unavailable and sends it again.
  const answer = (e: Error & { code?: string }) => (e instanceof UnavailableError ? 'unavailable' : e.code);
  await t.throwsAsync(a.social.op('alice', { op: 'contact_remove', user: 'bob' }), { instanceOf: UnavailableError });
  const retry = await a.social.op('alice', { op: 'contact_remove', user: 'bob' }).then(() => 'ok', answer);
  t.is(retry, 'unavailable', 'not not_found: a crash of this home could still take the removal back');
  down = false;
  const later = await a.social.op('alice', { op: 'contact_remove', user: 'bob' }).then(() => 'ok', answer);
  t.is(later, 'not_found', 'once every copy holds the removal, its retry is told it is done');
});

test('a request repeated before the other side\'s decline has reached the asker\'s home waits for it, and is not lost to it', async (t) => {
  const held: (() => Promise<void>)[] = [];
  let hold = false;
  const { a, b } = await cluster({ handOver: async (give) => { if (hold) held.push(give); else await give(); } });
  await a.social.op('alice', { op: 'contact_request', user: 'bob' });
  await until(async () => (await stateOf(b, 'bob', 'alice')) === 'pending', 'bob to see the request');
  hold = true; // bob's decline is on its way to alice's home, for now no further
  await b.social.op('bob', { op: 'contact_decline', user: 'alice' });
  t.is(await stateOf(a, 'alice', 'bob'), 'requested', 'alice\'s home has not heard of the decline');
  // Judged against alice's view the request would change nothing: bob's home says it is behind.
  const early = await a.social.op('alice', { op: 'contact_request', user: 'bob' }).then(() => 'ok', (e: Error) => (e instanceof UnavailableError ? 'unavailable' : e.message));
  t.is(early, 'unavailable');
  hold = false;
  for (const give of held.splice(0)) await give();
  await until(async () => (await stateOf(a, 'alice', 'bob')) === 'none', 'the decline to reach alice');
  await a.social.op('alice', { op: 'contact_request', user: 'bob' });
  await until(async () => (await stateOf(b, 'bob', 'alice')) === 'pending', 'bob to see the request again');
  t.is(await stateOf(a, 'alice', 'bob'), 'requested');
});

test('a request right behind a removal of the same relation reads the epoch the removal left: no spurious unavailable', async (t) => {
  let late = false;
  let bob: Home | undefined;
  const { a, b } = await cluster({
    // The admission is slow: it reaches bob's home only after the removal's copy has.
    admitAt: async (ask, to) => {
      if (late && to === 'bob') await until(async () => (await stateOf(bob!, 'bob', 'alice')) === 'none', 'bob to see the removal');
      return ask();
    },
  });
  bob = b;
  await a.social.op('alice', { op: 'contact_request', user: 'bob' });
  await until(async () => (await stateOf(b, 'bob', 'alice')) === 'pending', 'bob to see the request');
  await b.social.op('bob', { op: 'contact_accept', user: 'alice' });
  await until(async () => (await stateOf(a, 'alice', 'bob')) === 'friend', 'alice to see the accept');
  late = true;
  const removed = a.social.op('alice', { op: 'contact_remove', user: 'bob' });
  const requested = a.social.op('alice', { op: 'contact_request', user: 'bob', text: 'again' });
  await t.notThrowsAsync(removed);
  await t.notThrowsAsync(requested, 'the request carries the epoch its own removal raised');
  await until(async () => (await stateOf(b, 'bob', 'alice')) === 'pending', 'bob to see the new request');
  t.is(await stateOf(a, 'alice', 'bob'), 'requested');
});

test('a block makes the sender\'s gate refuse a direct message, even after a cached yes', async (t) => {
  const { a, b } = await cluster();
  t.is(await a.social.gate('alice', 'bob', 'dm'), undefined, 'asked: admitted');
  t.is(a.social.gate('alice', 'bob', 'dm'), true, 'then served from the cache');
  await b.social.op('bob', { op: 'block', user: 'alice' });
  const g = a.social.gate('alice', 'bob', 'dm');
  t.not(g, true, 'the block revoked the cached yes');
  await t.throwsAsync(async () => g, { name: 'ForbiddenError' });
  await t.throwsAsync(async () => a.social.op('alice', { op: 'contact_request', user: 'bob' }), { name: 'ForbiddenError' });
  t.is(await stateOf(a, 'alice', 'bob'), 'none', 'nothing stored for the refused request');
});

test('a yes past GATE_TTL_MS still admits while it is asked again; the refusal stops the next one', async (t) => {
  let asked = 0;
  let last: Promise<Refusal | undefined> | undefined;
  const { a, b, clock } = await cluster({
    revokeEverywhere: async () => undefined, // the revocation is lost on its way
    admitAt: (ask) => {
      asked++;
      return (last = ask());
    },
  });
  await a.social.gate('alice', 'bob', 'typing');
  t.is(asked, 1);
  await clock.advance(GATE_TTL_MS - 1);
  t.is(a.social.gate('alice', 'bob', 'dm'), true, 'fresh: typing and direct messages share the yes');
  t.is(asked, 1, 'not asked while fresh');
  await b.social.op('bob', { op: 'block', user: 'alice' });
  t.is(a.social.gate('alice', 'bob', 'dm'), true, 'the missed revocation leaves the fresh yes');
  await clock.advance(2);
  t.is(a.social.gate('alice', 'bob', 'dm'), true, 'stale: admitted meanwhile');
  t.is(asked, 2, 'and asked again');
  t.like(await last, { code: 'forbidden' }, 'bob\'s home refuses now');
  await t.throwsAsync(async () => a.social.gate('alice', 'bob', 'dm'), { name: 'ForbiddenError' });
  // A yes older than GATE_STALE_MS admits nothing without an answer.
  await b.social.op('bob', { op: 'unblock', user: 'alice' });
  await a.social.gate('alice', 'bob', 'dm');
  await clock.advance(GATE_STALE_MS + GATE_TTL_MS);
  const g = a.social.gate('alice', 'bob', 'dm');
  t.not(g, true, 'asked first');
  await g;
});

test('stopping ends the wait for a revocation no node confirms, and the reads still looping', async (t) => {
  const { b, clock, stop } = await cluster({ revokeEverywhere: () => new Promise<void>(() => undefined) });
  let done = false;
  const op = b.social.op('bob', { op: 'block', user: 'alice' }).then(() => (done = true));
  await until(() => clock.waiting === 1, 'the revocation\'s deadline to be waited for');
  await new Promise((r) => setTimeout(r, 50));
  t.false(done, 'ok waits for the revocation (up to REVOKE_WAIT_MS)');
  stop.abort();
  await op;
  t.true(done, 'answered once the node stops');
  t.is(clock.waiting, 0, 'nothing left waiting');
  b.social.ringChanged();
  await t.throwsAsync(async () => b.social.load('bob'), { name: 'UnavailableError' });
});
