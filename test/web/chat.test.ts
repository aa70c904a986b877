// The web chat app (src/web/chat) in a real Chromium against a real three-node insecure cluster:
// two users chatting both ways, an offline device catching up, a group of three, typing, two tabs
// of one user, and a failover when the node a tab is connected to is killed. Every test ends with
// no console errors on any page. Waits are Playwright's polling with generous timeouts (the tests
// must pass on a loaded machine); nothing sleeps a fixed time.
//
// `IM_SCREENSHOTS=1 npx ava test/web/chat.test.ts` also refreshes docs/images/chat.png (the
// README's screenshot), taken in the first test.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { cleanup, onCleanup, token } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { TestBrowser } from '../helpers/browser.ts';
import { ensureBuilt } from '../helpers/build.ts';
import { ImSession, dmConv } from '../../src/client/index.ts';

// The functions passed to page.evaluate and waitForFunction run in the page; the root tsconfig
// has no DOM lib (it type-checks Node code), so the little of the DOM they use is declared here.
type Els = Iterable<El> & { length: number; forEach(fn: (el: El) => void): void };
type El = {
  getAttribute(name: string): string | null; querySelector(sel: string): El | null; querySelectorAll(sel: string): Els;
  textContent: string | null; hidden?: boolean; scrollTop: number; getBoundingClientRect(): { top: number; bottom: number };
};
declare const document: { querySelector(sel: string): El | null; querySelectorAll(sel: string): Els; body: unknown };
declare const window: { stateLog?: string[] };
declare const Element: { new (): El; prototype: El };
declare class MutationObserver {
  constructor(fn: (records: { type: string; target: unknown; addedNodes: Iterable<unknown> }[]) => void);
  observe(target: unknown, opts: Record<string, unknown>): void;
}

const WAIT = 30_000;
const ROOT = resolve(import.meta.dirname, '../..');

let cluster: TestCluster;
let b: TestBrowser;

test.before(async () => {
  ensureBuilt();
  // A rate above the default (200 frames/s, burst 400): one test sends 560 messages from one
  // session as fast as they are confirmed, and frames past the rate are dropped, then resent by
  // the SDK behind later ones (docs/SDK.md, "Order and the node's rate limit"). The pages are
  // what these tests are about.
  [cluster, b] = await Promise.all([startCluster(3, ['--insecure', '--rate', '5000', '--rate-burst', '5000']), TestBrowser.launch()]);
});
test.after.always(async () => {
  await b?.close();
  await cleanup();
});

/** A fresh user id for one test (one cluster serves the whole file). */
const uid = (name: string) => `${name}-${Math.random().toString(36).slice(2, 7)}`;
const node = (i: number): TestNode => cluster.nodes[i]!;

type Shown = { seq: string; state: string; from: string; body: string };

/** Opens the app in a new context (a new device) on a node and logs in as user, waiting until the list is loaded. */
async function login(user: string, on: TestNode = node(0)): Promise<Page> {
  const page = await b.open(on.http);
  await page.locator('[data-test="login-user"]').waitFor({ timeout: WAIT }).catch(async (e: Error) => {
    const h = await fetch(`${on.http}/healthz`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text(), (err: Error) => err.message);
    const entries = await page.evaluate(() => JSON.stringify((globalThis as unknown as { performance: { getEntries(): unknown[] } }).performance.getEntries()));
    throw new Error(`${e.message}\npage: ${await page.content()}\nhealthz from node: ${h}\nentries: ${entries}`);
  });
  await page.locator('[data-test="login-user"]').fill(user);
  await page.locator('[data-test="login-user"]').press('Enter');
  await page.locator('[data-test="conn-state"][data-state="live"]').waitFor({ timeout: WAIT });
  await page.locator('[data-test="conversations"][data-loaded="true"]').waitFor({ state: 'attached', timeout: WAIT });
  return page;
}

/** Opens (or starts) the 1:1 conversation with user through the new-chat box. */
async function chatWith(page: Page, me: string, user: string): Promise<void> {
  await page.locator('[data-test="new-chat-user"]').fill(user);
  await page.locator('[data-test="new-chat-user"]').press('Enter');
  await page.locator(`[data-test="conversation-view"][data-conv="${dmConv(me, user)}"]`).waitFor({ timeout: WAIT });
}

