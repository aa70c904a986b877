// The `im` command (bin/im) as a user runs it: a child process against a real node, judged by
// its output and exit code.
import test from 'ava';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { jwtVerify } from 'jose';
import { ImClient } from '../../src/client/client.ts';
import { SECRET, cleanup, retrying, startNode, token, until } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestNode } from '../helpers/node.ts';
import type { MsgEvent, SentReply } from '../../src/protocol/frames.ts';

const IM = resolve(import.meta.dirname, '../../bin/im');

let node: TestNode;
let empty: string; // an IM_DATA without a secret, so that nothing is found by accident
const children = new Set<ChildProcess>();

test.before(async () => {
  node = await startNode();
  empty = await mkdtemp(join(tmpdir(), 'im-cli-'));
});
test.after.always(async () => {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await cleanup();
  await rm(empty, { recursive: true, force: true });
});

/** The environment without any IM_* variable of the caller's, plus the given ones. */
function envWith(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('IM_')) env[k] = v;
  return { ...env, IM_DATA: empty, ...extra };
}

type Run = { code: number | null; stdout: string; stderr: string };

function start(args: string[], env: Record<string, string> = {}): { proc: ChildProcess; out: string[]; err: () => string; exited: Promise<Run> } {
  const proc = spawn(IM, args, { env: envWith(env), cwd: empty, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let stdout = '';
  let stderr = '';
  const out: string[] = [];
  let partial = '';
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    out.push(...lines);
  });
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = once(proc, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { proc, out, err: () => stderr, exited };
}

const im = (args: string[], env: Record<string, string> = {}): Promise<Run> => start(args, env).exited;

test('im token prints a JWT for the user that verifies with the secret and logs in', async (t) => {
  const r = await im(['token', 'tok-alice', '--secret', SECRET, '--exp', '10m']);
  t.is(r.code, 0, r.stderr);
  const jwt = r.stdout.trim();
  const { payload, protectedHeader } = await jwtVerify(jwt, new TextEncoder().encode(SECRET));
  t.is(protectedHeader.alg, 'HS256');
  t.is(payload.sub, 'tok-alice');
  t.true(Math.abs(payload.exp! - payload.iat! - 600) <= 1, 'expires in 10 minutes (iat and exp may straddle a second)');
  const c = await ImClient.connect(node.url);
  try {
    const w = await c.login({ token: jwt, device: 'd1' });
    t.is(w.user, 'tok-alice');
  } finally {
    c.close();
  }
});

test('im token finds the secret in IM_SECRET, then in $IM_DATA/secret', async (t) => {
  const viaEnv = await im(['token', 'tok-env'], { IM_SECRET: SECRET });
  t.is(viaEnv.code, 0, viaEnv.stderr);
  t.is((await jwtVerify(viaEnv.stdout.trim(), new TextEncoder().encode(SECRET))).payload.sub, 'tok-env');

  const data = await mkdtemp(join(tmpdir(), 'im-cli-data-'));
  try {
    await writeFile(join(data, 'secret'), 'file-secret\n');
    const viaFile = await im(['token', 'tok-file'], { IM_DATA: data });
    t.is(viaFile.code, 0, viaFile.stderr);
    t.is((await jwtVerify(viaFile.stdout.trim(), new TextEncoder().encode('file-secret'))).payload.sub, 'tok-file');
  } finally {
    await rm(data, { recursive: true, force: true });
  }
});

test('im send prints the sent reply, and im listen --json shows the message', async (t) => {
  const sent = await im(['send', 'cli-bob', 'hello', 'from', 'the', 'cli', '--as', 'cli-alice', '--url', node.url, '--cid', 'cli-c1'], { IM_SECRET: SECRET });
  t.is(sent.code, 0, sent.stderr);
  const reply = JSON.parse(sent.stdout.trim()) as SentReply;
  t.like(reply, { op: 'sent', seq: 1 });

  const again = await im(['send', 'cli-bob', 'hello', 'from', 'the', 'cli', '--as', 'cli-alice', '--url', node.url, '--cid', 'cli-c1'], { IM_SECRET: SECRET });
  t.like(JSON.parse(again.stdout.trim()), { op: 'sent', mid: reply.mid, dup: true });

  const listen = start(['listen', '--json', '--as', 'cli-bob', '--url', node.url, '--secret', SECRET]);
  const line = await until(() => listen.out.find((l) => l.includes(reply.mid)) ?? '', 'the message in im listen', 10_000);
  t.like(JSON.parse(line) as MsgEvent, { op: 'msg', seq: 1, mid: reply.mid, from: 'cli-alice', to: 'cli-bob', body: 'hello from the cli' });
  listen.proc.kill('SIGINT');
  const r = await listen.exited;
  t.is(r.code, 0, r.stderr);
});

test('im group manages a group and im send g:<group> sends to it', async (t) => {
  const env = { IM_SECRET: SECRET };
  const as = (u: string) => ['--as', u, '--url', node.url];
  t.is((await im(['group', 'create', 'cli-g', 'cli-gb', ...as('cli-ga')], env)).code, 0);
  t.is((await im(['group', 'add', 'cli-g', 'cli-gc', ...as('cli-ga')], env)).code, 0);
  const info = await im(['group', 'info', 'cli-g', ...as('cli-gb')], env);
  t.like(JSON.parse(info.stdout), { op: 'group', group: 'cli-g', owner: 'cli-ga', members: ['cli-ga', 'cli-gb', 'cli-gc'] });
  const sent = await im(['send', 'g:cli-g', 'hello', 'group', ...as('cli-gc')], env);
  t.is(sent.code, 0, sent.stderr);
  const listen = start(['listen', ...as('cli-gb'), '--secret', SECRET]);
  t.truthy(await until(() => listen.out.find((l) => l.includes('cli-gc → g:cli-g: hello group')), 'the group message in im listen', 10_000));
  listen.proc.kill('SIGINT');
  await listen.exited;
  const no = await im(['group', 'add', 'cli-g', 'x', ...as('cli-gb')], env);
  t.is(no.code, 1);
  t.regex(no.stderr, /^error forbidden: /);
  t.is((await im(['group', 'explode', 'cli-g', ...as('cli-ga')], env)).code, 2);
});

test('im listen prints replay then live messages as text, and --ack moves the cursor', async (t) => {
  const { c: alice } = await node.login('ack-alice');
  await alice.send('ack-bob', 'a1', 'first');
  const listen = start(['listen', '--ack', '--as', 'ack-bob', '--url', node.url], { IM_TOKEN: await token('ack-bob') });
  await until(() => listen.out.includes('[seq 1] ack-alice → ack-bob: first'), 'the replayed message', 10_000);
  const live = await alice.send('ack-bob', 'a2', 'second\nline');
  t.is(live.seq, 2);
  await until(() => listen.out.includes('[seq 2] ack-alice → ack-bob: second ⏎ line'), 'the live message', 10_000);
  // The acks are sent without a reply; the welcome of a second device-cli login reports them.
  await until(async () => {
    const probe = await ImClient.connect(node.url);
    try {
      const w = await probe.login({ token: await token('ack-bob'), device: 'cli', since: 2 });
      return w.acked === 2;
    } finally {
      probe.close();
    }
  }, 'the acked cursor to reach 2', 10_000);
  // That probe logged in as the same device, which replaces the listener.
  const r = await listen.exited;
  t.is(r.code, 1);
  t.regex(r.stderr, /goaway.*replaced/);
  t.deepEqual(listen.out, ['[seq 1] ack-alice → ack-bob: first', '[seq 2] ack-alice → ack-bob: second ⏎ line']);
});

test('im listen exits 0 with the reason when the node shuts down', async (t) => {
  const own = await startNode({ args: ['--insecure'] });
  const listen = start(['listen', '--as', 'bye-bob', '--url', own.url]);
  await until(() => listen.err().includes('listening as bye-bob/cli'), 'im listen to log in', 10_000);
  await own.stop();
  const r = await listen.exited;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /goaway from the node: shutdown/);
});

