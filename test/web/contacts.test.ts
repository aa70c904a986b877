// The chat app's contacts (src/web/chat/contacts.ts, me.ts) in a real Chromium against a real
// three-node insecure cluster: alice (with a display name) asks bob, bob sees the request and
// accepts, both see each other as friends with an online dot; bob sets busy with a text and alice
// sees it; bob's tab closes and alice sees him offline; alice blocks bob and the DM bob then
// sends her is refused, on his page. Waits are Playwright's polling with generous timeouts;
// nothing sleeps a fixed time. Ends with no console errors on any page.
import test from 'ava';
import type { Page } from 'playwright-core';
import { cleanup } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { TestBrowser } from '../helpers/browser.ts';
import { ensureBuilt } from '../helpers/build.ts';
import { dmConv } from '../../src/client/index.ts';

// page functions run in the page; the root tsconfig has no DOM lib.
type El = { getAttribute(name: string): string | null; querySelector(sel: string): El | null; textContent: string | null; hidden?: boolean };
declare const document: { querySelector(sel: string): El | null };

const WAIT = 30_000;

let cluster: TestCluster;
let b: TestBrowser;

test.before(async () => {
  ensureBuilt();
  [cluster, b] = await Promise.all([startCluster(3, ['--insecure']), TestBrowser.launch()]);
});
test.after.always(async () => {
  await b?.close();
  await cleanup();
});

const uid = (name: string) => `${name}-${Math.random().toString(36).slice(2, 7)}`;
const node = (i: number): TestNode => cluster.nodes[i]!;

async function login(user: string, on: TestNode): Promise<Page> {
  const page = await b.open(on.http);
  await page.locator('[data-test="login-user"]').fill(user, { timeout: WAIT });
  await page.locator('[data-test="login-user"]').press('Enter');
  await page.locator('[data-test="conn-state"][data-state="live"]').waitFor({ timeout: WAIT });
  await page.locator('[data-test="conversations"][data-loaded="true"]').waitFor({ state: 'attached', timeout: WAIT });
  return page;
}

/** Opens the Contacts tab and waits for the roster. */
async function contactsTab(page: Page): Promise<void> {
  await page.locator('[data-test="tab-contacts"]').click({ timeout: WAIT });
  await page.locator('[data-test="contacts"][data-loaded="true"]').waitFor({ timeout: WAIT });
}

const contact = (page: Page, user: string) => page.locator(`[data-test="contact"][data-user="${user}"]`);

/** Waits until user's entry in the page's contacts has these attributes. */
async function waitContact(page: Page, user: string, attrs: Record<string, string>): Promise<void> {
  await page.waitForFunction(([u, want]) => {
    const el = document.querySelector(`[data-test="contact"][data-user="${u}"]`);
    return !!el && Object.entries(want).every(([k, v]) => el.getAttribute(`data-${k}`) === v);
  }, [user, attrs] as const, { timeout: WAIT });
}