async function openConv(page: Page, conv: string): Promise<void> {
  await page.locator(`[data-test="conversation"][data-conv="${conv}"]`).click({ timeout: WAIT });
  await page.locator(`[data-test="conversation-view"][data-conv="${conv}"]`).waitFor({ timeout: WAIT });
}

async function send(page: Page, text: string): Promise<void> {
  await page.locator('[data-test="composer"]').fill(text);
  await page.locator('[data-test="composer"]').press('Enter');
}

/** The messages of the open conversation as shown, top to bottom. */
function shown(page: Page): Promise<Shown[]> {
  return page.$$eval('[data-test="message"]', (els) => els.map((el) => ({
    seq: el.getAttribute('data-seq') ?? '',
    state: el.getAttribute('data-state') ?? '',
    from: el.getAttribute('data-from') ?? '',
    body: el.querySelector('[data-test="body"]')?.textContent ?? '',
  })));
}

/** Waits until the open conversation shows exactly these bodies, in this order, all sent. */
async function waitForBodies(page: Page, bodies: string[]): Promise<Shown[]> {
  await page.waitForFunction((want) => {
    const els = [...document.querySelectorAll('[data-test="message"]')];
    return els.length === want.length && els.every((el, i) =>
      el.getAttribute('data-state') === 'sent' && el.querySelector('[data-test="body"]')?.textContent === want[i]);
  }, bodies, { timeout: WAIT });
  return shown(page);
}

/** Waits until a conversation's unread badge in the list shows n (0: hidden). */
async function waitForUnread(page: Page, conv: string, n: number): Promise<void> {
  await page.waitForFunction(([c, want]) => {
    const el = document.querySelector(`[data-test="conversation"][data-conv="${c}"] [data-test="unread"]`);
    if (!el) return false;
    return want === 0 ? el.hidden || el.textContent === '0' : !el.hidden && el.textContent === String(want);
  }, [conv, n] as const, { timeout: WAIT });
}

/** Records, in the page, every data-state a message (by body) and the connection bar take. */
async function recordStates(page: Page): Promise<void> {
  await page.evaluate(() => {
    const log: string[] = [];
    window.stateLog = log;
    const note = (el: El) => {
      if (el.getAttribute('data-test') === 'conn-state') log.push(`conn:${el.getAttribute('data-state')}:${el.getAttribute('data-node')}`);
      if (el.getAttribute('data-test') === 'message') log.push(`msg:${el.querySelector('[data-test="body"]')?.textContent}:${el.getAttribute('data-state')}`);
    };
    document.querySelectorAll('[data-test="conn-state"], [data-test="message"]').forEach(note);
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'attributes') note(r.target as El);
        for (const n of r.addedNodes) {
          if (!(n instanceof Element)) continue;
          note(n);
          n.querySelectorAll('[data-test="conn-state"], [data-test="message"]').forEach(note);
        }
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-node'] });
  });
}

const stateLog = (page: Page) => page.evaluate(() => window.stateLog ?? []);

function seqsRise(t: ExecutionContext, list: Shown[]): void {
  const seqs = list.map((m) => Number(m.seq));
  t.true(seqs.every((s, i) => s > 0 && (i === 0 || s > seqs[i - 1]!)), `seqs rise: ${seqs.join(',')}`);
}

async function closeAll(...pages: Page[]): Promise<void> {
  for (const p of pages) await p.context().close();
}

