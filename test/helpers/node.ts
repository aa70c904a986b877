// Starts real node processes for tests: a fresh data folder, a free port chosen by the OS,
// readiness taken from the node's own "listening" log line; kill, restart and stop.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { SignJWT } from 'jose';
import { ImClient, ImError } from '../../src/client/client.ts';
import type { Entry } from '../../src/protocol/frames.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'src/node/main.ts');
export const SECRET = 'test-secret-please-change-it-32-bytes-or-more';

export type NodeOpts = {
  args?: string[]; env?: Record<string, string>; data?: string; name?: string;
  /** Run the node in this network namespace (`ip netns exec NS node …`; see test/helpers/netns.ts). */
  netns?: string;
  /** Where the test reaches the node's HTTP port (default 127.0.0.1). */
  httpHost?: string;
};

export class TestNode {
  data: string;
  opts: NodeOpts;
  proc: ChildProcess | undefined;
  url = '';
  http = '';
  port = 0;
  p2pPort = 0;
  /** This node's peer multiaddr (with /p2p/<id>), for --join. */
  p2p = '';
  log: string[] = [];

  constructor(data: string, opts: NodeOpts) {
    this.data = data;
    this.opts = opts;
  }

  async start(port = this.port): Promise<void> {
    const args = [MAIN, '--data', this.data, '--port', String(port), '--p2p-port', String(this.p2pPort), '--name', this.opts.name ?? 'n1', '--secret', SECRET, ...(this.opts.args ?? [])];
    // `ip netns exec` execs the command in place: the child's pid is the node's.
    const [cmd, argv] = this.opts.netns ? ['ip', ['netns', 'exec', this.opts.netns, process.execPath, ...args]] : [process.execPath, args];
    const proc = spawn(cmd, argv, { env: { ...process.env, ...this.opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    let buf = '';
    const ready = new Promise<void>((ok, ko) => {
      const onExit = (code: number | null) => ko(new Error(`node exited (${code}) before listening:\n${this.log.slice(-20).join('\n')}`));
      proc.once('exit', onExit);
      proc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.log.push(line);
          try {
            const j = JSON.parse(line) as { msg?: string; url?: string; port?: number; p2p?: string[] };
            if (j.msg === 'listening') {
              this.url = j.url!;
              this.port = j.port!;
              this.p2p = j.p2p?.[0] ?? '';
              this.p2pPort = Number(/\/tcp\/(\d+)/.exec(this.p2p)?.[1] ?? 0);
              this.http = `http://${this.opts.httpHost ?? '127.0.0.1'}:${j.port}`;
              proc.off('exit', onExit);
              ok();
            }
          } catch {
            // not a JSON line
          }
        }
      });
      proc.stderr!.on('data', (d: Buffer) => this.log.push(d.toString()));
    });
    await ready;
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = once(p, 'exit');
    p.kill('SIGKILL');
    await gone;
  }

  /** SIGTERM (graceful), and wait for the exit code. */
  async stop(): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    const gone = once(p, 'exit');
    p.kill('SIGTERM');
    const [code] = (await gone) as [number | null];
    return code;
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
