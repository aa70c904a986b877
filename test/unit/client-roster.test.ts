// The SDK's contacts bookkeeping: src/client/roster.ts alone, and an ImSession with `roster: true`
// against a fake node (test/helpers/fake-node.ts) that pushes the roster in the same read as the
// welcome, answers contact events and presence, and loses the connection on demand.
import test from 'ava';
import { Roster } from '../../src/client/roster.ts';
import { ImSession } from '../../src/client/index.ts';
import type { Contact, ContactEvent, RosterEvent } from '../../src/client/index.ts';
import { fakeNode, until } from '../helpers/fake-node.ts';

const contact = (user: string, more: Partial<Contact> = {}): Contact => ({
  user, state: 'friend', following: false, follows_me: false, blocked: false, lists: [], ...more,
});
const page = (contacts: Contact[], more = false): RosterEvent => ({ op: 'roster', contacts, more });
const event = (user: string, more: Partial<Contact> = {}): ContactEvent => ({ op: 'contact', ...contact(user, more) });
const users = (m: ReadonlyMap<string, Contact>) => [...m.keys()].sort();

test('a roster replaces the map only once its last page is in', (t) => {
  const r = new Roster(100);
  r.loggingIn();
  t.false(r.page(page([contact('bob'), contact('carol')], true)));
  t.deepEqual(users(r.contacts), [], 'nothing shown from half a roster');
  t.true(r.page(page([contact('dave')])));
  t.true(r.loaded);
  t.deepEqual(users(r.contacts), ['bob', 'carol', 'dave']);
  // The next login's reload: the old map stays readable until the new one is whole, then goes.
  r.loggingIn();
  t.false(r.page(page([contact('bob')], true)));
  t.deepEqual(users(r.contacts), ['bob', 'carol', 'dave']);
  t.true(r.page(page([contact('erin')])));
  t.deepEqual(users(r.contacts), ['bob', 'erin'], 'carol and dave went while the session was away');
});

test('contact events replace one entry, and take it out when nothing links the two users any more', (t) => {
  const r = new Roster(100);
  r.loggingIn();
  r.page(page([contact('bob', { presence: { online: true, status: 'busy' } })]));
  t.is(r.contact(event('alice', { state: 'pending', text: 'hi' }))?.state, 'pending');
  t.is(r.contacts.get('alice')?.text, 'hi');
  r.contact(event('alice', { state: 'friend' }));
  t.is(r.contacts.get('alice')?.state, 'friend');
  // An event without presence keeps the presence known; one with presence replaces it.
  r.contact(event('bob', { lists: ['work'] }));
  t.deepEqual(r.contacts.get('bob')?.presence, { online: true, status: 'busy' });
  t.deepEqual(r.contacts.get('bob')?.lists, ['work']);
  t.is(r.contact(event('alice', { state: 'none' })), undefined);
  t.false(r.contacts.has('alice'));
  r.contact(event('carol', { state: 'none', following: true }));
  r.contact(event('dave', { state: 'none', blocked: true }));
  t.deepEqual(users(r.contacts), ['bob', 'carol', 'dave'], 'a follow or a block keeps a user listed');
});

test('an event during a reload lands in the old map and in the one being built', (t) => {
  const r = new Roster(100);
  r.loggingIn();
  r.page(page([contact('bob')]));
  r.loggingIn();
  r.page(page([contact('bob')], true));
  r.contact(event('carol', { state: 'requested' }));
  t.true(r.contacts.has('carol'));
  r.page(page([]));
  t.deepEqual(users(r.contacts), ['bob', 'carol']);
});

test('presence events update contacts only, with status and text when online', (t) => {
  const r = new Roster(100);
  r.loggingIn();
  r.page(page([contact('bob')]));
  t.true(r.presence({ op: 'presence', user: 'bob', online: true, status: 'away', text: 'lunch' }));
  t.deepEqual(r.contacts.get('bob')?.presence, { online: true, status: 'away', text: 'lunch' });
  t.true(r.presence({ op: 'presence', user: 'bob', online: false, status: 'busy' }));
  t.deepEqual(r.contacts.get('bob')?.presence, { online: false }, 'offline carries no status');
  t.false(r.presence({ op: 'presence', user: 'stranger', online: true }));
  t.false(r.contacts.has('stranger'));
});

test('the map is bounded: past the cap new users are refused and counted, known ones still change', (t) => {
  const r = new Roster(3);
  r.loggingIn();
  r.page(page(['a', 'b', 'c', 'd', 'e'].map((u) => contact(u))));
  t.is(r.contacts.size, 3);
  t.is(r.dropped, 2);
  r.contact(event('z'));
  t.false(r.contacts.has('z'));
  r.contact(event('a', { state: 'requested' }));
  t.is(r.contacts.get('a')?.state, 'requested');
});

// ---------------------------------------------------------------- the session with a fake node

/** A fake node for alice whose roster is `roster` at each login, in pages of two. */
function node(roster: () => Contact[]) {
  return fakeNode((f) => {
    switch (f.op) {
      case 'login': {
        const all = roster();
        const pages: RosterEvent[] = [];
        for (let i = 0; i < all.length || i === 0; i += 2) pages.push(page(all.slice(i, i + 2), i + 2 < all.length));
        return [{ op: 'welcome', id: f.id, user: 'alice', device: 'd', node: 'n1', seq: 0, acked: 0 }, ...(f.roster ? pages : [])];
      }
      case 'ping': return [{ op: 'pong', id: f.id, ts: 1 }];
      case 'ack': return;
      default: return f.id !== undefined ? [{ op: 'ok', id: f.id }] : undefined;
    }
  });
}