test.serial('two users chat both ways: pending then sent, unread in the list, the reply, seen', async (t) => {
  const alice = uid('alice');
  const bob = uid('bob');
  const conv = dmConv(alice, bob);
  const a = await login(alice, node(0));
  const bo = await login(bob, node(1));
  await t.notThrowsAsync(a.locator('[data-test="dev-banner"]').waitFor({ timeout: WAIT }));

  await chatWith(a, alice, bob);
  await recordStates(a);
  await send(a, 'hello bob');
  const [mine] = await waitForBodies(a, ['hello bob']);
  t.true(Number(mine!.seq) > 0);
  const log = await stateLog(a);
  t.true(log.indexOf('msg:hello bob:pending') >= 0 && log.indexOf('msg:hello bob:pending') < log.indexOf('msg:hello bob:sent'), log.join(' '));

  // bob: the conversation is in his list with one unread message and its text
  const item = bo.locator(`[data-test="conversation"][data-conv="${conv}"]`);
  await item.waitFor({ timeout: WAIT });
  await waitForUnread(bo, conv, 1);
  t.regex((await item.textContent()) ?? '', /hello bob/);
  t.regex((await item.textContent()) ?? '', new RegExp(alice));

  await openConv(bo, conv);
  await waitForBodies(bo, ['hello bob']);
  await waitForUnread(bo, conv, 0);
  // bob read it: alice sees "seen" under her message
  await a.locator('[data-test="seen"]').waitFor({ timeout: WAIT });
  await send(bo, 'hi alice!');
  const got = await waitForBodies(a, ['hello bob', 'hi alice!']);
  t.deepEqual(got.map((m) => m.from), [alice, bob]);
  seqsRise(t, got);
  await waitForUnread(a, conv, 0); // open and visible: read at once

  // A little more conversation for the screenshot, and a second conversation with an unread message.
  const said = ['hello bob', 'hi alice!'];
  for (const [p, text] of [[a, 'the cluster survived the node restart'], [bo, 'nice. failover took under ten seconds'], [a, 'shipping the web app today']] as const) {
    await send(p, text);
    said.push(text);
    await waitForBodies(a, said);
  }
  const carol = uid('carol');
  const c = await login(carol, node(2));
  await chatWith(c, carol, alice);
  await send(c, 'lunch at noon?');
  await waitForUnread(a, dmConv(alice, carol), 1);
  await a.locator('[data-test="seen"]').waitFor({ timeout: WAIT });
  const shot = process.env.IM_SCREENSHOTS === '1'
    ? join(ROOT, 'docs/images/chat.png')
    : join(await mkdtemp(join(tmpdir(), 'im-shot-')), 'chat.png');
  if (process.env.IM_SCREENSHOTS !== '1') onCleanup(() => rm(dirname(shot), { recursive: true, force: true }));
  await mkdir(dirname(shot), { recursive: true });
  await a.screenshot({ path: shot });

  await closeAll(a, bo, c);
  t.deepEqual(b.errors, []);
});

test.serial('a device that was offline gets the unread count and the messages in order', async (t) => {
  const alice = uid('alice');
  const bob = uid('bob');
  const conv = dmConv(alice, bob);
  const a = await login(alice, node(0));
  const bo = await login(bob, node(2));
  await bo.context().close(); // bob's tab is gone

  await chatWith(a, alice, bob);
  for (const text of ['one', 'two', 'three']) await send(a, text);
  await waitForBodies(a, ['one', 'two', 'three']);

  const bo2 = await login(bob, node(1));
  await bo2.locator(`[data-test="conversation"][data-conv="${conv}"]`).waitFor({ timeout: WAIT });
  await waitForUnread(bo2, conv, 3);
  await openConv(bo2, conv);
  const got = await waitForBodies(bo2, ['one', 'two', 'three']);
  seqsRise(t, got);
  await waitForUnread(bo2, conv, 0);

  await closeAll(a, bo2);
  t.deepEqual(b.errors, []);
});

test.serial('a group of three: everyone sees all messages in the same order', async (t) => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const group = uid('team');
  const conv = `g:${group}`;
  const [a, bo, c] = await Promise.all([login(alice, node(0)), login(bob, node(1)), login(carol, node(2))]);

  await c.locator('.new-group summary').click();
  await c.locator('[data-test="new-group"]').fill(group);
  await c.locator('[data-test="new-group-members"]').fill(`${alice}, ${bob}`);
  await c.locator('[data-test="new-group-submit"]').click();
  await c.locator(`[data-test="conversation-view"][data-conv="${conv}"]`).waitFor({ timeout: WAIT });
  await c.waitForFunction((want) => want.every((u) => document.querySelector('[data-test="group-members"]')?.textContent?.includes(u)),
    [alice, bob, carol], { timeout: WAIT });
  await send(c, 'from carol');
  await waitForBodies(c, ['from carol']);

  await openConv(a, conv);
  await waitForBodies(a, ['from carol']);
  await send(a, 'from alice');
  await waitForBodies(a, ['from carol', 'from alice']);

  await openConv(bo, conv);
  await waitForBodies(bo, ['from carol', 'from alice']);
  await send(bo, 'from bob');

  const all = ['from carol', 'from alice', 'from bob'];
  const views = await Promise.all([a, bo, c].map((p) => waitForBodies(p, all)));
  for (const v of views) {
    t.deepEqual(v.map((m) => m.from), [carol, alice, bob]);
    seqsRise(t, v);
  }

  await closeAll(a, bo, c);
  t.deepEqual(b.errors, []);
});

