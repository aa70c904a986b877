// The cluster page (/admin) in a real Chromium against a real cluster run by scripts/cluster.sh:
// it lists the members and draws the ring, shows a fourth member after `cluster.sh add` and sees
// it leave "up" after `cluster.sh kill 4`, with no console error. Then the admin token gate, on a
// node of its own (cluster.sh cannot pass --admin-token: its own readiness probe reads /cluster
// without one).
// IM_SCREENSHOTS=1 saves docs/images/admin.png (the README's picture); otherwise the screenshot
// goes to a temporary folder, so that taking it is tested too.
import test from 'ava';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { ImClient } from '../../src/client/client.ts';
import { TestBrowser } from '../helpers/browser.ts';
import { ensureBuilt } from '../helpers/build.ts';
import { freeRun } from '../helpers/ports.ts';
import { runScript } from '../helpers/script.ts';
import type { ScriptRun } from '../helpers/script.ts';
import { cleanup, SECRET, startNode } from '../helpers/node.ts';

// Page functions (waitForFunction, evaluate) run in the browser; this file is type-checked without
// the DOM library, so the little of the DOM they use is declared here, in this module only.
type El = { textContent: string | null; getAttribute(name: string): string | null };
declare const document: { querySelectorAll(sel: string): ArrayLike<El> & Iterable<El>; querySelector(sel: string): El | null };
declare const location: { href: string };

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPT = join(ROOT, 'scripts/cluster.sh');
const SHOTS = process.env.IM_SCREENSHOTS === '1';
/** Generous: the page polls every second, a join copies data, and CPU burners may share the cores. */
const WAIT = 60_000;

let data = '';
let ws = 0;
let env: Record<string, string> = {};
let b: TestBrowser;
const clients: ImClient[] = [];

function sh(...args: string[]): Promise<ScriptRun> {
  return runScript(SCRIPT, args, env);
}

test.before(async () => {
  ensureBuilt();
  data = await mkdtemp(join(tmpdir(), 'im-admin-'));
  ws = await freeRun(4);
  const p2p = await freeRun(4, [ws]);
  env = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('IM_') && v !== undefined)) as Record<string, string>;
  // Insecure: the traffic below logs in by user name, without tokens.
  Object.assign(env, { IM_DATA: data, IM_WS_PORT: String(ws), IM_P2P_PORT: String(p2p), IM_SECRET: SECRET, IM_INSECURE: '1' });
  b = await TestBrowser.launch();
});

