// Churn testing: clients that keep sending through joins, leaves, kills and restarts the way a
// careful app would (reconnect to another node on goaway or a dropped connection, resend
// unconfirmed messages with the same cid), and the test side of the invariants of
// docs/CLUSTER.md: timelines read back and held, by invariants.ts, to every confirmed send.
import type { ExecutionContext } from 'ava';
import { ImSession } from '../../src/client/index.ts';
import { ImClient } from '../../src/client/client.ts';
import { join } from 'node:path';
import { openDb } from '../../src/store/db.ts';
import type { Entry, SentReply } from '../../src/protocol/frames.ts';
import { readAll, token } from './node.ts';
import type { TestNode } from './node.ts';
import type { TestCluster } from './cluster.ts';
import { findViolations } from './invariants.ts';
import type { Confirmed } from './invariants.ts';

export type { Confirmed } from './invariants.ts';

/** A seeded PRNG (mulberry32), so a failing schedule can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where a Sender connects (default: any live node, nodes added since included) and how long
 * its session waits between attempts (default 50 ms to 1 s, jittered). */
export type SenderOptions = { urls?: () => string[]; backoffMs?: { min: number; max: number } };

/**
 * One user sending to others (peers named `g:<group>` are groups) until stopped, one message at a
 * time, through the SDK's session (src/client/session.ts): it reconnects to another live node on
 * a goaway or a dropped connection and resends an unconfirmed message with the same cid, as an
 * app built on the SDK would. `send` sends one message to a given peer instead.
 */
export class Sender {
  user: string;
  peers: string[];
  cluster: TestCluster;
  confirmed: Confirmed[];
  waits: number[] = [];
  reconnects = 0;
  private session: ImSession | undefined;
  private conn = 0;
  private stopped = false;
  private n = 0;
  private rand: () => number;
  private urls: () => string[];
  private backoffMs: { min: number; max: number };

  constructor(user: string, peers: string[], cluster: TestCluster, confirmed: Confirmed[], rand: () => number, opts: SenderOptions = {}) {
    this.user = user;
    this.peers = peers;
    this.cluster = cluster;
    this.confirmed = confirmed;
    this.rand = rand;
    this.urls = opts.urls ?? (() => this.cluster.live().map((n) => n.url));
    this.backoffMs = opts.backoffMs ?? { min: 50, max: 1000 };
  }

  private get s(): ImSession {
    if (!this.session) {
      const s = new ImSession({
        urls: this.urls(), token: () => token(this.user), device: 'churn', since: 'latest', autoAck: false,
        window: 1, random: this.rand, connectTimeoutMs: 2000, backoffMs: this.backoffMs,
      });
      s.on('welcome', () => this.conn++);
      s.on('state', (st) => st.state === 'reconnecting' && this.reconnects++);
      this.session = s;
    }
    return this.session;
  }

  /** Sends one message (its cid as the body) to `to`, a user or `g:<group>`, and waits until it
   * is confirmed: the session resends the same cid until then. The time that took goes into
   * `waits`, the send into `confirmed`. */
  async send(to: string): Promise<SentReply> {
    const cid = `${this.user}-${this.n++}`;
    const t0 = Date.now();
    const s = this.s;
    s.addUrls(this.urls()); // nodes added since
    const r = to.startsWith('g:') ? await s.sendGroup(to.slice(2), cid, cid) : await s.sendTo(to, cid, cid);
    this.waits.push(Date.now() - t0);
    this.confirmed.push({ from: this.user, to, mid: r.mid, seq: r.seq, cid, conn: this.conn });
    return r;
  }

  async run(): Promise<void> {
    while (!this.stopped) await this.send(this.peers[this.n % this.peers.length]!);
  }

  stop(): void {
    this.stopped = true;
  }

  close(): void {
    this.session?.close();
  }
}

/** Every user's whole timeline, read with sync from a fresh device through `via`. */
export async function readTimelines(via: TestNode, users: string[]): Promise<Map<string, Entry[]>> {
  const timelines = new Map<string, Entry[]>();
  for (const u of users) {
    const c = await via.client();
    await c.login({ token: await token(u), device: `check-${Date.now()}` });
    timelines.set(u, await readAll(c));
    c.close();
  }
  return timelines;
}

