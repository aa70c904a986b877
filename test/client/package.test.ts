// The SDK as another project gets it: `npm pack` of packages/client, installed from the tarball
// into a fresh project, then used from Node (a session sends and receives through a real node),
// type-checked by tsc from its shipped declarations, and bundled by esbuild for a browser where
// it chats through the same node in real Chromium.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { cleanup, startNode } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { TestBrowser } from '../helpers/browser.ts';
import { ensureBuilt } from '../helpers/build.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const NODE_BIN = join(ROOT, 'node_modules/.bin');

let node: TestNode;
let project: string;

test.before(async () => {
  ensureBuilt();
  node = await startNode({ args: ['--insecure'] });
  project = await mkdtemp(join(tmpdir(), 'im-sdk-consumer-'));
  const { stdout } = await run('npm', ['pack', join(ROOT, 'packages/client'), '--pack-destination', project, '--json'], { cwd: project });
  const tarball = (JSON.parse(stdout) as { filename: string }[])[0]!.filename;
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The SDK has no dependencies, so the install needs no registry.
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(project, tarball)], { cwd: project, env: { ...process.env, PATH: `${NODE_BIN}:${process.env.PATH}` } });
});
test.after.always(async () => {
  await cleanup();
  if (project) await rm(project, { recursive: true, force: true });
});

test('the packed tarball holds the bundle and its declarations, nothing else', async (t) => {
  const { stdout } = await run('npm', ['pack', join(ROOT, 'packages/client'), '--dry-run', '--json'], { cwd: project });
  const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path).sort();
  t.true(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('package.json'), files.join(', '));
  t.true(files.every((f) => f === 'package.json' || f === 'README.md' || f.startsWith('dist/')), files.join(', '));
  const pkg = JSON.parse(await readFile(join(project, 'node_modules/@imring/client/package.json'), 'utf8')) as { dependencies?: object };
  t.is(pkg.dependencies, undefined, 'no runtime dependencies');
});

test('installed in another project, it chats from Node', async (t) => {
  await writeFile(join(project, 'chat.mjs'), `
    import { ImSession, dmConv } from '@imring/client';
    const urls = [process.argv[2]];
    const alice = new ImSession({ urls, user: 'pkg-alice', device: 'node', since: 0 });
    const bob = new ImSession({ urls, user: 'pkg-bob', device: 'node', since: 0 });
    const got = new Promise((ok) => bob.on('message', (m) => ok(m)));
    await Promise.all([alice.ready(), bob.ready()]);
    const sent = await alice.sendTo('pkg-bob', 'hello from an installed package');
    const m = await got;
    console.log(JSON.stringify({ sent: sent.seq, body: m.body, conv: m.conv, expected: dmConv('pkg-alice', 'pkg-bob') }));
    alice.close(); bob.close();
  `);
  const { stdout } = await run(process.execPath, ['chat.mjs', node.url], { cwd: project, timeout: 20_000 });
  const r = JSON.parse(stdout.trim()) as { sent: number; body: string; conv: string; expected: string };
  t.is(r.sent, 1);
  t.is(r.body, 'hello from an installed package');
  t.is(r.conv, r.expected);
});

test('its declarations type-check a consumer, and catch a wrong call', async (t) => {
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, lib: ['es2022', 'dom'], types: [] },
    files: ['good.ts'],
  }));
  await writeFile(join(project, 'good.ts'), `
    import { ImSession, type Entry, type StateInfo } from '@imring/client';
    const s = new ImSession({ urls: ['ws://127.0.0.1:1/ws'], user: 'u' });
    s.on('message', (e: Entry) => e.seq + 1);
    s.on('state', (i: StateInfo) => i.state === 'live');
    export const p: Promise<number> = s.sendTo('bob', 'hi').then((r) => r.seq);
  `);
  await t.notThrowsAsync(run(join(NODE_BIN, 'tsc'), ['-p', project], { cwd: project }));
  await writeFile(join(project, 'good.ts'), `
    import { ImSession } from '@imring/client';
    const s = new ImSession({ urls: ['ws://127.0.0.1:1/ws'], user: 'u' });
    s.sendTo(42, 'hi');
  `);
  const e = await t.throwsAsync(run(join(NODE_BIN, 'tsc'), ['-p', project], { cwd: project }));
  t.regex(String((e as { stdout?: string }).stdout), /not assignable/);
});

test('bundled for a browser, it chats in Chromium', async (t) => {
  await writeFile(join(project, 'browser.js'), `
    import { ImSession } from '@imring/client';
    const url = new URLSearchParams(location.hash.slice(1)).get('ws');
    const a = new ImSession({ urls: [url], user: 'web-alice', device: 'tab', since: 0 });
    const b = new ImSession({ urls: [url], user: 'web-bob', device: 'tab', since: 0 });
    b.on('message', (m) => { window.result = { body: m.body, from: m.from, state: b.state.state }; });
    Promise.all([a.ready(), b.ready()]).then(() => a.sendTo('web-bob', 'hello from a browser bundle'));
  `);
  const r = await build({ entryPoints: [join(project, 'browser.js')], bundle: true, format: 'esm', platform: 'browser', write: false, absWorkingDir: project, logLevel: 'silent' });
  const code = r.outputFiles[0]!.text;
  t.false(/\brequire\(|["']node:[a-z]/.test(code), 'the browser bundle needs nothing from Node');
  const b = await TestBrowser.launch();
  try {
    const page = await b.open(`${node.http}/healthz#ws=${encodeURIComponent(node.url)}`);
    await page.addScriptTag({ content: code, type: 'module' });
    const result = await page.waitForFunction(() => (globalThis as { result?: unknown }).result, undefined, { timeout: 20_000 });
    t.deepEqual(await result.jsonValue(), { body: 'hello from a browser bundle', from: 'web-alice', state: 'live' });
    t.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});