test.serial('contacts: a request accepted, presence and status seen, offline seen, a block refusing the DM', async (t) => {
  const alice = uid('alice');
  const bob = uid('bob');
  const a = await login(alice, node(0));
  const bo = await login(bob, node(1));

  // alice names herself, then asks bob.
  await a.locator('[data-test="my-status"]:not([disabled])').waitFor({ timeout: WAIT });
  await a.locator('[data-test="my-name"]').fill('Alice Liddell');
  await a.locator('[data-test="my-name-save"]').click();
  await a.waitForFunction(() => document.querySelector('[data-test="me"]')?.textContent?.includes('Alice Liddell') === true, undefined, { timeout: WAIT });
  await contactsTab(a);
  await a.locator('[data-test="contact-add-user"]').fill(bob);
  await a.locator('[data-test="contact-add-text"]').fill('hi bob, it is alice');
  await a.locator('[data-test="contact-add"]').click();
  await waitContact(a, bob, { state: 'requested' });
  await contact(a, bob).locator('[data-test="contact-pending"]').waitFor({ timeout: WAIT });

  // bob: the request is counted on the tab, shown with alice's name and text; he accepts.
  await bo.waitForFunction(() => {
    const el = document.querySelector('[data-test="requests-badge"]');
    return !!el && !el.hidden && el.textContent === '1';
  }, undefined, { timeout: WAIT });
  await contactsTab(bo);
  await waitContact(bo, alice, { state: 'pending' });
  const request = contact(bo, alice);
  await bo.waitForFunction((u) => document.querySelector(`[data-test="contact"][data-user="${u}"] [data-test="contact-name"]`)?.textContent?.includes('Alice Liddell') === true,
    alice, { timeout: WAIT });
  t.regex((await request.locator('[data-test="contact-relation"]').textContent()) ?? '', /hi bob, it is alice/);
  await request.locator('[data-test="contact-accept"]').click();

  // Both: friends, online.
  await waitContact(bo, alice, { state: 'friend', presence: 'online' });
  await waitContact(a, bob, { state: 'friend', presence: 'online' });
  await bo.waitForFunction(() => document.querySelector('[data-test="requests-badge"]')?.hidden === true, undefined, { timeout: WAIT });

  // bob is busy, in a meeting: alice sees the dot and the text. (The text first: picking a status
  // sends it at once with the text in the box, and Set sends the same again.)
  await bo.locator('[data-test="my-status-text"]').fill('in a meeting');
  await bo.locator('[data-test="my-status"]').selectOption('busy');
  await bo.locator('[data-test="my-status-save"]').click();
  await waitContact(a, bob, { presence: 'busy' });
  await a.waitForFunction((u) => document.querySelector(`[data-test="contact"][data-user="${u}"] [data-test="contact-status-text"]`)?.textContent === 'in a meeting',
    bob, { timeout: WAIT });
  // bob's own dot follows his reply, which may come after alice has heard of the change.
  await bo.waitForFunction(() => document.querySelector('[data-test="my-dot"]')?.getAttribute('data-presence') === 'busy', undefined, { timeout: WAIT });

  // A click on the contact opens the conversation with him.
  await contact(a, bob).locator('[data-test="contact-open"]').click();
  await a.locator(`[data-test="conversation-view"][data-conv="${dmConv(alice, bob)}"]`).waitFor({ timeout: WAIT });
  // The header may lag the list by a render: wait for it, then hold it to the text. (A loaded
  // machine once showed "online: in a meeting" here for good: Set had sent the status the node
  // last confirmed, before its answer to the pick. Fixed in me.ts; the next test pins it.)
  await a.waitForFunction(() => /busy/.test(document.querySelector('[data-test="peer-status"]')?.textContent ?? ''), undefined, { timeout: WAIT })
    .catch(() => undefined);
  t.regex((await a.locator('[data-test="peer-status"]').textContent()) ?? '', /busy: in a meeting/);

  // bob's tab closes: alice sees him offline.
  await bo.context().close();
  await waitContact(a, bob, { presence: 'offline' });

  // alice blocks him: he moves to the blocked list, and his DM to her is refused on his page.
  await contact(a, bob).locator('[data-test="contact-block"]').click();
  await waitContact(a, bob, { blocked: 'true', state: 'none' });
  await a.locator(`[data-test="contact-blocked"] [data-test="contact"][data-user="${bob}"] [data-test="contact-unblock"]`).waitFor({ timeout: WAIT });
  const bo2 = await login(bob, node(2));
  await bo2.locator('[data-test="new-chat-user"]').fill(alice);
  await bo2.locator('[data-test="new-chat-user"]').press('Enter');
  await bo2.locator(`[data-test="conversation-view"][data-conv="${dmConv(alice, bob)}"]`).waitFor({ timeout: WAIT });
  await bo2.locator('[data-test="composer"]').fill('are you there?');
  await bo2.locator('[data-test="composer"]').press('Enter');
  await bo2.locator('[data-test="message"][data-state="failed"] [data-test="send-error"]').waitFor({ timeout: WAIT });
  t.regex((await bo2.locator('[data-test="send-error"]').textContent()) ?? '', /forbidden/);
  t.is(await bo2.locator('[data-test="message"][data-state="sent"]').count(), 0);

  for (const p of [a, bo2]) await p.context().close();
  t.deepEqual(b.errors, []);
});

test.serial('Set right after picking a status keeps the picked status, even before the node has answered the pick', async (t) => {
  // The race a loaded machine showed in the test above (the header said "online: in a meeting"
  // after bob picked busy): Set sent the status the node had last confirmed, so a Set that went
  // before the answer to the pick put the old status back. Here the pick and the Set happen in
  // one turn of the page, before any answer or render, so the old code fails every time.
  const carol = uid('carol');
  const c = await login(carol, node(2));
  await c.locator('[data-test="my-status"]:not([disabled])').waitFor({ timeout: WAIT });
  await c.locator('[data-test="my-status-text"]').fill('back at five');
  await c.evaluate(() => {
    const doc = (globalThis as unknown as { document: { querySelector(s: string): any } }).document;
    const select = doc.querySelector('[data-test="my-status"]');
    select.value = 'away';
    select.dispatchEvent(new Event('change', { bubbles: true }));
    doc.querySelector('[data-test="my-status-save"]').closest('form').requestSubmit();
  });
  await c.waitForFunction(() => document.querySelector('[data-test="my-dot"]')?.getAttribute('data-presence') === 'away', undefined, { timeout: WAIT });
  // What the node holds now is what a fresh page loads: both requests were answered in order.
  await c.reload();
  // The tab keeps its login: the page logs in again by itself and loads the status from the node.
  await c.locator('[data-test="my-status"]:not([disabled])').waitFor({ timeout: WAIT });
  t.is(await c.locator('[data-test="my-dot"]').getAttribute('data-presence'), 'away');
  t.is(await c.locator('[data-test="my-status-text"]').inputValue(), 'back at five');
});
