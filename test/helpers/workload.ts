// A client workload that records everything it does into a History: each user keeps one
// connection (a device of its own), sends to random other users at a steady rate with a few sends
// in flight, resends the same cid after unavailable, rate_limited, a timeout or a dropped
// connection (moving to the nodes a goaway names, or to another URL), and acks what it is pushed.
// Afterwards every timeline is read back in full through each of the given nodes.
import { ImClient, ImError } from '../../src/client/client.ts';
import type { MsgEvent, ServerFrame } from '../../src/protocol/frames.ts';
import type { History, SendResult } from './history.ts';
import { prng } from './churn.ts';

export type WorkloadOpts = {
  /** Client URLs to try (asked again at every reconnect). */
  urls: () => string[];
  users: string[];
  /** New sends per second per user (default 10). */
  ratePerUser?: number;
  /** Sends in flight per connection, drawn per user from [min, max] (default [2, 5]). */
  window?: [number, number];
  seed: number;
  /** How long new sends are started. */
  durationMs: number;
  history: History;
  token: (user: string) => Promise<string>;
  /** Per request (login, send, sync) before it is given up as `timeout` (default 15 s). */
  timeoutMs?: number;
};

export type Workload = {
  /** Resolves once durationMs has passed and no new send is started (resends go on until stop). */
  finished: Promise<void>;
  /** cids confirmed so far. */
  confirmed(): number;
  /** cids started and not confirmed yet (in flight or waiting to be resent). */
  pending(): number;
  /** Reconnects and goaways seen so far. */
  stats(): { reconnects: number; goaways: number; attempts: number };
  /** Stops new sends; with drainMs, waits that long for pending cids to be confirmed; then stops
   * resending, waits for the attempts in flight to end and closes every connection. */
  stop(opts?: { drainMs?: number }): Promise<void>;
  /** Reads every user's whole timeline (sync from 0, all pages) through each URL with a fresh
   * device, into the history (the login replay's pushes too). */
  readBack(urls: string[]): Promise<void>;
};

const TIMEOUT = new Error('request timed out');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(TIMEOUT), ms);
    p.then((v) => (clearTimeout(timer), resolve(v)), (e: unknown) => (clearTimeout(timer), reject(e)));
  });
}

type Conn = { c: ImClient; id: string; url: string };

class Device {
  private cur: Conn | undefined;
  private opening: Promise<Conn | undefined> | undefined;
  private nConn = 0;
  private nSend = 0;
  private prefer: string[] = [];
  private avoid = '';
  private rand: () => number;
  private window: number;
  inFlight = 0;
  tasks = new Set<Promise<void>>();
  readonly user: string;
  private w: Run;

  constructor(user: string, w: Run, seed: number) {
    this.user = user;
    this.w = w;
    this.rand = prng(seed);
    const [lo, hi] = w.opts.window ?? [2, 5];
    this.window = lo + Math.floor(this.rand() * (hi - lo + 1));
  }

  private pick(): string {
    const offered = this.prefer.length > 0 ? this.prefer : this.w.opts.urls();
    const choices = offered.length > 1 ? offered.filter((u) => u !== this.avoid) : offered;
    return choices[Math.floor(this.rand() * choices.length)] ?? '';
  }