test.after.always(async () => {
  for (const c of clients) c.close();
  await b?.close();
  await cleanup();
  if (!data) return;
  await sh('stop');
  // Whatever did not stop (a failed test): SIGKILL by the pids cluster.sh recorded.
  for (const d of await readdir(data).catch(() => [] as string[])) {
    const pid = Number(await readFile(join(data, d, 'pid'), 'utf8').catch(() => ''));
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  await rm(data, { recursive: true, force: true });
});

const upRows = (page: Page, n: number) =>
  page.waitForFunction((n) => document.querySelectorAll('[data-test=member][data-state=up]').length === n, n, { timeout: WAIT });

/** The ring's legend: member -> percent of keys. */
async function legend(page: Page): Promise<Record<string, number>> {
  return page.locator('[data-test=ring-legend]').evaluateAll((els) =>
    Object.fromEntries(els.map((e) => [e.getAttribute('data-member')!, Number(e.getAttribute('data-share'))])));
}

/** Two users chatting for a while (alice on node 1, bob on node 2), so that the rates are not 0. */
async function chat(count: number, overMs: number): Promise<void> {
  const alice = await ImClient.connect(`ws://127.0.0.1:${ws}/ws`);
  const bob = await ImClient.connect(`ws://127.0.0.1:${ws + 1}/ws`);
  clients.push(alice, bob);
  await alice.login({ user: 'alice', device: 'd1' });
  await bob.login({ user: 'bob', device: 'd1' });
  for (let i = 0; i < count; i++) {
    const [from, to] = i % 2 ? [bob, 'alice'] : [alice, 'bob'];
    await from.send(to, `c${i}`, `hello ${i}`);
    await new Promise((r) => setTimeout(r, overMs / count));
  }
}

test.serial('the cluster page follows cluster.sh start, add and kill', async (t) => {
  const started = await sh('start', '3');
  t.is(started.code, 0, started.err);
  const page = await b.open(`http://127.0.0.1:${ws}/admin`, { viewport: { width: 1100, height: 800 } });

  await upRows(page, 3);
  t.deepEqual(await page.locator('[data-test=member]').evaluateAll((els) => els.map((e) => e.getAttribute('data-name'))), ['node-1', 'node-2', 'node-3']);
  // The ring: one drawn path per member, and shares that add up.
  await page.waitForFunction(() => document.querySelectorAll('[data-test=ring] path[data-member]:not([d=""])').length === 3, null, { timeout: WAIT });
  const three = await legend(page);
  t.deepEqual(Object.keys(three).sort(), ['node-1', 'node-2', 'node-3']);
  const sum = Object.values(three).reduce((a, v) => a + v, 0);
  t.true(Math.abs(sum - 100) < 0.1, `shares add up to ${sum}`);
  for (const [m, s] of Object.entries(three)) t.true(s >= 20 && s <= 50, `${m}: ${s}%`);
  t.regex(await page.locator('[data-test=ring]').textContent() ?? '', /3 members/);
  t.is(await page.locator('[data-test=via]').textContent(), 'node-1');

  // Traffic shows as messages per second on some member (the sender's home counts it).
  await chat(SHOTS ? 200 : 40, SHOTS ? 10_000 : 2000);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-test=msgs-rate]')].some((e) => Number(e.textContent!.replace(/,/g, '')) > 0), null, { timeout: WAIT });

  const added = await sh('add');
  t.is(added.code, 0, added.err);
  t.regex(added.out, /^node-4 ws:/m);
  await upRows(page, 4);
  await page.waitForFunction(() => document.querySelectorAll('[data-test=ring-legend]').length === 4, null, { timeout: WAIT });
  const four = await legend(page);
  t.deepEqual(Object.keys(four).sort(), ['node-1', 'node-2', 'node-3', 'node-4']);
  t.true(Math.abs(Object.values(four).reduce((a, v) => a + v, 0) - 100) < 0.1);
  t.regex(await page.locator('[data-test=ring]').textContent() ?? '', /4 members/);
  t.true(await page.locator('.uplot canvas').count() >= 3, 'three uPlot charts');
  // Every chart gets a series for the new member (its colour in the charts' legend).
  await page.locator('.chart-legend span', { hasText: 'node-4' }).waitFor({ timeout: WAIT });

  // Screenshot: once the charts have a few points for node 4 too.
  await page.waitForTimeout(SHOTS ? 5000 : 0);
  const shotDir = SHOTS ? join(ROOT, 'docs/images') : data;
  await mkdir(shotDir, { recursive: true });
  const shot = join(shotDir, 'admin.png');
  await page.screenshot({ path: shot });
  t.true(statSync(shot).size > 10_000, 'a screenshot with something on it');

  const killed = await sh('kill', '4');
  t.is(killed.code, 0, killed.err);
  const row4 = page.locator('[data-test=member][data-name=node-4]');
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-test=member][data-name=node-4]')?.getAttribute('data-state');
    return s === 'suspect' || s === 'dead';
  }, null, { timeout: WAIT });
  t.regex(await row4.getAttribute('data-state') ?? '', /^(suspect|dead)$/);
  t.is(await page.locator('[data-test=unreachable]').count(), 0, 'node 1 itself stays reachable');
  t.deepEqual(b.errors, []);
});

test.serial('behind --admin-token the page asks for the token and keeps it for the tab', async (t) => {
  const token = 'an-admin-token-of-32-bytes-or-so';
  const n = await startNode({ name: 'n1', args: ['--admin-token', token] });
  const from = b.errors.length;
  const page = await b.open(`${n.http}/admin`);
  const input = page.locator('[data-test=admin-token]');
  await input.waitFor({ timeout: WAIT });
  t.is(await page.locator('[data-test=member]').count(), 0);

  // A wrong token: refused, the form stays.
  await input.fill('not-the-token-at-all');
  await page.locator('[data-test=admin-token-submit]').click();
  await page.locator('[data-test=token-refused]').waitFor({ timeout: WAIT });
  t.true(await input.isVisible());
  t.is(await page.locator('[data-test=member]').count(), 0);

  await input.fill(token);
  await page.locator('[data-test=admin-token-submit]').click();
  await page.locator('[data-test=member][data-name=n1][data-state=up]').waitFor({ timeout: WAIT });
  t.is(await page.locator('[data-test=admin-token]').count(), 0);
  // Kept in sessionStorage: a reload asks no more.
  await page.reload();
  await page.locator('[data-test=member][data-name=n1]').waitFor({ timeout: WAIT });
  t.is(await page.locator('[data-test=admin-token]').count(), 0);

  // A link with #token=: taken, and gone from the address bar (another tab: its own storage).
  const linked = await b.open(`${n.http}/admin#token=${encodeURIComponent(token)}`);
  await linked.locator('[data-test=member][data-name=n1][data-state=up]').waitFor({ timeout: WAIT });
  t.is(new URL(linked.url()).hash, '');
  t.is(await linked.evaluate(() => location.href.includes('token')), false);

  // The only console errors: Chromium's own lines for the 401 answers.
  const other = b.errors.slice(from).filter((e) => !/status of 401/.test(e));
  t.deepEqual(other, []);
  t.true(b.errors.length > from, 'the 401s were seen');
});
