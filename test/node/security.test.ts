// Auth, secrets and files against real node processes: tokens that must expire, audience and
// issuer, the data folder lock (and a restart after kill -9), file modes, the admin token, and
// insecure mode (loopback only, shown in /healthz, /cluster and /metrics).
import test from 'ava';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { ImError } from '../../src/client/client.ts';
import { SECRET, TestNode, cleanup, onCleanup, startNode } from '../helpers/node.ts';

test.after.always(cleanup);

const ADMIN = 'admin-token-for-the-security-test';

type Claims = { sub: string; iat?: number; exp?: number; aud?: string; iss?: string };
const nowS = () => Math.floor(Date.now() / 1000);
function sign(claims: Claims, secret = SECRET): Promise<string> {
  return new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

async function loginError(node: TestNode, token: string): Promise<ImError> {
  const c = await node.client();
  const e = await c.login({ token, device: 'd1' }).then(() => undefined, (err: unknown) => err);
  c.close();
  if (!(e instanceof ImError)) throw new Error(`expected an error reply, got ${String(e)}`);
  return e;
}

/** Starts a node that must refuse to start; resolves with its exit code and everything it printed. */
async function refusedStart(opts: ConstructorParameters<typeof TestNode>[1], data?: string): Promise<{ code: number | null; out: string }> {
  const dir = data ?? (await mkdtemp(join(tmpdir(), 'im-test-refused-')));
  if (!data) onCleanup(() => rm(dir, { recursive: true, force: true }));
  const n = new TestNode(dir, opts);
  const err = await n.start(0).then(() => undefined, (e: Error) => e);
  if (!err) {
    await n.kill();
    throw new Error('the node started, it should have refused');
  }
  return { code: n.proc!.exitCode, out: n.log.join('\n') };
}

const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

test('a token without exp is refused as unauthenticated, saying that tokens must expire', async (t) => {
  const node = await startNode({ name: 'sec-exp' });
  const e = await loginError(node, await sign({ sub: 'alice', iat: nowS() }));
  t.is(e.code, 'unauthenticated');
  t.regex(e.message, /no exp/);
  // The same token with an exp logs in: the refusal is about exp alone.
  const c = await node.client();
  const w = await c.login({ token: await sign({ sub: 'alice', iat: nowS(), exp: nowS() + 60 }), device: 'd1' });
  t.is(w.op, 'welcome');
});

test('--max-token-life, --token-audience and --token-issuer are enforced by the node', async (t) => {
  const node = await startNode({ name: 'sec-claims', args: ['--max-token-life', '3600', '--token-audience', 'im-chat', '--token-issuer', 'https://login.example'] });
  const good = { sub: 'bob', aud: 'im-chat', iss: 'https://login.example' };
  const tooLong = await loginError(node, await sign({ ...good, iat: nowS(), exp: nowS() + 7200 }));
  t.is(tooLong.code, 'unauthenticated');
  t.regex(tooLong.message, /--max-token-life/);
  // 30 days is the default life; a year-long token is refused here and there.
  t.regex((await loginError(node, await sign({ ...good, exp: nowS() + 365 * 86400 }))).message, /too long/);
  t.regex((await loginError(node, await sign({ ...good, aud: 'other', iat: nowS(), exp: nowS() + 60 }))).message, /audience/);
  t.regex((await loginError(node, await sign({ sub: 'bob', iss: good.iss, iat: nowS(), exp: nowS() + 60 }))).message, /audience/);
  t.regex((await loginError(node, await sign({ ...good, iss: 'https://evil.example', iat: nowS(), exp: nowS() + 60 }))).message, /issuer/);
  const c = await node.client();
  t.is((await c.login({ token: await sign({ ...good, iat: nowS(), exp: nowS() + 3600 }), device: 'd1' })).op, 'welcome');
});

test('a second node on the same data folder refuses while the first runs; after kill -9 the folder restarts', async (t) => {
  const first = await startNode({ name: 'sec-lock' });
  const second = await refusedStart({ name: 'sec-lock-2' }, first.data);
  t.is(second.code, 2);
  t.true(second.out.includes(`data folder ${first.data} is in use by pid ${first.proc!.pid}`), second.out);
  // The first node is untouched: still serving, its lock still its own.
  t.is((await first.get('/healthz')).status, 200);
  t.is((JSON.parse(await readFile(join(first.data, 'lock'), 'utf8')) as { pid: number }).pid, first.proc!.pid!);

  const { c } = await first.login('lock-alice');
  await c.send('lock-bob', 'c1', 'before the kill');
  c.close();
  await first.kill();
  // The lock of the killed process is stale: the restart takes it over.
  await first.start();
  t.is((JSON.parse(await readFile(join(first.data, 'lock'), 'utf8')) as { pid: number }).pid, first.proc!.pid!);
  t.true(first.log.some((l) => l.includes('took over the lock')));
  const { c: bob } = await first.login('lock-bob');
  const page = await bob.sync(0, 10);
  t.deepEqual(page.msgs.map((m) => m.body), ['before the kill']);
  // A graceful stop removes the lock.
  t.is(await first.stop(), 0);
  await t.throwsAsync(stat(join(first.data, 'lock')), { code: 'ENOENT' });
});

test('file modes: the data folder 0700; secret, swarm.key, peer.key, lock and store.db (with -wal, -shm) 0600', async (t) => {
  // An existing folder and database left open to others are narrowed at start.
  const data = await mkdtemp(join(tmpdir(), 'im-test-modes-'));
  await chmod(data, 0o755);
  await writeFile(join(data, 'store.db'), '', { mode: 0o644 });
  await chmod(join(data, 'store.db'), 0o644);
  // '--secret=' (empty) counts as unset, so that this node generates DATA/secret.
  const node = await startNode({ name: 'sec-modes', data, args: ['--secret='] });
  const secret = (await readFile(join(data, 'secret'), 'utf8')).trim();
  t.regex(secret, /^[0-9a-f]{64}$/);
  // A write, so that the WAL files exist.
  const c = await node.client();
  await c.login({ token: await sign({ sub: 'modes-alice', exp: nowS() + 60 }, secret), device: 'd1' });
  await c.send('modes-bob', 'c1', 'hi');
  t.is(await modeOf(data), 0o700);
  for (const f of ['secret', 'swarm.key', 'peer.key', 'lock', 'store.db', 'store.db-wal', 'store.db-shm']) t.is(await modeOf(join(data, f)), 0o600, f);
  // Written atomically: no temporary file is left beside them.
  t.deepEqual((await readdir(data)).filter((f) => f.endsWith('.tmp') || f.endsWith('.stale')), []);
});

test('the compile cache is the user\'s own (0700), written once the node is up, and off with NODE_DISABLE_COMPILE_CACHE', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'im-test-cache-'));
  onCleanup(() => rm(home, { recursive: true, force: true }));
  const cache = join(home, 'on', 'imring', 'compile-cache');
  // Unset (an empty NODE_DISABLE_COMPILE_CACHE counts as set): this test needs the default place.
  const env = { NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined };
  const on = await startNode({ name: 'sec-cache', env: { ...env, XDG_CACHE_HOME: join(home, 'on') } });
  t.is(await modeOf(cache), 0o700);
  // Written while the node runs (a node that is killed keeps it), one folder per Node build.
  const files = await readdir(cache, { recursive: true });
  t.true(files.length > 1, `cache holds ${files.join(', ')}`);
  await on.stop();
  await startNode({ name: 'sec-nocache', env: { ...env, XDG_CACHE_HOME: join(home, 'off'), NODE_DISABLE_COMPILE_CACHE: '1' } });
  t.deepEqual(await readdir(join(home, 'off', 'imring', 'compile-cache')).catch(() => []), []);
});