/** Fails the test for each violation of the invariants (the first 20), or passes it with the
 * counts; the checks themselves are findViolations' (invariants.ts). */
export function assertInvariants(t: ExecutionContext, timelines: Map<string, Entry[]>, confirmed: Confirmed[], groups = new Map<string, string[]>()): void {
  const found = findViolations(timelines, confirmed, { groups });
  for (const v of found.slice(0, 20)) t.fail(v.text);
  if (found.length > 20) t.log(`… and ${found.length - 20} more violations`);
  if (found.length === 0) t.pass(`${confirmed.length} confirmed sends, ${timelines.size} timelines hold every invariant`);
}

/**
 * Reads every user's timeline from a fresh device and checks docs/CLUSTER.md's invariants against
 * every confirmed send (findViolations in invariants.ts says which): nothing confirmed lost (1),
 * seqs 1..n with no mid twice and no send stored twice (2), sends from one connection in order at
 * each recipient (3); reading with sync from a fresh device is the replay of 5. Group messages are
 * held to the same, in every member's timeline, in one order shared by all members.
 */
export async function checkInvariants(t: ExecutionContext, cluster: TestCluster, users: string[], confirmed: Confirmed[], groups = new Map<string, string[]>()): Promise<void> {
  assertInvariants(t, await readTimelines(cluster.live()[0]!, users), confirmed, groups);
}

/** What one pair of users should show once the churn is over, from the changes confirmed to them. */
type PairPlan = { a: string; b: string; friend: 'friend' | 'none' | 'requested'; aFollows: boolean; bFollows: boolean; confirmed: number };

/**
 * Contact traffic for the churn: pairs of users go round request (a), request back (b, which
 * accepts, or crosses if a's has not arrived yet), remove (either), and toggle follows, each
 * change retried with fresh connections until confirmed. A refusal that only a copy still on its
 * way explains (conflict, not_found) is retried too: the other side's change arrives within
 * moments, even under churn. The plan records what each pair must show at the end.
 */
export class ContactDriver {
  plan: PairPlan;
  cluster: TestCluster;
  retries = 0;
  /** The confirmed changes, newest last (for a failure's message). */
  history: string[] = [];
  private stopped = false;
  private rand: () => number;
  private phase = 0;

  constructor(a: string, b: string, cluster: TestCluster, rand: () => number) {
    this.plan = { a, b, friend: 'none', aFollows: false, bFollows: false, confirmed: 0 };
    this.cluster = cluster;
    this.rand = rand;
  }

