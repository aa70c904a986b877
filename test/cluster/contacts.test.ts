// Profiles, contacts and status (docs/PROTOCOL.md section 13) across three nodes, with the two
// sides of every relation homed on different nodes and connected to a third.
import test from 'ava';
import { cleanup, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import type { ImClient } from '../../src/client/client.ts';
import type { Contact, ContactEvent, ContactsReply, PresenceEvent, PresenceReply, ProfileEvent, ProfilesReply, RosterEvent, ServerFrame } from '../../src/protocol/frames.ts';

let cluster: TestCluster;
let n1: TestNode, n2: TestNode, n3: TestNode;
test.before(async () => {
  cluster = await startCluster(3, ['--max-pending-requests', '3', '--max-contacts', '4']);
  [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
});
test.after.always(cleanup);

const userOn = (node: TestNode, prefix: string): string => cluster.nameOn(node, prefix);
type Req = Parameters<ImClient['request']>[0];
const ask = <T extends ServerFrame = ServerFrame>(c: ImClient, frame: Record<string, unknown>): Promise<T> => c.request(frame as Req) as Promise<unknown> as Promise<T>;
const contacts = async (c: ImClient): Promise<Record<string, Contact>> =>
  Object.fromEntries((await ask<ContactsReply>(c, { op: 'contacts' })).contacts.map((k) => [k.user, k]));
/** What `c` shows for `other` once it settles on `want` (the other side follows within moments). */
async function settles(c: ImClient, other: string, want: Partial<Contact> | undefined, what: string): Promise<void> {
  await until(async () => {
    const k = (await contacts(c))[other];
    if (want === undefined) return k === undefined;
    return k !== undefined && Object.entries(want).every(([f, v]) => JSON.stringify((k as Record<string, unknown>)[f]) === JSON.stringify(v));
  }, what, 10_000);
}
/** Logs in with the roster and collects its pages. */
async function rosterLogin(node: TestNode, user: string, device = 'd1'): Promise<{ c: ImClient; roster: Contact[] }> {
  const c = await node.client();
  const got: Contact[] = [];
  let last = false;
  c.on('frame', (f: ServerFrame) => {
    if (f.op !== 'roster') return;
    got.push(...(f as RosterEvent).contacts);
    last = !(f as RosterEvent).more;
  });
  await c.login({ token: await token(user), device, roster: true });
  await until(() => last, 'the last roster page');
  return { c, roster: got };
}
const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
};

test('request and accept across homes: both friends, events on both sides, roster with presence', async (t) => {
  const alice = userOn(n1, 'ra-alice');
  const bob = userOn(n2, 'ra-bob');
  const { c: a } = await n3.login(alice);
  const { c: b } = await n3.login(bob);
  const bobHears = b.waitFor<ContactEvent>((f) => f.op === 'contact' && (f as ContactEvent).user === alice);
  await ask(a, { op: 'contact_request', user: bob, text: 'hi, it is alice' });
  t.like((await contacts(a))[bob], { state: 'requested', following: false });
  t.like(await bobHears, { state: 'pending', text: 'hi, it is alice' });
  await settles(b, alice, { state: 'pending' }, 'bob sees the request');
  const aliceHears = a.waitFor<ContactEvent>((f) => f.op === 'contact' && (f as ContactEvent).user === bob && (f as ContactEvent).state === 'friend');
  await ask(b, { op: 'contact_accept', user: alice });
  t.like((await contacts(b))[alice], { state: 'friend' });
  const ev = await aliceHears;
  t.like(ev, { state: 'friend', presence: { online: true } });
  t.is(await code(ask(b, { op: 'contact_accept', user: alice })), 'not_found');
  t.is(await code(ask(a, { op: 'contact_request', user: bob })), 'conflict');
  // A roster login on a third node lists bob with his presence; bob's status reaches it.
  const { c: a2, roster } = await rosterLogin(n2, alice, 'd2');
  t.like(roster.find((k) => k.user === bob), { state: 'friend', presence: { online: true } });
  const busy = a2.waitFor<PresenceEvent>((f) => f.op === 'presence' && (f as PresenceEvent).user === bob && (f as PresenceEvent).status === 'busy');
  await ask(b, { op: 'status', status: 'busy', text: 'in a meeting' });
  t.like(await busy, { online: true, status: 'busy', text: 'in a meeting' });
  const p = await ask<PresenceReply>(a, { op: 'presence', users: [bob] });
  t.like(p.users[bob], { online: true, status: 'busy', text: 'in a meeting' });
  // Offline: the roster session hears it without any watch.
  const gone = a2.waitFor<PresenceEvent>((f) => f.op === 'presence' && (f as PresenceEvent).user === bob && !(f as PresenceEvent).online);
  b.close();
  await gone;
  t.pass();
});

test('decline, remove, crossing requests, follow, and the states both sides end in', async (t) => {
  const a1 = userOn(n2, 'dr-a');
  const b1 = userOn(n3, 'dr-b');
  const { c: a } = await n1.login(a1);
  const { c: b } = await n1.login(b1);
  await ask(a, { op: 'contact_request', user: b1 });
  await settles(b, a1, { state: 'pending' }, 'pending at b');
  await ask(b, { op: 'contact_decline', user: a1 });
  await settles(a, b1, undefined, 'declined: gone at a');
  t.is((await contacts(b))[a1], undefined);
  // Crossing requests (each before the other's is known): both friends.
  await Promise.all([ask(a, { op: 'contact_request', user: b1 }), ask(b, { op: 'contact_request', user: a1 })]);
  await settles(a, b1, { state: 'friend' }, 'friend at a');
  await settles(b, a1, { state: 'friend' }, 'friend at b');
  await ask(b, { op: 'contact_remove', user: a1 });
  await settles(a, b1, undefined, 'removed at a');
  t.is(await code(ask(a, { op: 'contact_remove', user: b1 })), 'not_found');
  // A follow needs no consent; the other side sees follows_me.
  await ask(a, { op: 'follow', user: b1 });
  t.like((await contacts(a))[b1], { state: 'none', following: true });
  await settles(b, a1, { follows_me: true, following: false }, 'b sees the follower');
  await ask(a, { op: 'unfollow', user: b1 });
  await settles(b, a1, undefined, 'unfollowed');
  // Lists are the owner's labels.
  await ask(a, { op: 'follow', user: b1 });
  await ask(a, { op: 'contact_lists', user: b1, lists: ['work', 'climbing'] });
  t.deepEqual((await contacts(a))[b1]!.lists, ['work', 'climbing']);
  t.is(await code(ask(a, { op: 'contact_lists', user: userOn(n1, 'nobody-x'), lists: ['x'] })), 'not_found');
});

test('offline user sees requests at the next login; block refuses DMs, requests and typing with nothing stored', async (t) => {
  const alice = userOn(n1, 'bl-alice');
  const mallory = userOn(n3, 'bl-mal');
  const { c: m } = await n2.login(mallory);
  await ask(m, { op: 'contact_request', user: alice, text: 'let me in' });
  // alice was offline: the request is there when she comes.
  const { c: a, roster } = await rosterLogin(n2, alice);
  t.like(roster.find((k) => k.user === mallory), { state: 'pending', text: 'let me in' });
  await m.send(alice, 'before', 'a message before the block');
  // mallory watches alice: the block is the last presence event it hears of her.
  const heard: PresenceEvent[] = [];
  m.on('frame', (f: ServerFrame) => {
    if (f.op === 'presence' && (f as PresenceEvent).user === alice && !('id' in f)) heard.push(f as PresenceEvent);
  });
  await ask(m, { op: 'watch', users: [alice] });
  await ask(a, { op: 'block', user: mallory });
  t.like((await contacts(a))[mallory], { blocked: true, state: 'none' });
  await settles(m, alice, undefined, 'the request ended at mallory');
  const mine = (await m.sync(0)).msgs.length;
  const theirs = (await a.sync(0)).msgs.length;
  t.is(await code(m.send(alice, 'after', 'blocked?')), 'forbidden');
  t.is(await code(ask(m, { op: 'contact_request', user: alice })), 'forbidden');
  t.is(await code(ask(m, { op: 'follow', user: alice })), 'forbidden');
  t.is(await code(ask(m, { op: 'typing', id: 9, to: alice })), 'forbidden');
  t.is((await m.sync(0)).msgs.length, mine, 'nothing stored on the sender');
  t.is((await a.sync(0)).msgs.length, theirs, 'nothing stored on the blocker');
  // mallory sees alice offline, with no profile.
  await ask(a, { op: 'profile_set', profile: { name: 'Alice' } });
  t.deepEqual((await ask<PresenceReply>(m, { op: 'presence', users: [alice] })).users[alice], { online: false });
  t.is((await ask<ProfilesReply>(m, { op: 'profiles', users: [alice] })).users[alice], null);
  // alice's other device comes and goes, she sets a status: nothing of it reaches mallory.
  await until(() => heard.length === 1, 'the block seen as going offline');
  const { c: a2 } = await n3.login(alice, 'd2');
  await ask(a2, { op: 'status', status: 'busy' });
  a2.close();
  // A watcher on mallory's node, watching after her: pushed after hers, on the same link.
  const { c: probe } = await n2.login(userOn(n1, 'bl-probe'));
  const w = probe.waitFor((f) => f.op === 'presence' && (f as PresenceEvent).user === alice && (f as PresenceEvent).status === 'away', 10_000);
  await ask(probe, { op: 'watch', users: [alice] });
  await ask(a, { op: 'status', status: 'away' });
  await w; // a watcher who may see her heard the last change, so mallory's would be there by now
  t.deepEqual(heard, [{ op: 'presence', user: alice, online: false }]);
  await ask(a, { op: 'unblock', user: mallory });
  await m.send(alice, 'after2', 'unblocked');
});

test('privacy: DMs from contacts only, presence and profile hidden; invisible looks offline and keeps last_seen', async (t) => {
  const carol = userOn(n3, 'pv-carol');
  const dave = userOn(n1, 'pv-dave');
  const erin = userOn(n2, 'pv-erin');
  const { c: c } = await n1.login(carol);
  const { c: d } = await n2.login(dave);
  const { c: e } = await n3.login(erin);
  await ask(c, { op: 'profile_set', profile: { name: 'Carol', text: 'hello', fields: { city: 'Lyon' } } });
  t.like((await ask<ProfilesReply>(e, { op: 'profiles', users: [carol, dave] })).users, { [carol]: { name: 'Carol', fields: { city: 'Lyon' } }, [dave]: null });
  // dave becomes carol's friend; erin does not.
  await ask(d, { op: 'contact_request', user: carol });
  await settles(c, dave, { state: 'pending' }, 'request at carol');
  await ask(c, { op: 'contact_accept', user: dave });
  await settles(d, carol, { state: 'friend' }, 'friend at dave');
  await ask(c, { op: 'privacy', dm: 'contacts', presence: 'contacts', profile: 'contacts' });
  t.is(await code(e.send(carol, 'x', 'stranger')), 'forbidden');
  await d.send(carol, 'y', 'friend');
  t.deepEqual((await ask<PresenceReply>(e, { op: 'presence', users: [carol] })).users[carol], { online: false });
  t.like((await ask<PresenceReply>(d, { op: 'presence', users: [carol] })).users[carol], { online: true });
  t.is((await ask<ProfilesReply>(e, { op: 'profiles', users: [carol] })).users[carol], null);
  t.like((await ask<ProfilesReply>(d, { op: 'profiles', users: [carol] })).users[carol], { name: 'Carol' });
  // Profile changes reach friends only.
  const dHears = d.waitFor<ProfileEvent>((f) => f.op === 'profile' && (f as ProfileEvent).user === carol);
  let erinHeard = false;
  e.on('frame', (f: ServerFrame) => {
    if (f.op === 'profile') erinHeard = true;
  });
  await ask(c, { op: 'profile_set', profile: { text: 'new text' } });
  t.like(await dHears, { profile: { name: 'Carol', text: 'new text' } });
  // Invisible: offline to a friend watching, last_seen frozen at going invisible.
  await ask(d, { op: 'watch', users: [carol] });
  const off = d.waitFor<PresenceEvent>((f) => f.op === 'presence' && (f as PresenceEvent).user === carol && !(f as PresenceEvent).online);
  const before = Date.now();
  await ask(c, { op: 'status', status: 'invisible' });
  await off;
  const seen = (await ask<PresenceReply>(d, { op: 'presence', users: [carol] })).users[carol] as { online: boolean; last_seen?: number };
  t.false(seen.online);
  t.true(seen.last_seen! >= before - 5000 && seen.last_seen! <= Date.now());
  c.close();
  await new Promise((r) => setTimeout(r, 300));
  const later = (await ask<PresenceReply>(d, { op: 'presence', users: [carol] })).users[carol] as { last_seen?: number };
  t.is(later.last_seen, seen.last_seen, 'last_seen does not move while invisible');
  t.false(erinHeard);
});

test('limits: pending requests and contacts per user; bad input changes nothing', async (t) => {
  const target = userOn(n2, 'lim-t');
  const { c: tc } = await n1.login(target);
  for (let i = 0; i < 3; i++) {
    const { c } = await n3.login(userOn(n1, `lim-s${i}`));
    await ask(c, { op: 'contact_request', user: target });
  }
  await until(async () => Object.values(await contacts(tc)).filter((k) => k.state === 'pending').length === 3, 'three requests waiting');
  const { c: late } = await n3.login(userOn(n3, 'lim-late'));
  t.is(await code(ask(late, { op: 'contact_request', user: target })), 'too_large');
  // Four friends, requests made and follows at most (--max-contacts 4).
  for (let i = 0; i < 4; i++) await ask(tc, { op: 'follow', user: userOn(n3, `lim-f${i}`) });
  t.is(await code(ask(tc, { op: 'follow', user: userOn(n3, 'lim-f9') })), 'too_large');
  t.is(await code(ask(tc, { op: 'contact_request', user: target })), 'bad_request');
  t.is(await code(ask(tc, { op: 'profile_set', profile: { name: 'x'.repeat(65) } })), 'bad_request');
  t.is(await code(ask(tc, { op: 'profile_set', profile: { fields: { big: 'x'.repeat(3000) } } })), 'too_large');
  t.is(await code(ask(tc, { op: 'profile_set', profile: { avatar: 'javascript:alert(1)' } })), 'bad_request');
  t.is(await code(ask(tc, { op: 'status', status: 'asleep' })), 'bad_request');
  t.is(await code(ask(tc, { op: 'privacy', dm: 'nobody' })), 'bad_request');
  t.is(await code(ask(tc, { op: 'contact_lists', user: userOn(n3, 'lim-f0'), lists: Array.from({ length: 33 }, (_, i) => `l${i}`) })), 'too_large');
  t.is(await code(ask(tc, { op: 'profiles', users: Array.from({ length: 501 }, (_, i) => `u${i}`) })), 'too_large');
  t.is(Object.keys(await contacts(tc)).length, 7);
});
