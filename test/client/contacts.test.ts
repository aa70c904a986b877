// The SDK's contacts against a real node: two sessions with `roster: true` become friends, each
// session's roster map follows the contact events and the other's presence and status, a
// reconnect reloads it, and allContacts pages through a list longer than one page.
import test from 'ava';
import { ImSession } from '../../src/client/index.ts';
import { cleanup, startNode, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';

test.after.always(cleanup);

const sessions: ImSession[] = [];
test.afterEach.always(() => {
  for (const s of sessions.splice(0)) s.close();
});
const uid = (p: string) => `${p}${Math.random().toString(36).slice(2, 8)}`;

function session(node: TestNode, user: string, opts: Partial<ConstructorParameters<typeof ImSession>[0]> = {}): ImSession {
  const s = new ImSession({ urls: [node.url], token: () => token(user), device: 'sdk', roster: true, ...opts });
  sessions.push(s);
  return s;
}

let one: TestNode;
test.before(async () => {
  one = await startNode();
});

test.serial('a friendship in both rosters, with presence and status; a reconnect reloads the roster', async (t) => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const a = session(one, alice);
  const b = session(one, bob);
  await Promise.all([a.ready(), b.ready()]);
  await until(() => a.rosterLoaded && b.rosterLoaded, 'both rosters');
  t.is(a.roster.size, 0);

  await b.profileSet({ name: 'Bob B.' });
  await a.contactRequest(bob, 'hi, it is alice');
  await until(() => a.roster.get(bob)?.state === 'requested' && b.roster.get(alice)?.state === 'pending', 'the request on both sides');
  t.is(b.roster.get(alice)?.text, 'hi, it is alice');

  const seen: string[] = [];
  a.on('contact', (c) => seen.push(`${c.user}:${c.state}`));
  await b.contactAccept(alice);
  await until(() => a.roster.get(bob)?.state === 'friend' && b.roster.get(alice)?.state === 'friend', 'the friendship');
  t.deepEqual(seen, [`${bob}:friend`], 'one event, never twice');
  t.true(a.roster.get(bob)?.presence?.online);
  const profiles = await a.profiles([bob]);
  t.is(profiles.users[bob]?.name, 'Bob B.');

  // bob's status reaches alice's roster without a watch
  await b.status('busy', 'in a meeting');
  await until(() => a.roster.get(bob)?.presence?.status === 'busy', 'bob busy in alice\'s roster');
  t.deepEqual(a.roster.get(bob)?.presence, { online: true, status: 'busy', text: 'in a meeting' });

  // A reconnect reloads the roster whole.
  const logins = a.welcome;
  a.drop();
  await until(() => a.welcome !== logins && a.state.state === 'live', 'alice back');
  await until(() => a.roster.get(bob)?.presence?.status === 'busy', 'the reloaded roster');
  t.is(a.roster.get(bob)?.state, 'friend');

  b.close();
  await until(() => a.roster.get(bob)?.presence?.online === false, 'bob offline in alice\'s roster');

  // A block ends the friendship; bob's direct message is refused.
  await a.block(bob);
  await until(() => a.roster.get(bob)?.blocked === true && a.roster.get(bob)?.state === 'none', 'the block');
  const b2 = session(one, bob, { device: 'sdk2' });
  await b2.ready();
  await t.throwsAsync(b2.sendTo(alice, 'hello?'), { message: /forbidden/ });
});

test.serial('allContacts pages through every contact, and contacts() gives exact pages', async (t) => {
  const alice = uid('alice');
  const a = session(one, alice, { roster: false });
  const users = Array.from({ length: 7 }, (_, i) => `${alice}-f${i}`);
  for (const u of users) await a.follow(u);
  const got: string[] = [];
  for await (const c of a.allContacts(3)) got.push(c.user);
  t.deepEqual(got, [...users].sort());
  const first = await a.contacts({ limit: 3 });
  t.is(first.contacts.length, 3);
  t.true(first.more);
});