test('without token or secret, im send logs in with {"user"}: accepted by an insecure node only', async (t) => {
  const insecure = await startNode({ args: ['--insecure'] });
  const ok = await im(['send', 'ins-bob', 'hi', '--as', 'ins-alice', '--url', insecure.url]);
  t.is(ok.code, 0, ok.stderr);
  t.like(JSON.parse(ok.stdout.trim()), { op: 'sent', seq: 1 });

  const refused = await im(['send', 'ins-bob', 'hi', '--as', 'ins-alice', '--url', node.url]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^error unauthenticated: /);

  // A secret that does not match (a stale ./data/secret) must not lock one out of an insecure node.
  const stale = await im(['send', 'ins-bob', 'hi again', '--as', 'ins-alice', '--url', insecure.url, '--secret', 'stale']);
  t.is(stale.code, 0, stale.stderr);
  t.like(JSON.parse(stale.stdout.trim()), { op: 'sent', seq: 2 });
  const wrong = await im(['send', 'ins-bob', 'hi', '--as', 'ins-alice', '--url', node.url, '--secret', 'stale']);
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /^error unauthenticated: invalid token/);
});

test('an error reply prints error <code>: <message> and exits 1', async (t) => {
  const r = await im(['send', 'big-bob', 'x'.repeat(17_000), '--as', 'big-alice', '--url', node.url, '--secret', SECRET]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^error too_large: body is over 16384 bytes/);
  t.is(r.stdout, '');
});

