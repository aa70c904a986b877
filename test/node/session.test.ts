// Login, tokens, insecure mode, deadlines and timeouts, replaced logins, shutdown, HTTP endpoints.
import test from 'ava';
import { cleanup, startNode, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { ImClient, ImError } from '../../src/client/client.ts';
import type { ErrorReply } from '../../src/protocol/frames.ts';

let node: TestNode;
test.before(async () => {
  // Short deadlines, with room for a busy machine (a failed login retried on one connection takes a while).
  node = await startNode({ args: ['--login-timeout', '2000', '--idle-timeout', '3000'] });
});
test.after.always(cleanup);

const code = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    if (e instanceof ImError) return e.code;
    throw e;
  }
  return 'ok';
};

test('a valid token logs in; welcome names user, device and node', async (t) => {
  const c = await node.client();
  const w = await c.login({ token: await token('tok-user'), device: 'tab' });
  t.like(w, { op: 'welcome', user: 'tok-user', device: 'tab', node: 'n1', seq: 0, acked: 0 });
  const d = await (await node.client()).login({ token: await token('tok-user2') });
  t.is(d.device, 'default');
});

test('forged, expired and malformed tokens are unauthenticated, and login may be retried', async (t) => {
  const c = await node.client();
  t.is(await code(c.login({ token: await token('eve', { secret: 'not-the-secret' }) })), 'unauthenticated');
  t.is(await code(c.login({ token: await token('eve', { exp: Math.floor(Date.now() / 1000) - 10 }) })), 'unauthenticated');
  t.is(await code(c.login({ token: 'abc.def.ghi' })), 'unauthenticated');
  t.is(await code(c.login({ token: await token('bad user!') })), 'unauthenticated');
  t.is(await code(c.login({ user: 'eve' })), 'unauthenticated', 'no insecure mode here');
  const w = await c.login({ token: await token('eve') });
  t.is(w.user, 'eve');
  t.is(await code(c.login({ token: await token('eve') })), 'bad_request', 'already logged in');
});

test('before login only ping and login are served; the connection stays open', async (t) => {
  const c = await node.client();
  const pong = await c.request({ op: 'ping' });
  t.like(pong, { op: 'pong' });
  t.is(typeof (pong as { ts: number }).ts, 'number');
  t.is(await code(c.send('x', 'c', 'b')), 'unauthenticated');
  t.is(await code(c.sync(0)), 'unauthenticated');
  t.is(await code(c.unread()), 'unauthenticated');
  t.is(await code(c.presence(['x'])), 'unauthenticated');
  const noId = c.waitFor<ErrorReply>((f) => f.op === 'error');
  c.post({ op: 'unread' });
  t.like(await noId, { id: null, code: 'unauthenticated' });
  t.is(c.closed, undefined);
});

test('frames sent right behind login are served after it, in order', async (t) => {
  const c = await node.client();
  const tk = await token('pipeliner');
  const [w, s1, s2] = await Promise.all([
    c.login({ token: tk }),
    c.send('pipeliner', 'pl1', 'one'),
    c.send('pipeliner', 'pl2', 'two'),
  ]);
  t.is(w.op, 'welcome');
  t.deepEqual([s1.seq, s2.seq], [1, 2]);
});

test('a connection that does not log in within the deadline is closed', async (t) => {
  const c = await node.client();
  const { code: closeCode } = await c.closedWith(5000);
  t.is(closeCode, 4001);
});

test('a connection idle past the idle timeout is closed; traffic keeps it open', async (t) => {
  const { c: quiet } = await node.login('idle-q');
  const { c: busy } = await node.login('idle-b');
  const started = Date.now();
  const timer = setInterval(() => busy.post({ op: 'ping' }), 300);
  const { code: closeCode } = await quiet.closedWith(6000);
  clearInterval(timer);
  t.is(closeCode, 4002);
  t.true(Date.now() - started >= 1000);
  t.is(busy.closed, undefined);
  t.like(await busy.request({ op: 'ping' }), { op: 'pong' });
});

test('a second login of the same user and device replaces the first with goaway', async (t) => {
  const { c: first } = await node.login('dup-dev', 'phone');
  const { c: other } = await node.login('dup-dev', 'tablet');
  const goaway = first.waitFor((f) => f.op === 'goaway');
  const { c: second } = await node.login('dup-dev', 'phone');
  t.deepEqual(await goaway, { op: 'goaway', reason: 'replaced' });
  await first.closedWith();
  t.is(other.closed, undefined);
  const p = await second.presence(['dup-dev']);
  t.deepEqual(p.users['dup-dev'], { online: true, devices: ['phone', 'tablet'] });
  // the new session gets pushes
  const got = second.waitFor((f) => f.op === 'msg');
  await other.send('dup-dev', 'self-1', 'to myself');
  t.like(await got, { body: 'to myself' });
});

test('HTTP: /healthz, /cluster and /metrics', async (t) => {
  const h = await node.get('/healthz');
  t.is(h.status, 200);
  t.deepEqual(JSON.parse(h.text), { ok: true, node: 'n1', state: 'serving' });
  const c = JSON.parse((await node.get('/cluster')).text);
  t.is(c.node, 'n1');
  t.is(c.members.length, 1);
  t.like(c.members[0], { name: 'n1', url: node.url, state: 'up' });
  t.regex(c.members[0].peer, /^12D3Koo/);
  t.true(c.joined);
  t.is(c.ring.vnodes, 160);
  t.is(c.ring.replicas, 2);
  t.is(typeof c.ring.version, 'string');
  t.is(typeof c.owned, 'number');
  const m = await node.get('/metrics');
  t.is(m.status, 200);
  t.regex(m.text, /im_connections\{node="n1"\} \d+/);
  t.regex(m.text, /im_store_commit_seconds_bucket/);
  t.is((await node.get('/nope')).status, 404);
});

test('insecure mode accepts a bare user id and still checks tokens', async (t) => {
  const n = await startNode({ args: ['--insecure'], name: 'ins' });
  const c = await n.client();
  const w = await c.login({ user: 'dev-user' });
  t.is(w.user, 'dev-user');
  const d = await n.client();
  t.is(await code(d.login({ token: await token('x', { secret: 'wrong' }) })), 'unauthenticated');
  t.true(n.log.some((l) => l.includes('INSECURE MODE')));
});

test('SIGTERM sends goaway shutdown to every client, then the node exits 0', async (t) => {
  const n = await startNode({ name: 'bye' });
  const { c } = await n.login('leaver');
  const g = c.waitFor((f) => f.op === 'goaway');
  const exit = n.stop();
  t.deepEqual(await g, { op: 'goaway', reason: 'shutdown', nodes: [] });
  t.is(await exit, 0);
  await until(() => c.closed, 'client closed');
  t.is(c.closed!.code, 1001);
});

test('a client can connect and log in to the URL the node prints', async (t) => {
  const c = await ImClient.connect(node.url);
  t.is((await c.login({ token: await token('url-user') })).node, 'n1');
  c.close();
});
