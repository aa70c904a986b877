// Starts real node processes for tests: a fresh data folder, a free port chosen by the OS,
// readiness taken from the node's own "listening" log line; kill, restart and stop (the process
// itself is test/helpers/launcher.ts's, shared with the benchmarks), and clients logged in to it.
// Imports only node built-ins, jose and the client: bench/churn.ts uses it without ava.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { ImClient, ImError } from '../../src/client/client.ts';
import type { Entry } from '../../src/protocol/frames.ts';
import { NodeProcess } from './launcher.ts';
import type { LaunchOpts } from './launcher.ts';

export const SECRET = 'test-secret-please-change-it-32-bytes-or-more';

export type NodeOpts = LaunchOpts & { data?: string };

/** A node whose tokens are signed with SECRET, with the clients a test needs. */
export class TestNode extends NodeProcess {
  constructor(data: string, opts: NodeOpts) {
    super(data, opts, ['--secret', SECRET]);
  }

  async client(): Promise<ImClient> {
    const c = await ImClient.connect(this.url);
    clients.add(c);
    return c;
  }

  /** A connected client logged in as user (with a token signed by the test secret). */
  async login(user: string, device = 'd1', extra: { since?: number } = {}): Promise<{ c: ImClient; welcome: Awaited<ReturnType<ImClient['login']>> }> {
    const c = await this.client();
    const welcome = await c.login({ token: await token(user), device, ...extra });
    return { c, welcome };
  }

  async get(path: string): Promise<{ status: number; text: string }> {
    const r = await fetch(this.http + path);
    return { status: r.status, text: await r.text() };
  }
}

const nodes = new Set<TestNode>();
const clients = new Set<ImClient>();

export async function token(user: string, opts: { exp?: string | number; secret?: string } = {}): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt()
    .setExpirationTime(opts.exp ?? '1h').sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

export async function startNode(opts: NodeOpts = {}): Promise<TestNode> {
  const data = opts.data ?? (await mkdtemp(join(tmpdir(), 'im-test-')));
  const n = new TestNode(data, opts);
  nodes.add(n);
  await n.start(0);
  return n;
}

/** Closes every client and kills every node this test file started, and removes their data. */
const extra: (() => Promise<unknown>)[] = [];
/** Registers more clean-up work (temporary files) for `cleanup`. */
export function onCleanup(fn: () => Promise<unknown>): void {
  extra.push(fn);
}

export async function cleanup(): Promise<void> {
  for (const c of clients) c.close();
  clients.clear();
  for (const n of nodes) {
    await n.kill();
    // IM_TEST_KEEP=1 keeps the data folders for a post-mortem (open store.db with sqlite3).
    if (!process.env.IM_TEST_KEEP) await rm(n.data, { recursive: true, force: true });
    else await writeFile(join(n.data, 'test-node.log'), n.log.join('\n'));
  }
  nodes.clear();
  for (const fn of extra.splice(0)) await fn();
}

/** A user's whole timeline through sync, page by page. */
export async function readAll(c: ImClient): Promise<Entry[]> {
  const all: Entry[] = [];
  for (let after = 0; ;) {
    const page = await c.sync(after, 1000);
    all.push(...page.msgs);
    if (!page.more) return all;
    after = page.msgs.at(-1)!.seq;
  }
}

/** Polls a condition until it holds (no fixed sleeps in tests). */
export async function until<T>(fn: () => T | Promise<T>, what: string | (() => string), timeoutMs = 5000, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs a request again while it is answered `unavailable`, as a client does (safe: sends are
 * idempotent by cid). For tests that load a cluster sharing 2 cores with other tests. */
export async function retrying<T>(req: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await req();
    } catch (e) {
      if (!(e instanceof ImError) || e.code !== 'unavailable') throw e;
    }
  }
}
