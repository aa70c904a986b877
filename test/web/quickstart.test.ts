// The README's quick start as a newcomer lives it: `npm start` (scripts/dev.sh) brings up a
// three-node development cluster and prints the chat's URL; two browser tabs log in as two users
// and exchange a message; all within a minute; Ctrl-C stops every node. The elapsed times go to
// the test log (the closing note of issue 12 quotes them).
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { TestBrowser } from '../helpers/browser.ts';
import { ensureBuilt } from '../helpers/build.ts';
import { freeRun } from '../helpers/ports.ts';
import { until } from '../helpers/node.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const WAIT = 30_000;

test('npm start, then two tabs chat within a minute; Ctrl-C stops the cluster', async (t) => {
  ensureBuilt(); // npm start's prestart does this
  const data = await mkdtemp(join(tmpdir(), 'im-quickstart-'));
  const ws = await freeRun(3);
  const p2p = await freeRun(3, [ws]);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IM_'))) as Record<string, string>;
  Object.assign(env, { IM_DATA: data, IM_WS_PORT: String(ws), IM_P2P_PORT: String(p2p) });
  const t0 = Date.now();
  const dev = spawn('bash', [join(ROOT, 'scripts/dev.sh')], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  dev.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  dev.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((ok) => dev.once('exit', (code) => ok(code)));
  const b = await TestBrowser.launch();
  try {
    await until(() => out.includes('imring is running'), () => `npm start to print its URLs:\n${out}`, 60_000, 100);
    const ready = Date.now() - t0;
    const url = /Chat\s+(http:\/\/\S+)/.exec(out)?.[1];
    t.is(url, `http://127.0.0.1:${ws}/`);
    t.regex(out, /development mode/);

    const tab = async (user: string): Promise<Page> => {
      const page = await b.open(url!);
      await page.locator('[data-test="dev-banner"]').waitFor({ timeout: WAIT }); // insecure mode is said on the page
      await page.locator('[data-test="login-user"]').fill(user);
      await page.locator('[data-test="login-submit"]').click();
      await page.locator('[data-test="conn-state"][data-state="live"]').waitFor({ timeout: WAIT });
      return page;
    };
    const [alice, bob] = [await tab('alice'), await tab('bob')];
    await alice.locator('[data-test="new-chat-user"]').fill('bob');
    await alice.locator('[data-test="new-chat-user"]').press('Enter');
    await alice.locator('[data-test="composer"]').fill('hello bob');
    await alice.locator('[data-test="send"]').click();
    await alice.locator('[data-test="message"][data-state="sent"]', { hasText: 'hello bob' }).waitFor({ timeout: WAIT });
    await bob.locator('[data-test="conversation"][data-conv="dm:alice:bob"]').click({ timeout: WAIT });
    await bob.locator('[data-test="message"]', { hasText: 'hello bob' }).waitFor({ timeout: WAIT });
    const chatted = Date.now() - t0;
    t.true(chatted < 60_000, `the first message took ${chatted} ms from npm start`);
    t.log(`npm start printed its URLs after ${(ready / 1000).toFixed(1)} s; the first message between two tabs arrived ${(chatted / 1000).toFixed(1)} s after npm start`);
    t.deepEqual(b.errors, []);
  } finally {
    await b.close();
    if (dev.exitCode === null) process.kill(-dev.pid!, 'SIGINT');
  }
  t.is(await exited, 0, out);
  t.regex(out, /stopped node-1/);
  // Every node is gone: nothing answers on the three ports.
  for (let i = 0; i < 3; i++) {
    const alive = await fetch(`http://127.0.0.1:${ws + i}/healthz`, { signal: AbortSignal.timeout(1000) }).then(() => true, () => false);
    t.false(alive, `node ${i + 1} still answers`);
  }
  await rm(data, { recursive: true, force: true });
});