test.serial('typing shows in the other party\'s open conversation, and goes away', async (t) => {
  const alice = uid('alice');
  const bob = uid('bob');
  const conv = dmConv(alice, bob);
  const a = await login(alice, node(1));
  const bo = await login(bob, node(2));
  await chatWith(a, alice, bob);
  await send(a, 'are you there?');
  await openConv(bo, conv);
  await waitForBodies(bo, ['are you there?']);
  // Nothing is shown once alice's message is in (her notice from writing it ends with it).
  await bo.waitForFunction(() => document.querySelector('[data-test="typing"]')?.hidden === true, undefined, { timeout: WAIT });

  await a.locator('[data-test="composer"]').pressSequentially('yes I am writing', { delay: 20 });
  await bo.waitForFunction((who) => {
    const el = document.querySelector('[data-test="typing"]');
    return !!el && !el.hidden && !!el.textContent?.includes(who);
  }, alice, { timeout: WAIT });
  // shown for 4 s after the last notice, then hidden
  await bo.waitForFunction(() => document.querySelector('[data-test="typing"]')?.hidden === true, undefined, { timeout: WAIT });

  await closeAll(a, bo);
  t.deepEqual(b.errors, []);
});

test.serial('two tabs of one user: a message sent in one shows in the other; reading in one clears the other', async (t) => {
  const alice = uid('alice');
  const bob = uid('bob');
  const conv = dmConv(alice, bob);
  const a1 = await login(alice, node(0));
  const a2 = await login(alice, node(2));
  const bo = await login(bob, node(1));

  await chatWith(bo, bob, alice);
  await send(bo, 'ping');
  await waitForUnread(a1, conv, 1);
  await waitForUnread(a2, conv, 1);

  await openConv(a1, conv);
  await waitForBodies(a1, ['ping']);
  await waitForUnread(a2, conv, 0); // the read event from tab 1

  await send(a1, 'pong');
  await waitForBodies(a1, ['ping', 'pong']);
  await a2.waitForFunction((c) => document.querySelector(`[data-test="conversation"][data-conv="${c}"] [data-test="last"]`)?.textContent?.includes('pong'),
    conv, { timeout: WAIT });
  await openConv(a2, conv);
  const got = await waitForBodies(a2, ['ping', 'pong']);
  t.deepEqual(got.map((m) => m.from), [bob, alice]);
  t.deepEqual(got.map((m) => m.seq), (await shown(a1)).map((m) => m.seq)); // one timeline, same seqs

  await closeAll(a1, a2, bo);
  t.deepEqual(b.errors, []);
});

test.serial('older messages load when scrolled to the top, keeping the view in place', async (t) => {
  const alice = uid('alice');
  const bob = uid('bob');
  const conv = dmConv(alice, bob);
  // 560 messages: more than the 500 newest entries the list loads at login, so the oldest come from history pages.
  const sender = new ImSession({ urls: [node(0).url], token: await token(alice), device: 'bulk' });
  await Promise.all(Array.from({ length: 560 }, (_, i) => sender.send({ to: bob }, `m${i + 1}`)));
  sender.close();

  const bo = await login(bob, node(1));
  await openConv(bo, conv);
  // the newest 500 (the last few may come as pushes: an entry shows once every copy has it)
  await bo.waitForFunction(() => {
    const els = document.querySelectorAll('[data-test="message"]');
    return els.length === 500 && [...els].at(-1)?.querySelector('[data-test="body"]')?.textContent === 'm560';
  }, undefined, { timeout: WAIT });
  const top = await bo.locator('[data-test="message"]').first().getAttribute('data-seq');

  // Scrolled to the top, the next page (50) comes in above, and what was at the top stays in view.
  const inView = (seq: string | null) => bo.evaluate((s) => {
    const list = document.querySelector('[data-test="messages"]')!;
    const el = document.querySelector(`[data-test="message"][data-seq="${s}"]`)!;
    const box = list.getBoundingClientRect();
    const top = el.getBoundingClientRect().top;
    return list.scrollTop > 0 && top >= box.top - 1 && top < box.bottom;
  }, seq);
  const scrollUpTo = async (n: number) => {
    await bo.locator('[data-test="messages"]').evaluate((el) => el.scrollTo(0, 0));
    await bo.waitForFunction((want) => document.querySelectorAll('[data-test="message"]').length === want, n, { timeout: WAIT });
  };
  await scrollUpTo(550);
  t.true(await inView(top), 'the message that was at the top is still in view');
  await scrollUpTo(560);
  const got = await shown(bo);
  t.deepEqual(got.map((m) => m.body), Array.from({ length: 560 }, (_, i) => `m${i + 1}`));
  seqsRise(t, got);
  t.is(await bo.locator('[data-test="load-older"]').count(), 0); // nothing older

  await closeAll(bo);
  t.deepEqual(b.errors, []);
});

