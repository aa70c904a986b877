// Load generator: users in pairs, each sending to its partner with a bounded window of unacknowledged
// sends; measures delivered msgs/s, send-to-receipt latency, and loss, duplication and reordering.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { ImClient, ImError } from '../src/client/client.ts';
import type { MsgEvent, SentReply } from '../src/protocol/frames.ts';

const MAIN = resolve(import.meta.dirname, '../src/node/main.ts');
const OWN_NODE_ARGS = ['--insecure', '--rate', '100000', '--rate-burst', '100000'];
const CONNECT_BATCH = 50;
const PING_EVERY_MS = 20_000;

const USAGE = `usage: npm run bench -- [options]      (or: node bench/pairs.ts [options])

U users in U/2 pairs; each user holds one connection and sends M messages of
about B bytes to its partner, with at most W sends awaiting 'sent'.
  --url URL        node(s) to load: repeatable or comma-separated; the two users
                   of a pair go to different URLs. Default: start a node of our
                   own (insecure, ${OWN_NODE_ARGS.slice(1).join(' ')}) in a temp dir
  --users U        even number of users (200)
  --msgs M         messages per user (200)
  --window W       unacknowledged sends per connection (10)
  --body B         body size in bytes (100)
  --secret S       mint tokens with this secret (else IM_SECRET, $IM_DATA/secret;
                   with none, log in with {"user"}: the node must be insecure)
  --timeout S      wait at most S seconds after the last 'sent' for deliveries (30)
  --json           also print the result as one JSON object
Exit status: 0 when nothing was lost, duplicated or reordered, 1 otherwise.
`;

type Opts = {
  urls: string[]; users: number; msgs: number; window: number; body: number;
  secret?: string; timeoutS: number; json: boolean;
};

function fail(message: string, code = 2): never {
  process.stderr.write(`pairs: ${message}\n`);
  process.exit(code);
}

