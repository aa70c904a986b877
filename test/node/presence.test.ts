// presence, watch and unwatch against one real node.
import test from 'ava';
import { cleanup, startNode, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import type { PresenceEvent, ServerFrame } from '../../src/protocol/frames.ts';

let node: TestNode;
test.before(async () => {
  node = await startNode();
});
test.after.always(cleanup);

test('presence lists online devices, last_seen after logout, nothing for a stranger', async (t) => {
  const { c: q } = await node.login('pq');
  const { c: a1 } = await node.login('pa', 'phone');
  const { c: a2 } = await node.login('pa', 'laptop');
  let p = await q.presence(['pa', 'never-seen']);
  t.deepEqual(p.users, { pa: { online: true, devices: ['laptop', 'phone'] }, 'never-seen': { online: false } });
  a1.close();
  await until(async () => ((await q.presence(['pa'])).users.pa as { devices?: string[] }).devices?.length === 1, 'phone gone');
  const before = Date.now();
  a2.close();
  await until(async () => !(await q.presence(['pa'])).users.pa!.online, 'pa offline');
  p = await q.presence(['pa']);
  const u = p.users.pa as { online: false; last_seen: number };
  t.false(u.online);
  t.true(u.last_seen >= before - 5 && u.last_seen <= Date.now());
});

test('watch sends changes only; unwatch stops them', async (t) => {
  const { c: w } = await node.login('watcher');
  const events: PresenceEvent[] = [];
  w.on('event', (f: ServerFrame) => {
    if (f.op === 'presence') events.push(f as PresenceEvent);
  });
  t.like(await w.request({ op: 'watch', users: ['wb'] }), { op: 'ok' });
  const { c: b1 } = await node.login('wb', 'one');
  await until(() => events.length === 1, 'online event');
  const { c: b2 } = await node.login('wb', 'two'); // already online: no event
  b1.close();                                       // still online on 'two': no event
  await until(async () => ((await w.presence(['wb'])).users.wb as { devices: string[] }).devices.length === 1, 'one device');
  b2.close();
  await until(() => events.length === 2, 'offline event');
  t.deepEqual(events, [{ op: 'presence', user: 'wb', online: true }, { op: 'presence', user: 'wb', online: false }]);
  t.like(await w.request({ op: 'unwatch', users: ['wb'] }), { op: 'ok' });
  const { c: b3 } = await node.login('wb', 'three');
  // a marker event proves the node has processed the login before we look
  await w.request({ op: 'watch', users: ['marker'] });
  await node.login('marker');
  await until(() => events.some((e) => e.user === 'marker'), 'marker');
  t.is(events.filter((e) => e.user === 'wb').length, 2);
  b3.close();
});