  /** The open, logged-in connection, opening one (one at a time) if there is none. */
  connection(): Promise<Conn | undefined> {
    if (this.cur && !this.cur.c.closed) return Promise.resolve(this.cur);
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async open(): Promise<Conn | undefined> {
    for (let tries = 0; !this.w.stopped; tries++) {
      if (this.cur || tries > 0) this.w.reconnects++;
      const url = this.pick();
      let c: ImClient | undefined;
      try {
        c = await ImClient.connect(url, { timeoutMs: 2000 });
        const conn: Conn = { c, id: `w${++this.nConn}`, url };
        this.watch(conn);
        await withTimeout(c.login({ token: await this.w.opts.token(this.user), device: 'wl' }), this.w.timeoutMs);
        if (c.closed) throw new Error('closed during login');
        this.prefer = [];
        this.cur = conn;
        return conn;
      } catch {
        c?.close();
        this.avoid = url;
        await sleep(Math.min(50 * 2 ** tries, 1000));
      }
    }
    return undefined;
  }

  /** Records pushes and acks them (the contiguous prefix, at most every 200 ms); follows goaway. */
  private watch(conn: Conn): void {
    const { c } = conn;
    const seen = new Set<number>();
    let contiguous = -1;
    let timer: NodeJS.Timeout | undefined;
    c.on('frame', (f: ServerFrame) => {
      if (f.op === 'welcome' && contiguous < 0) contiguous = f.acked;
    });
    c.on('msg', (m: MsgEvent) => {
      this.w.opts.history.push({ user: this.user, conn: conn.id, at: Date.now(), seq: m.seq, mid: m.mid, conv: m.conv, from: m.from, body: m.body });
      seen.add(m.seq);
      if (contiguous < 0) return;
      while (seen.has(contiguous + 1)) seen.delete(++contiguous);
      timer ??= setTimeout(() => {
        timer = undefined;
        if (!c.closed) c.post({ op: 'ack', seq: contiguous });
      }, 200);
    });
    c.on('event', (f: ServerFrame) => {
      if (f.op !== 'goaway') return;
      this.w.goaways++;
      this.prefer = (f.nodes ?? []).filter((u) => u !== conn.url);
      c.close();
    });
    c.on('close', () => {
      clearTimeout(timer);
      this.avoid = conn.url;
    });
  }

  /** Starts new sends at the rate while the window has room, until the duration is over. */
  async run(until: number): Promise<void> {
    const every = 1000 / (this.w.opts.ratePerUser ?? 10);
    let next = Date.now() + this.rand() * every;
    const others = this.w.opts.users.filter((u) => u !== this.user);
    for (;;) {
      next = Math.max(next + every, Date.now());
      if (next >= until || !this.w.pacing) return;
      await sleep(next - Date.now());
      if (!this.w.pacing || this.inFlight >= this.window || others.length === 0) continue;
      const to = others[Math.floor(this.rand() * others.length)]!;
      const cid = `${this.user}-${this.nSend++}`;
      this.inFlight++;
      this.w.started++;
      const task = this.sendOne(to, cid).finally(() => {
        this.inFlight--;
        this.tasks.delete(task);
      });
      this.tasks.add(task);
    }
  }

  /** Sends one cid, the same cid again after every failure that allows it, until confirmed or stopped. */
  private async sendOne(to: string, cid: string): Promise<void> {
    while (!this.w.stopped) {
      const conn = await this.connection();
      if (!conn) return;
      const start = Date.now();
      let result: SendResult;
      try {
        const r = await withTimeout(conn.c.send(to, cid, cid), this.w.timeoutMs);
        result = { mid: r.mid, seq: r.seq, ts: r.ts, ...(r.dup ? { dup: true } : {}) };
      } catch (e) {
        if (e instanceof ImError) result = { error: e.code };
        else if (e === TIMEOUT) {
          result = { timeout: true };
          conn.c.close(); // and resend on a new connection
        } else result = { dropped: true };
      }
      this.w.attempts++;
      this.w.opts.history.send({ user: this.user, conn: conn.id, node: conn.url, to, cid, start, end: Date.now(), result });
      if ('mid' in result) {
        this.w.confirmed++;
        return;
      }
      if ('error' in result && result.error !== 'unavailable' && result.error !== 'rate_limited') return;
      await sleep('error' in result && result.error === 'rate_limited' ? 250 : 50);
    }
  }

  close(): void {
    this.cur?.c.close();
  }
}

class Run {
  /** No new sends once false; no resends once stopped. */
  pacing = true;
  stopped = false;
  started = 0;
  confirmed = 0;
  attempts = 0;
  reconnects = 0;
  goaways = 0;
  readers = 0;
  timeoutMs: number;
  devices: Device[];
  readonly opts: WorkloadOpts;

  constructor(opts: WorkloadOpts) {
    this.opts = opts;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.devices = opts.users.map((u, i) => new Device(u, this, opts.seed * 1000 + i));
  }

  /** One user's timeline through one node, retried for up to 30 s; a failure is recorded too. */
  async readOne(user: string, url: string): Promise<void> {
    const { history, token } = this.opts;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const conn = `read${++this.readers}`;
      let c: ImClient | undefined;
      try {
        c = await ImClient.connect(url, { timeoutMs: 5000 });
        c.on('msg', (m: MsgEvent) => history.push({ user, conn, at: Date.now(), seq: m.seq, mid: m.mid, conv: m.conv, from: m.from, body: m.body }));
        await withTimeout(c.login({ token: await token(user), device: `check-${conn}` }), this.timeoutMs);
        const entries = [];
        for (let after = 0; ;) {
          const page = await withTimeout(c.sync(after, 1000), this.timeoutMs);
          entries.push(...page.msgs.map((e) => ({ seq: e.seq, mid: e.mid, from: e.from, conv: e.conv, body: e.body })));
          if (!page.more || page.msgs.length === 0) break;
          after = page.msgs.at(-1)!.seq;
        }
        history.read({ user, reader: url, at: Date.now(), entries });
        return;
      } catch (e) {
        if (Date.now() > deadline) {
          history.read({ user, reader: url, at: Date.now(), entries: [], error: e instanceof Error ? e.message : String(e) });
          return;
        }
        await sleep(200);
      } finally {
        c?.close();
      }
    }
  }
}

export function runWorkload(opts: WorkloadOpts): Workload {
  const w = new Run(opts);
  const until = Date.now() + opts.durationMs;
  const finished = Promise.all(w.devices.map((d) => d.run(until))).then(() => undefined);
  const pending = () => w.devices.reduce((n, d) => n + d.inFlight, 0);
  return {
    finished,
    confirmed: () => w.confirmed,
    pending,
    stats: () => ({ reconnects: w.reconnects, goaways: w.goaways, attempts: w.attempts }),
    async stop({ drainMs = 0 } = {}) {
      const end = Date.now() + drainMs;
      w.pacing = false;
      while (pending() > 0 && Date.now() < end) await sleep(50);
      w.stopped = true;
      await finished;
      await Promise.all(w.devices.flatMap((d) => [...d.tasks]));
      for (const d of w.devices) d.close();
    },
    async readBack(urls) {
      const queue = [...opts.users];
      // a few users at a time; each user's reads through the nodes one after another
      await Promise.all(Array.from({ length: 4 }, async () => {
        for (let u = queue.shift(); u !== undefined; u = queue.shift()) for (const url of urls) await w.readOne(u, url);
      }));
    },
  };
}