  /** One change by `user`, retried until it is confirmed; `done` tells a retry's refusal that
   * means an earlier attempt already made the change (its answer lost with the connection). */
  private async change(user: string, frame: Record<string, unknown>, done: string[] = [], applied?: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 60_000;
    let unknown = false;
    let last = '';
    // The attempts that failed before, each as code@node+ms since the first: a wrong answer's
    // story (which node lost an answer, which one refused) is in them.
    const tries: string[] = [];
    const t0 = Date.now();
    const story = (): string => (tries.length ? ` [after ${tries.join(' ')}]` : '');
    for (;;) {
      if (Date.now() > deadline) {
        const views = await Promise.all([this.plan.a, this.plan.b].map(async (u) => {
          try {
            const c = await ImClient.connect(this.cluster.live()[0]!.url);
            await c.login({ token: await token(u), device: 'post-mortem' });
            const r = (await c.request({ op: 'contacts' } as Parameters<ImClient['request']>[0])) as unknown as { contacts: unknown[] };
            c.close();
            return `${u}: ${JSON.stringify(r.contacts)}`;
          } catch (e) {
            return `${u}: ${(e as Error).message}`;
          }
        }));
        const logs = await socialLogs(this.cluster, this.plan.a, this.plan.b);
        throw new Error(`${user} ${JSON.stringify(frame)} not confirmed within 60 s (last: ${last}); plan ${JSON.stringify(this.plan)}; ${views.join('; ')}; history ${this.history.slice(-8).join(', ')}\n${logs.join('\n')}`);
      }
      const live = this.cluster.live();
      const node = live[Math.floor(this.rand() * live.length)];
      let c: ImClient | undefined;
      let requested = false;
      try {
        c = await ImClient.connect(node!.url);
        await c.login({ token: await token(user), device: 'contacts' });
        unknown = true;
        requested = true;
        await c.request(frame as Parameters<ImClient['request']>[0], 30_000); // a loaded machine: few answers lost to a timeout
        this.plan.confirmed++;
        this.history.push(`${user === this.plan.a ? 'a' : 'b'}:${String(frame.op)}@${node!.opts.name}${story()}`);
        return;
      } catch (e) {
        // An ImError has a string code; a lost or refused connection a close code (a number).
        const raw = (e as { code?: unknown }).code;
        last = `${String(raw)}: ${(e as Error).message}`;
        const code = typeof raw === 'string' ? raw : undefined;
        const who = `${user === this.plan.a ? 'a' : 'b'}:${String(frame.op)}@${node!.opts.name}+${Date.now() - t0}ms${story()}`;
        if (tries.length < 12) tries.push(`${String(raw ?? (e as Error).message.slice(0, 40))}${requested ? '' : '(before the request)'}@${node!.opts.name}+${Date.now() - t0}ms`);
        if (unknown && code !== undefined && done.includes(code)) {
          this.history.push(`${who} (${code} after a lost answer: taken as done)`);
          return;
        }
        // A refusal after an attempt whose answer was lost may be that attempt's own effect, or
        // a view still waiting for the other side's copy: `applied` tells which.
        if (unknown && code === 'conflict' && applied) {
          if (await applied()) {
            this.history.push(`${who} (conflict after a lost answer: taken as applied)`);
            return;
          }
          unknown = false;
          continue;
        }
        if (code === undefined || code === 'unavailable' || code === 'conflict' || code === 'not_found' || code === 'unauthenticated' || code === 'rate_limited') {
          this.retries++;
          if (code !== 'conflict' && code !== 'not_found') unknown = true;
          else unknown = false;
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        throw e;
      } finally {
        c?.close();
      }
    }
  }

  /** `user`'s state for `other` as its home shows it now. */
  private async view(user: string, other: string): Promise<string | undefined> {
    const c = await ImClient.connect(this.cluster.live()[0]!.url).catch(() => undefined);
    if (!c) return undefined;
    try {
      await c.login({ token: await token(user), device: 'view' });
      const r = (await c.request({ op: 'contacts' } as Parameters<ImClient['request']>[0])) as unknown as { contacts: { user: string; state: string }[] };
      return r.contacts.find((k) => k.user === other)?.state ?? 'none';
    } catch {
      return undefined;
    } finally {
      c.close();
    }
  }

  private async step(): Promise<void> {
    const { a, b } = this.plan;
    const x = this.rand();
    if (x < 0.3) {
      const byA = this.rand() < 0.5;
      const want = !(byA ? this.plan.aFollows : this.plan.bFollows);
      await this.change(byA ? a : b, { op: want ? 'follow' : 'unfollow', user: byA ? b : a });
      if (byA) this.plan.aFollows = want;
      else this.plan.bFollows = want;
      return;
    }
    if (this.phase === 0) {
      await this.change(a, { op: 'contact_request', user: b, text: 'hi' });
      this.plan.friend = 'requested';
    } else if (this.phase === 1) {
      // `conflict` (already friends) after a lost answer: applied, unless b's view, once the
      // copies on their way have landed, shows a's request pending (b's was then not applied).
      const applied = async () => {
        const until = Date.now() + 20_000;
        while (Date.now() < until) {
          if ((await this.view(b, a)) === 'pending') return false;
          await new Promise((r) => setTimeout(r, 500));
        }
        return true;
      };
      await this.change(b, { op: 'contact_request', user: a }, [], applied);
      this.plan.friend = 'friend';
    } else {
      const by = this.rand() < 0.5 ? a : b;
      await this.change(by, { op: 'contact_remove', user: by === a ? b : a }, ['not_found']);
      this.plan.friend = 'none';
    }
    this.phase = (this.phase + 1) % 3;
  }

  async run(): Promise<void> {
    while (!this.stopped) {
      await this.step();
      await new Promise((r) => setTimeout(r, 100 + this.rand() * 300));
    }
  }

  stop(): void {
    this.stopped = true;
  }
}

/** Each node's copy of both users' social logs (what each fold starts from), one line per node. */
async function socialLogs(cluster: TestCluster, a: string, b: string): Promise<string[]> {
  const logs: string[] = [];
  for (const n of cluster.nodes) {
    try {
      const db = await openDb(join(n.data, 'store.db'));
      const rows = await db.job((c) => c.all<{ user: string; seq: number; mid: string; dkey: string; body: string }>(
        'SELECT user, seq, mid, dkey, body FROM entries WHERE user IN (?, ?) ORDER BY user, seq', [`s:${a}`, `s:${b}`]));
      logs.push(`${n.opts.name}: ${rows.map((r) => `${r.user}#${r.seq} ${r.dkey.slice(0, 1)} ${r.body.replace(/"(mt|tt|wm|wt|bm|bt)":("[^"]*"|\{[^}]*\}),?/g, '')}`).join(' | ')}`);
      await db.close();
    } catch (e) {
      logs.push(`${n.opts.name}: ${(e as Error).message}`);
    }
  }
  return logs;
}

/** Every pair shows on both sides what its confirmed changes left (waiting a while for copies
 * still on their way), as mirror images: friend/friend, requested/pending, none/none, and each
 * follow as `following` on one side and `follows_me` on the other. */
export async function checkContacts(t: ExecutionContext, cluster: TestCluster, drivers: ContactDriver[]): Promise<void> {
  const plans = drivers.map((d) => d.plan);
  const via = cluster.live()[0]!;
  const view = async (u: string) => {
    const c = await via.client();
    try {
      await c.login({ token: await token(u), device: `check-${Date.now()}` });
      const r = (await c.request({ op: 'contacts', limit: 1000 } as Parameters<ImClient['request']>[0])) as unknown as { contacts: { user: string; state: string; following: boolean; follows_me: boolean }[] };
      return new Map(r.contacts.map((k) => [k.user, k]));
    } finally {
      c.close();
    }
  };
  const mirror: Record<string, string> = { friend: 'friend', requested: 'pending', none: 'none' };
  let wrong: string[] = [];
  const deadline = Date.now() + 20_000;
  do {
    wrong = [];
    for (const p of plans) {
      const va = (await view(p.a)).get(p.b);
      const vb = (await view(p.b)).get(p.a);
      const got = {
        a: va?.state ?? 'none', b: vb?.state ?? 'none', aFollows: va?.following ?? false, bFollows: vb?.following ?? false,
        aSeen: vb?.follows_me ?? false, bSeen: va?.follows_me ?? false,
      };
      const want = { a: p.friend, b: mirror[p.friend], aFollows: p.aFollows, bFollows: p.bFollows, aSeen: p.aFollows, bSeen: p.bFollows };
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${p.a}/${p.b}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    if (wrong.length === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  } while (Date.now() < deadline);
  for (const w of wrong.slice(0, 10)) t.fail(`contacts after the churn: ${w}`);
  // For the post-mortem: each wrong pair's confirmed changes (by whom, which op, through which
  // node) and every node's copy of both social logs.
  for (const d of drivers.filter((x) => wrong.some((w) => w.startsWith(`${x.plan.a}/${x.plan.b}:`))).slice(0, 3)) {
    t.log(`${d.plan.a}/${d.plan.b}: changes ${d.history.join(', ')}\n${(await socialLogs(cluster, d.plan.a, d.plan.b)).join('\n')}`);
  }
  if (wrong.length === 0) t.pass(`${plans.reduce((n, p) => n + p.confirmed, 0)} confirmed contact changes, ${plans.length} pairs agree on both sides`);
}