// Last: it kills a node of the file's cluster.
test.serial('failover: the tab\'s node is killed; it reconnects elsewhere and shows every message once, in order', async (t) => {
  // alice lives on node 1 and her tab connects to node 1 (the app starts at the node that served
  // it): killing it leaves her unserved until the failure detector hands her to a replica, so the
  // outage is long enough to send into.
  const alice = cluster.nameOn(node(0), uid('fo-alice') + '-');
  const bob = cluster.nameOn(node(1), uid('fo-bob') + '-');
  const conv = dmConv(alice, bob);
  const a = await login(alice, node(0));
  const conn = a.locator('[data-test="conn-state"]');
  const name = await conn.getAttribute('data-node');
  const victim = cluster.nodes.find((n) => n.opts.name === name);
  t.truthy(victim, `the tab is on a node of the cluster (${name})`);
  t.regex((await conn.textContent()) ?? '', new RegExp(`connected to ${name}`));
  const other = cluster.nodes.find((n) => n !== victim)!;
  const bo = await login(bob, other);

  await chatWith(a, alice, bob);
  await send(a, 'before');
  await waitForBodies(a, ['before']);
  await openConv(bo, conv);
  await waitForBodies(bo, ['before']);
  await recordStates(a);

  await victim!.kill();
  await a.waitForFunction(() => document.querySelector('[data-test="conn-state"]')?.getAttribute('data-state') !== 'live', undefined, { timeout: WAIT });
  await send(a, 'during');
  const during = a.locator('[data-test="message"]').last();
  t.is(await during.getAttribute('data-state'), 'pending');
  t.is(await during.getAttribute('data-seq'), '');
  for (const text of ['b1', 'b2', 'b3']) await send(bo, text);

  await a.waitForFunction((dead) => {
    const el = document.querySelector('[data-test="conn-state"]');
    return el?.getAttribute('data-state') === 'live' && el.getAttribute('data-node') !== dead;
  }, name, { timeout: WAIT });
  // Every message once; the order is the timeline's (bob's three in the order he sent them).
  await a.waitForFunction(() => {
    const els = [...document.querySelectorAll('[data-test="message"]')];
    return els.length === 5 && els.every((el) => el.getAttribute('data-state') === 'sent');
  }, undefined, { timeout: WAIT });
  const got = await shown(a);
  t.deepEqual([...got.map((m) => m.body)].sort(), ['b1', 'b2', 'b3', 'before', 'during']);
  t.deepEqual(got.filter((m) => m.from === bob).map((m) => m.body), ['b1', 'b2', 'b3']);
  t.is(got[0]!.body, 'before');
  seqsRise(t, got);
  const log = await stateLog(a);
  t.true(log.some((s) => s.startsWith('conn:reconnecting')), log.join(' '));
  t.true(log.includes('msg:during:pending') && log.includes('msg:during:sent'), log.join(' '));

  // bob's tab has them all too, in his own timeline's order
  const bobSees = await bo.waitForFunction(() => {
    const els = [...document.querySelectorAll('[data-test="message"]')];
    return els.length === 5 && els.every((el) => el.getAttribute('data-state') === 'sent');
  }, undefined, { timeout: WAIT }).then(() => shown(bo));
  t.deepEqual([...bobSees.map((m) => m.body)].sort(), ['b1', 'b2', 'b3', 'before', 'during']);
  seqsRise(t, bobSees);

  await closeAll(a, bo);
  // The browser logs each refused connection to the killed node's port; nothing else may be logged.
  const deadPort = new URL(victim!.url).port;
  const errors = b.errors.filter((e) => !(e.includes('WebSocket connection to') && e.includes(`:${deadPort}/ws`) && /ERR_CONNECTION_REFUSED|failed/.test(e)));
  t.log(`${b.errors.length - errors.length} refused connections to the killed node logged`);
  t.deepEqual(errors, []);
});
