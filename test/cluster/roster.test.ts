// A roster of 2,000 contacts on three nodes: built with follows and accepted requests, listed in
// pages (roster at login and the contacts op), with the presence of those online.
import test from 'ava';
import { cleanup, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import type { ImClient } from '../../src/client/client.ts';
import type { Contact, ContactsReply, RosterEvent, ServerFrame } from '../../src/protocol/frames.ts';

let cluster: TestCluster;
let n1: TestNode, n2: TestNode, n3: TestNode;
test.before(async () => {
  cluster = await startCluster(3, ['--max-in-flight', '2000', '--rate', '10000', '--rate-burst', '10000']);
  [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
});
test.after.always(cleanup);

type Req = Parameters<ImClient['request']>[0];
const ask = <T,>(c: ImClient, frame: Record<string, unknown>): Promise<T> => c.request(frame as Req) as Promise<unknown> as Promise<T>;

test('2,000 contacts: the roster at login comes in pages of 500 with presence, and contacts pages by cursor', async (t) => {
  const owner = cluster.nameOn(n1, 'big');
  const FOLLOWS = 1950;
  const FRIENDS = 50;
  const followed = Array.from({ length: FOLLOWS }, (_, i) => `big-f${String(i).padStart(4, '0')}`);
  const friends = Array.from({ length: FRIENDS }, (_, i) => `big-a${String(i).padStart(2, '0')}`);
  const { c: o } = await n2.login(owner, 'setup');
  const t0 = Date.now();
  await Promise.all(followed.map((u) => ask(o, { op: 'follow', user: u })));
  t.log(`${FOLLOWS} follows confirmed in ${Date.now() - t0} ms`);
  // Friends: each asks, the owner accepts once the request is there; some stay online.
  const online: ImClient[] = [];
  for (const [i, u] of friends.entries()) {
    const { c } = await [n1, n2, n3][i % 3]!.login(u);
    await ask(c, { op: 'contact_request', user: owner });
    if (i % 5 === 0) online.push(c);
    else c.close();
  }
  await until(async () => (await ask<ContactsReply>(o, { op: 'contacts', limit: 1000, after: 'big-a' })).contacts.filter((k) => k.state === 'pending').length === FRIENDS, 'every request at the owner', 30_000);
  await Promise.all(friends.map((u) => ask(o, { op: 'contact_accept', user: u })));

  // The roster at login, on a node that is not the owner's home.
  const c = await n3.client();
  const pages: RosterEvent[] = [];
  let first = 0;
  c.on('frame', (f: ServerFrame) => {
    if (f.op === 'roster') pages.push(f);
    if (f.op === 'msg' && first === 0) first = pages.length;
  });
  const l0 = Date.now();
  await c.login({ token: await token(owner), device: 'big', roster: true });
  await until(() => pages.length > 0 && !pages[pages.length - 1]!.more, 'the last roster page', 30_000);
  t.log(`roster of ${FOLLOWS + FRIENDS} in ${pages.length} pages, ${Date.now() - l0} ms after the login was sent`);
  t.deepEqual(pages.map((p) => p.contacts.length), [500, 500, 500, 500]);
  const all: Contact[] = pages.flatMap((p) => p.contacts);
  t.deepEqual(all.map((k) => k.user), [...friends, ...followed].sort(), 'every contact once, in user id order');
  t.true(all.filter((k) => friends.includes(k.user)).every((k) => k.state === 'friend'));
  t.true(all.filter((k) => followed.includes(k.user)).every((k) => k.following && k.state === 'none'));
  const onlineNow = all.filter((k) => k.presence?.online).map((k) => k.user).sort();
  t.deepEqual(onlineNow, friends.filter((_, i) => i % 5 === 0), 'presence of the contacts online');

  // The contacts op pages by cursor: exactly `limit` per page but the last.
  const seen: string[] = [];
  let after: string | undefined;
  let n = 0;
  for (;;) {
    const r = await ask<ContactsReply>(c, { op: 'contacts', limit: 700, ...(after ? { after } : {}) });
    n++;
    seen.push(...r.contacts.map((k) => k.user));
    if (!r.more) break;
    t.is(r.contacts.length, 700);
    after = r.next;
  }
  t.is(n, 3);
  t.deepEqual(seen, all.map((k) => k.user));
  // A friend going offline reaches the roster session without a watch.
  const off = c.waitFor((f) => f.op === 'presence' && (f as { user?: string }).user === friends[0] && (f as { online?: boolean }).online === false, 20_000);
  online[0]!.close();
  await off;
  t.pass();
});
