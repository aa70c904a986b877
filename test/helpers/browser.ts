// A real headless Chromium for page tests, driven by playwright-core. The browser is Debian's
// `chromium` package (.ci/run installs it); Playwright's own download cannot work here. Every page
// opened through `open` records console errors and uncaught page errors, which a test asserts
// are none (`t.deepEqual(b.errors, [])`).
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';

const CANDIDATES = [process.env.IM_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function chromiumPath(): string {
  const p = CANDIDATES.find((c): c is string => !!c && existsSync(c));
  if (!p) throw new Error('no Chromium found: install Debian\'s chromium (apt-get install chromium) or set IM_CHROMIUM');
  return p;
}

export class TestBrowser {
  browser: Browser;
  /** Console errors and page errors of every page opened here, as "url: text". */
  errors: string[] = [];
  private contexts: BrowserContext[] = [];

  private constructor(browser: Browser) {
    this.browser = browser;
  }

  static async launch(): Promise<TestBrowser> {
    // --no-sandbox: tests run as root, where Chromium's sandbox refuses to start.
    const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-dev-shm-usage'], timeout: 60_000 });
    return new TestBrowser(browser);
  }

  /** A new context (its own storage: another "device") with one page at url. */
  async open(url: string, opts: { viewport?: { width: number; height: number } } = {}): Promise<Page> {
    const ctx = await this.browser.newContext({ viewport: opts.viewport ?? { width: 1100, height: 720 } });
    this.contexts.push(ctx);
    const page = await ctx.newPage();
    this.watch(page);
    await page.goto(url);
    return page;
  }

  /** Records a page's console errors and uncaught errors (pages opened with open() already are). */
  watch(page: Page): void {
    page.on('console', (m) => {
      if (m.type() === 'error') this.errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => this.errors.push(`${page.url()}: ${e.message}`));
  }

  async close(): Promise<void> {
    await this.browser.close().catch(() => undefined);
  }
}