test('a node refuses to start with a secret shorter than 32 bytes, from --secret or from DATA/secret', async (t) => {
  const flag = await refusedStart({ name: 'sec-short', args: ['--secret', 'test-secret-please-change'] });
  t.is(flag.code, 2);
  t.regex(flag.out, /--secret \(IM_SECRET\) is 25 bytes; a token secret must be at least 32 bytes/);

  const data = await mkdtemp(join(tmpdir(), 'im-test-short-'));
  onCleanup(() => rm(data, { recursive: true, force: true }));
  await writeFile(join(data, 'secret'), 'short-secret\n', { mode: 0o600 });
  const file = await refusedStart({ name: 'sec-short-file', args: ['--secret='] }, data);
  t.is(file.code, 2);
  t.true(file.out.includes(`the secret in ${join(data, 'secret')} is 12 bytes`), file.out);
  // The refused start left the folder unlocked.
  await t.throwsAsync(stat(join(data, 'lock')), { code: 'ENOENT' });
});

test('--admin-token gates /cluster and /metrics (401 with a JSON error), not /healthz', async (t) => {
  const node = await startNode({ name: 'sec-admin', args: ['--admin-token', ADMIN] });
  const get = (path: string, auth?: string) => fetch(node.http + path, auth ? { headers: { authorization: auth } } : {});
  t.is((await get('/healthz')).status, 200);
  for (const path of ['/cluster', '/metrics']) {
    for (const auth of [undefined, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.slice(0, -1)}`, 'Bearer ', ADMIN, `Basic ${ADMIN}`]) {
      const r = await get(path, auth);
      t.is(r.status, 401, `${path} with ${auth}`);
      t.regex(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      t.like(await r.json(), { error: 'unauthorized' });
    }
    const ok = await get(path, `Bearer ${ADMIN}`);
    t.is(ok.status, 200, path);
    const okLower = await get(path, `bearer ${ADMIN}`);
    t.is(okLower.status, 200, `${path} bearer in lower case`);
  }
  const cluster = (await (await get('/cluster', `Bearer ${ADMIN}`)).json()) as { node: string; insecure?: boolean };
  t.is(cluster.node, 'sec-admin');
  t.false('insecure' in cluster);
  const metrics = await (await get('/metrics', `Bearer ${ADMIN}`)).text();
  t.regex(metrics, /^im_insecure\{node="sec-admin"\} 0$/m);
});

test('insecure mode: shown in /healthz, /cluster and im_insecure; refused on a non-loopback host', async (t) => {
  const node = await startNode({ name: 'sec-insecure', args: ['--insecure'] });
  t.true(node.log.some((l) => l.includes('INSECURE MODE')));
  const h = await node.get('/healthz');
  t.is(h.status, 200);
  t.deepEqual(JSON.parse(h.text), { ok: true, node: 'sec-insecure', state: 'serving', insecure: true });
  t.is((JSON.parse((await node.get('/cluster')).text) as { insecure?: boolean }).insecure, true);
  t.regex((await node.get('/metrics')).text, /^im_insecure\{node="sec-insecure"\} 1$/m);
  const c = await node.client();
  t.is((await c.login({ user: 'ins-alice' })).op, 'welcome');

  for (const opts of [{ args: ['--insecure', '--host', '0.0.0.0'] }, { args: ['--host', '0.0.0.0'], env: { IM_INSECURE: '1' } }]) {
    const r = await refusedStart({ name: 'sec-insecure-open', ...opts });
    t.is(r.code, 2);
    t.regex(r.out, /--insecure \(IM_INSECURE\) is for local development only: it needs a loopback --host/);
  }
});