function parseOpts(argv: string[]): Opts {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string', multiple: true }, users: { type: 'string' }, msgs: { type: 'string' },
        window: { type: 'string' }, body: { type: 'string' }, secret: { type: 'string' },
        timeout: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    fail(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, def: number, min: number): number => {
    const raw = values[name] as string | undefined;
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got '${raw}'`);
    return n;
  };
  const users = int('users', 200, 2);
  if (users % 2) fail(`--users must be even (users come in pairs), got ${users}`);
  const urls = ((values.url as string[] | undefined) ?? []).flatMap((u) => u.split(',')).map((u) => u.trim()).filter(Boolean);
  for (const u of urls) if (!/^wss?:\/\/.+/.test(u)) fail(`--url must be ws:// or wss:// URLs, got '${u}'`);
  const secret = (values.secret as string | undefined) ?? process.env.IM_SECRET ?? readSecretFile();
  return {
    urls, users, msgs: int('msgs', 200, 1), window: int('window', 10, 1), body: int('body', 100, 1),
    timeoutS: int('timeout', 30, 1), json: values.json === true, ...(secret ? { secret } : {}),
  };
}

function readSecretFile(): string | undefined {
  try {
    return readFileSync(join(process.env.IM_DATA || './data', 'secret'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

// ---- our own node, when no URL is given ----

type OwnNode = { url: string; data: string; proc: ChildProcess; problems: string[]; stop(): Promise<void> };

async function startOwnNode(): Promise<OwnNode> {
  const data = await mkdtemp(join(tmpdir(), 'im-bench-'));
  const proc = spawn(process.execPath, [MAIN, '--data', data, '--port', '0', '--name', 'bench-1', ...OWN_NODE_ARGS], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A node still running when we exit for any reason would outlive the benchmark.
  process.on('exit', () => proc.kill('SIGKILL'));
  const tail: string[] = [];
  const problems: string[] = []; // warn and worse, reported with the results
  let buf = '';
  const url = await new Promise<string>((ok, ko) => {
    proc.once('exit', (code) => ko(new Error(`the node exited (${code}) before listening:\n${tail.join('\n')}`)));
    proc.stderr!.on('data', (d: Buffer) => tail.push(d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        tail.push(line);
        if (tail.length > 50) tail.shift();
        try {
          const j = JSON.parse(line) as { msg?: string; url?: string; level?: number };
          if (j.msg === 'listening' && j.url) ok(j.url);
          else if ((j.level ?? 0) >= 40 && !/INSECURE/.test(j.msg ?? '')) problems.push(line);
        } catch {
          // not a log line
        }
      }
    });
  });
  return {
    url, data, proc, problems,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = once(proc, 'exit');
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      }
      await rm(data, { recursive: true, force: true });
    },
  };
}

// ---- the load ----

const clock = () => performance.timeOrigin + performance.now();

/** CPU seconds a process has used so far, from /proc (Linux); undefined elsewhere. */
function procCpuS(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

type Party = {
  user: string;
  url: string;
  partner: Party;
  c: ImClient;
  next: number;
  inflight: number;
  acked: Uint8Array; // counters of this user's sends that got 'sent'
  ackedCount: number;
  received: Uint8Array; // counters of the partner's messages received here
  receivedCount: number;
  mids: Set<string>;
  lastCounter: number;
  dup: number;
  ooo: number;
  closed?: { code: number; reason: string };
};

class Percentiles {
  private a: Float64Array;
  n = 0;
  constructor(size: number) {
    this.a = new Float64Array(size);
  }
  add(v: number): void {
    if (this.n < this.a.length) this.a[this.n++] = v;
  }
  summary(): { p50: number; p99: number; max: number } | undefined {
    if (!this.n) return undefined;
    const s = this.a.slice(0, this.n).sort();
    const at = (q: number) => Math.round(s[Math.min(this.n - 1, Math.floor(q * this.n))]! * 10) / 10;
    return { p50: at(0.5), p99: at(0.99), max: Math.round(s[this.n - 1]! * 10) / 10 };
  }
}

/** The body: the sender's counter and send time first, padded to the requested size. */
function bodyOf(counter: number, ts: number, size: number): string {
  const head = `${counter} ${ts.toFixed(3)} `;
  return head.length >= size ? head : head + 'x'.repeat(size - head.length);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseOpts(argv);
  const cpu = cpus();
  const machine = `${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`;
  const say = (s: string) => process.stdout.write(s + '\n');
  say(`command:  node bench/pairs.ts ${argv.join(' ')}`);
  say(`machine:  ${machine}; node ${process.version}`);

  let own: OwnNode | undefined;
  let urls = o.urls;
  if (!urls.length) {
    own = await startOwnNode();
    urls = [own.url];
    say(`target:   a node of our own at ${own.url} (${OWN_NODE_ARGS.join(' ')}), data in ${own.data}; it shares this machine`);
  } else {
    say(`target:   ${urls.join(' ')}`);
  }
  const secret = own ? undefined : o.secret;
  const total = o.users * o.msgs;
  say(`load:     ${o.users} users in ${o.users / 2} pairs, ${o.msgs} msgs each (${total} in all), window ${o.window}, body ${o.body} B, login ${secret ? 'with minted tokens' : 'insecure {"user"}'}`);

  const parties: Party[] = [];
  const stopAll = async () => {
    for (const p of parties) p.c.close();
    await own?.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

  const run = Math.random().toString(36).slice(2, 8);
  const latency = new Percentiles(total);
  const sentLatency = new Percentiles(total);
  const errors: Record<string, number> = {};
  let firstSend = 0;
  let lastSent = 0;
  let lastReceipt = 0;
  let delivered = 0;

  try {
    // Users a<i> and b<i> are partners; in order a0 b0 a1 b1 …, round-robin over the URLs puts
    // the two of a pair on different URLs whenever there are several.
    const specs = Array.from({ length: o.users }, (_, i) => ({
      user: `p${run}-${i % 2 ? 'b' : 'a'}${i >> 1}`,
      url: urls[i % urls.length]!,
    }));
    const t0 = clock();
    for (let i = 0; i < specs.length; i += CONNECT_BATCH) {
      const batch = specs.slice(i, i + CONNECT_BATCH);
      const made = await Promise.all(batch.map(async (s) => {
        let c: ImClient;
        try {
          c = await ImClient.connect(s.url, { timeoutMs: 10_000 });
        } catch (e) {
          throw new Error(`cannot connect to ${s.url}: ${(e as Error).message}`);
        }
        const token = secret ? await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(s.user).setIssuedAt()
          .setExpirationTime('1h').sign(new TextEncoder().encode(secret)) : undefined;
        await c.login(token ? { token, device: 'bench' } : { user: s.user, device: 'bench' }).catch((e: Error) => {
          c.close();
          throw new Error(`login of ${s.user} at ${s.url} failed: ${e.message}`);
        });
        return { ...s, c };
      }));
      for (const m of made) {
        parties.push({
          ...m, partner: undefined as unknown as Party, next: 0, inflight: 0,
          acked: new Uint8Array(o.msgs), ackedCount: 0, received: new Uint8Array(o.msgs), receivedCount: 0,
          mids: new Set(), lastCounter: -1, dup: 0, ooo: 0,
        });
      }
    }
    for (let i = 0; i < parties.length; i += 2) {
      parties[i]!.partner = parties[i + 1]!;
      parties[i + 1]!.partner = parties[i]!;
    }
    say(`setup:    ${parties.length} connections logged in in ${((clock() - t0) / 1000).toFixed(1)} s`);

    for (const p of parties) {
      p.c.on('msg', (m: MsgEvent) => {
        const now = clock();
        if (p.mids.has(m.mid)) {
          p.dup++;
          return;
        }
        p.mids.add(m.mid);
        if (m.from !== p.partner.user) return; // the echo of our own send
        const a = m.body.indexOf(' ');
        const b = m.body.indexOf(' ', a + 1);
        const counter = Number(m.body.slice(0, a));
        const sentAt = Number(m.body.slice(a + 1, b));
        if (counter < p.lastCounter) p.ooo++;
        p.lastCounter = counter;
        if (p.received[counter]) return;
        p.received[counter] = 1;
        p.receivedCount++;
        delivered++;
        lastReceipt = now;
        latency.add(now - sentAt);
      });
      p.c.on('close', (code, reason) => {
        p.closed = { code, reason };
      });
    }
    const ping = setInterval(() => {
      for (const p of parties) if (!p.closed) p.c.post({ op: 'ping' });
    }, PING_EVERY_MS);

    // Every connection keeps up to W sends in flight until it has sent M.
    firstSend = clock();
    const cpu0 = process.cpuUsage();
    const nodeCpu0 = procCpuS(own?.proc.pid);
    await Promise.all(parties.map((p) => new Promise<void>((done) => {
      const pump = () => {
        while (p.inflight < o.window && p.next < o.msgs && !p.closed) {
          const k = p.next++;
          p.inflight++;
          const t = clock();
          p.c.request<SentReply>({ op: 'send', to: p.partner.user, cid: `${p.user}-${k}`, body: bodyOf(k, t, o.body) }).then(
            () => {
              const now = clock();
              p.acked[k] = 1;
              p.ackedCount++;
              lastSent = now;
              sentLatency.add(now - t);
            },
            (e: Error) => {
              const code = e instanceof ImError ? e.code : 'connection closed';
              errors[code] = (errors[code] ?? 0) + 1;
            },
          ).finally(() => {
            p.inflight--;
            if (p.inflight === 0 && (p.next >= o.msgs || p.closed)) done();
            else pump();
          });
        }
        if (p.inflight === 0) done();
      };
      pump();
    })));

    // Wait until every acknowledged send has reached its recipient, or give up after the timeout.
    const lostNow = () => {
      let lost = 0;
      for (const p of parties) for (let k = 0; k < o.msgs; k++) if (p.partner.acked[k] && !p.received[k]) lost++;
      return lost;
    };
    const deadline = clock() + o.timeoutS * 1000;
    for (;;) {
      const maybeDone = parties.every((p) => p.receivedCount >= p.partner.ackedCount || p.closed);
      if (maybeDone && lostNow() === 0) break;
      if (clock() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    clearInterval(ping);
    const cpuUsed = process.cpuUsage(cpu0);
    const benchCpuS = (cpuUsed.user + cpuUsed.system) / 1e6;
    const nodeCpu1 = procCpuS(own?.proc.pid);
    const nodeCpuS = nodeCpu0 !== undefined && nodeCpu1 !== undefined ? nodeCpu1 - nodeCpu0 : undefined;

    const acked = parties.reduce((n, p) => n + p.ackedCount, 0);
    const lost = lostNow();
    const dup = parties.reduce((n, p) => n + p.dup, 0);
    const ooo = parties.reduce((n, p) => n + p.ooo, 0);
    const closedEarly = parties.filter((p) => p.closed).map((p) => `${p.user} (${p.closed!.code} ${p.closed!.reason})`);
    const wallMs = (lastReceipt || clock()) - firstSend;
    const sendMs = (lastSent || clock()) - firstSend;
    const lat = latency.summary();
    const slat = sentLatency.summary();
    const result = {
      command: `node bench/pairs.ts ${argv.join(' ')}`,
      machine, node: process.version, target: own ? 'own node' : urls,
      users: o.users, msgs: o.msgs, window: o.window, body: o.body,
      attempted: total, acked, delivered,
      wall_s: Math.round(wallMs) / 1000,
      delivered_per_s: Math.round((delivered / wallMs) * 1000),
      acked_per_s: Math.round((acked / sendMs) * 1000),
      latency_ms: lat ?? null, sent_latency_ms: slat ?? null,
      lost, duplicated: dup, out_of_order: ooo, errors, closed_early: closedEarly.length,
      cpu_s: { bench: Math.round(benchCpuS * 100) / 100, ...(nodeCpuS !== undefined ? { node: Math.round(nodeCpuS * 100) / 100 } : {}) },
    };

    const rows: [string, string][] = [
      ['sends acknowledged', `${acked} of ${total}`],
      ['messages delivered', `${delivered}`],
      ['wall time (first send → last receipt)', `${result.wall_s.toFixed(2)} s`],
      ['delivered msgs/s', `${result.delivered_per_s}`],
      ['send → receipt p50 / p99 / max', lat ? `${lat.p50} / ${lat.p99} / ${lat.max} ms` : 'n/a'],
      ['send → sent p50 / p99 / max', slat ? `${slat.p50} / ${slat.p99} / ${slat.max} ms` : 'n/a'],
      ['lost / duplicated / out-of-order', `${lost} / ${dup} / ${ooo}`],
      ['send errors', Object.keys(errors).length ? Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'],
      ['CPU used: load generator / node', `${benchCpuS.toFixed(2)} s / ${nodeCpuS !== undefined ? `${nodeCpuS.toFixed(2)} s` : 'n/a (not our node)'} (over ${(wallMs / 1000).toFixed(2)} s of wall time)`],
      ['connections closed early', closedEarly.length ? closedEarly.slice(0, 5).join(', ') + (closedEarly.length > 5 ? ', …' : '') : 'none'],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    say('');
    for (const [k, v] of rows) say(`  ${k.padEnd(w)}  ${v}`);
    if (own?.problems.length) {
      say(`\nthe node logged ${own.problems.length} warnings or errors; the first:`);
      for (const l of own.problems.slice(0, 5)) say(`  ${l}`);
    }
    if (errors.rate_limited) say(`\nsends were rate_limited: the node's --rate/--rate-burst (default 200/400 per connection) cap this load`);
    if (o.json) say(JSON.stringify(result));
    const ok = lost === 0 && dup === 0 && ooo === 0 && closedEarly.length === 0;
    if (!ok) say('\nFAILED: messages were lost, duplicated or reordered, or connections closed');
    return ok ? 0 : 1;
  } finally {
    await stopAll();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`pairs: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