const sessions: ImSession[] = [];
test.afterEach.always(() => {
  for (const s of sessions.splice(0)) s.close();
});
function session(WebSocket: ReturnType<typeof node>['WebSocket'], roster = true): ImSession {
  const s = new ImSession({ urls: ['ws://fake/ws'], user: 'alice', WebSocket, roster, backoffMs: { min: 1, max: 5 } });
  sessions.push(s);
  return s;
}

test.serial('a session with roster: true asks for it, and keeps the contacts the node pushed with the welcome', async (t) => {
  let roster = [contact('bob'), contact('carol', { state: 'pending' }), contact('dave', { following: true, state: 'none' })];
  const n = node(() => roster);
  const s = session(n.WebSocket);
  const pages: RosterEvent[] = [];
  s.on('roster', (p) => pages.push(p));
  await until(() => s.rosterLoaded, 'the roster');
  t.is(n.sent('login')[0]!.roster, true);
  t.deepEqual(pages.map((p) => p.more), [true, false]);
  t.deepEqual(users(s.roster), ['bob', 'carol', 'dave']);

  // Events keep it current.
  const changes: number[] = [];
  s.on('contacts', (m) => changes.push(m.size));
  n.sockets[0]!.push(event('carol', { state: 'friend' }), { op: 'presence', user: 'bob', online: true, status: 'busy', text: 'meeting' });
  t.is(s.roster.get('carol')?.state, 'friend');
  t.deepEqual(s.roster.get('bob')?.presence, { online: true, status: 'busy', text: 'meeting' });
  t.true(changes.length >= 2);

  // A reconnect reloads it whole: what changed unseen while away is what the new roster says.
  roster = [contact('bob'), contact('erin', { state: 'requested' })];
  n.sockets[0]!.drop();
  await until(() => n.sent('login').length === 2 && s.state.state === 'live' && s.roster.has('erin'), 'the reload');
  t.deepEqual(users(s.roster), ['bob', 'erin']);
  t.is(n.sent('login')[1]!.roster, true);
});

test.serial('an empty roster is a loaded one; a session without the option does not ask', async (t) => {
  const n = node(() => []);
  const s = session(n.WebSocket);
  await until(() => s.rosterLoaded, 'the empty roster');
  t.is(s.roster.size, 0);
  const m = node(() => [contact('bob')]);
  const plain = session(m.WebSocket, false);
  await plain.ready();
  t.false('roster' in m.sent('login')[0]!);
  t.false(plain.rosterLoaded);
});

test.serial('accept, decline and remove are not resent after a lost connection; reads, settings and blocks are', async (t) => {
  // A node that answers nothing but the login and pings: every other request stays open until the drop.
  const n = fakeNode((f) => {
    if (f.op === 'login') return [{ op: 'welcome', id: f.id, user: 'alice', device: 'd', node: 'n1', seq: 0, acked: 0 }];
    if (f.op === 'ping') return [{ op: 'pong', id: f.id, ts: 1 }];
    if (n.sockets.length > 1 && f.id !== undefined) return [{ op: f.op === 'contacts' ? 'contacts' : 'ok', id: f.id, contacts: [], more: false }];
  });
  const s = session(n.WebSocket, false);
  await s.ready();
  const accept = s.contactAccept('bob');
  const remove = s.contactRemove('carol');
  const block = s.block('mallory');
  const status = s.status('busy', 'meeting');
  const list = s.contacts({ limit: 10 });
  await until(() => n.sent('contacts').length === 1, 'the requests on the wire');
  n.sockets[0]!.drop();
  await t.throwsAsync(accept, { name: 'ConnectionClosedError' });
  await t.throwsAsync(remove, { name: 'ConnectionClosedError' });
  await t.notThrowsAsync(status);
  await t.notThrowsAsync(block);
  t.is(n.sent('block').length, 2, 'the block went again');
  t.deepEqual((await list).contacts, []);
  t.is(n.sent('contact_accept').length, 1, 'the accept went once');
  t.is(n.sent('status').length, 2, 'the status went again');
  t.deepEqual(n.sent('contacts')[1], { op: 'contacts', id: n.sent('contacts')[1]!.id, limit: 10 });
});

test.serial('allContacts pages with the cursor until more is false, and stops on a page without a new cursor', async (t) => {
  const all = ['a', 'b', 'c', 'd', 'e'].map((u) => contact(u));
  let broken = false;
  const n = fakeNode((f) => {
    if (f.op === 'login') return [{ op: 'welcome', id: f.id, user: 'alice', device: 'd', node: 'n1', seq: 0, acked: 0 }];
    if (f.op !== 'contacts') return;
    const from = f.after === undefined ? 0 : all.findIndex((c) => c.user === f.after) + 1;
    const limit = Number(f.limit);
    const more = from + limit < all.length;
    return [{ op: 'contacts', id: f.id, contacts: all.slice(from, from + limit), more, ...(more && !broken ? { next: all[from + limit - 1]!.user } : {}) }];
  });
  const s = session(n.WebSocket, false);
  const got: string[] = [];
  for await (const c of s.allContacts(2)) got.push(c.user);
  t.deepEqual(got, ['a', 'b', 'c', 'd', 'e']);
  t.deepEqual(n.sent('contacts').map((f) => f.after ?? null), [null, 'b', 'd']);
  broken = true;
  await t.throwsAsync(async () => {
    for await (const _ of s.allContacts(2)) { /* drain */ }
  }, { message: /without a new cursor/ });
});