test('bad usage exits 2 with a message', async (t) => {
  const cases: string[][] = [
    [],
    ['frobnicate'],
    ['token'],
    ['token', 'not a user', '--secret', 's'],
    ['token', 'alice'], // no secret anywhere
    ['token', 'alice', '--secret', 's', '--exp', 'soon'],
    ['send', '--as', 'alice', 'bob'],
    ['send', 'bob', 'hi'], // neither --as nor a token
    ['send', '--as', 'alice', 'bob', 'hi', '--url', 'http://127.0.0.1:1/ws'],
    ['listen', '--as', 'alice', '--since', 'x'],
    ['listen', '--as', 'alice', '--bogus'],
  ];
  for (const args of cases) {
    const r = await im(args);
    t.is(r.code, 2, `im ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /^(im: |usage: )/, `im ${args.join(' ')}`);
    t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('--help prints usage and exits 0', async (t) => {
  for (const args of [['--help'], ['send', '--help'], ['listen', '--help'], ['token', '--help']]) {
    const r = await im(args);
    t.is(r.code, 0);
    t.regex(r.stdout, /^usage: im/);
  }
});

test('an unreachable URL exits 1 with a clear message', async (t) => {
  // A port that was just free: nothing listens on it.
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((ok) => srv.close(() => ok()));
  for (const cmd of [['send', 'bob', 'hi'], ['listen']]) {
    const r = await im([...cmd, '--as', 'alice', '--url', `ws://127.0.0.1:${port}/ws`]);
    t.is(r.code, 1);
    t.regex(r.stderr, new RegExp(`^im: cannot connect to ws://127.0.0.1:${port}/ws: .*ECONNREFUSED`));
    t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('im listen follows a goaway to another node and prints every message once, in order', async (t) => {
  const cluster = await startCluster(2);
  const [n1, n2] = cluster.nodes as [TestNode, TestNode];
  const listen = start(['listen', '--as', 'fo-bob', '--url', `${n1.url},${n2.url}`], { IM_TOKEN: await token('fo-bob') });
  await until(() => /listening as fo-bob\/cli on (n\d)/.test(listen.err()), 'im listen to log in', 10_000);
  const on = /listening as fo-bob\/cli on (n\d)/.exec(listen.err())![1];
  const [leaving, staying] = on === n1.opts.name ? [n1, n2] : [n2, n1];
  const { c: alice } = await staying.login('fo-alice');
  for (let i = 1; i <= 5; i++) await alice.send('fo-bob', `b${i}`, `before ${i}`);
  await until(() => listen.out.length === 5, 'five messages', 10_000);
  await leaving.stop(); // goaway shutdown naming the other node
  for (let i = 1; i <= 5; i++) await retrying(() => alice.send('fo-bob', `a${i}`, `after ${i}`));
  await until(() => listen.out.length === 10, () => `ten messages (${listen.out.length}): ${listen.err()}`, 30_000);
  t.deepEqual(listen.out, [1, 2, 3, 4, 5].map((i) => `[seq ${i}] fo-alice → fo-bob: before ${i}`).concat([1, 2, 3, 4, 5].map((i) => `[seq ${i + 5}] fo-alice → fo-bob: after ${i}`)));
  t.regex(listen.err(), /goaway from the node: shutdown \(going to another node/);
  t.regex(listen.err(), new RegExp(`listening as fo-bob/cli on ${staying.opts.name}`));
  listen.proc.kill('SIGINT');
  t.is((await listen.exited).code, 0);
});
