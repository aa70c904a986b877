// Load generator: users in pairs, each sending to its partner with a bounded window of unacknowledged
// sends; measures delivered msgs/s, send-to-receipt latency, loss, duplication and reordering, and
// the peer traffic (frames, envelopes, bytes between nodes) per delivered message.
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { ImClient, ImError } from '../src/client/client.ts';
import type { MsgEvent, SentReply, WelcomeReply } from '../src/protocol/frames.ts';
import { diff, metricsBases, OWN_NODE_ARGS, OwnCluster, peerTotals, procCpuS, sleep } from './lib.ts';
import type { PeerTotals } from './lib.ts';
import { diffThreads, profilesByPid, stageSamples, stageTable, threadCpu } from './stages.ts';

const CONNECT_BATCH = 50;
const PING_EVERY_MS = 20_000;

const USAGE = `usage: npm run bench -- [options]      (or: node bench/pairs.ts [options])

U users in U/2 pairs; each user holds one connection and sends M messages of
about B bytes to its partner, with at most W sends awaiting 'sent'.
  --nodes N        start a cluster of N nodes of our own (1): temp folders, free
                   ports, a shared swarm key, nodes 2..N joining node 1; insecure,
                   ${OWN_NODE_ARGS.slice(1).join(' ')}. With N > 1 the two users of
                   every pair connect to different nodes. Stopped at the end
  --url URL        load existing node(s) instead: repeatable or comma-separated;
                   the two users of a pair go to different URLs
  --users U        even number of users (200)
  --msgs M         messages per user (200)
  --window W       unacknowledged sends per connection (10)
  --body B         body size in bytes (100)
  --secret S       mint tokens with this secret (else IM_SECRET, $IM_DATA/secret;
                   with none, log in with {"user"}: the node must be insecure)
  --timeout S      wait at most S seconds after the last 'sent' for deliveries (30)
  --run ID         user names p<ID>-a<i>, p<ID>-b<i> (default: random); the same ID
                   and node names give the same homes on the ring. Against existing
                   nodes, reuse an ID only on fresh data (cids repeat: sends are dups)
  --idle S         before the load, sample the peer traffic of the idle cluster for
                   S seconds (membership gossip, heartbeats, session renewals) (0)
  --keep           keep our nodes' folder (data, logs) even when the run passed;
                   it is always kept when it failed
  --json           also print the result as one JSON object
  --profile        (our nodes only) run the nodes with V8's CPU profiler and print
                   where their CPU went during the load, per stage of a message's
                   path, in µs per delivered message (bench/stages.ts); profiling
                   itself costs CPU: compare its shares, not its totals
Peer traffic: /metrics of every node (ours, or the --url nodes and the members
their /cluster lists) is read before and after the load; the growth of the
im_peer_frames, im_peer_messages and im_peer_bytes gauges with dir="out", summed
over nodes and peers, is divided by the messages delivered.
Exit status: 0 when nothing was lost, duplicated or reordered, 1 otherwise.
`;

type Opts = {
  urls: string[]; nodes: number; users: number; msgs: number; window: number; body: number;
  secret?: string; timeoutS: number; run?: string; idleS: number; keep: boolean; json: boolean; profile: boolean;
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
        url: { type: 'string', multiple: true }, nodes: { type: 'string' }, users: { type: 'string' }, msgs: { type: 'string' },
        window: { type: 'string' }, body: { type: 'string' }, secret: { type: 'string' }, timeout: { type: 'string' },
        run: { type: 'string' }, idle: { type: 'string' }, keep: { type: 'boolean' },
        json: { type: 'boolean' }, profile: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
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
  const nodes = int('nodes', 1, 1);
  if (urls.length && values.nodes !== undefined) fail('--nodes starts nodes of our own; --url uses existing ones: give one or the other');
  if (urls.length && values.profile) fail('--profile profiles nodes of our own: not with --url');
  const run = values.run as string | undefined;
  if (run !== undefined && !/^[A-Za-z0-9]{1,16}$/.test(run)) fail(`--run must be 1 to 16 letters or digits, got '${run}'`);
  const secret = (values.secret as string | undefined) ?? process.env.IM_SECRET ?? readSecretFile();
  return {
    urls, nodes, users, msgs: int('msgs', 200, 1), window: int('window', 10, 1), body: int('body', 100, 1),
    timeoutS: int('timeout', 30, 1), idleS: int('idle', 0, 0), keep: values.keep === true, json: values.json === true, profile: values.profile === true,
    ...(run ? { run } : {}), ...(secret ? { secret } : {}),
  };
}

function readSecretFile(): string | undefined {
  try {
    return readFileSync(join(process.env.IM_DATA || './data', 'secret'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

// ---- the load ----

const clock = () => performance.timeOrigin + performance.now();

type Party = {
  user: string;
  url: string;
  /** The node that welcomed this connection. */
  node: string;
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

/** What --profile needs from the load: its window on the monotonic clock (µs), each node's CPU
 * per thread over it, and the messages delivered. */
type ProfileWindow = { fromUs: number; toUs: number; threads: Map<string, number>[]; delivered: number };
type Result = { ok: boolean; lines: string[]; profile?: ProfileWindow };

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseOpts(argv);
  const cpu = cpus();
  const machine = `${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`;
  const say = (s: string) => process.stdout.write(s + '\n');
  const command = `node bench/pairs.ts ${argv.join(' ')}`;
  say(`command:  ${command}`);
  say(`machine:  ${machine}; node ${process.version}`);

  let own: OwnCluster | undefined;
  let urls = o.urls;
  const parties: Party[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = () => (stopping ??= (async () => {
    for (const p of parties) p.c.close();
    await own?.stop();
  })());
  process.once('SIGINT', () => void stopAll().then(() => {
    if (own) process.stderr.write(`pairs: interrupted; node data and logs kept in ${own.dir}\n`);
    process.exit(130);
  }));

  let res: Result = { ok: false, lines: [] };
  try {
    if (!urls.length) {
      const t0 = clock();
      own = await OwnCluster.start(o.nodes, [], o.profile ? { profileDir: 'profiles' } : {});
      const version = await own.converged();
      urls = own.nodes.map((n) => n.url);
      say(`target:   ${o.nodes === 1 ? 'a node' : `a cluster of ${o.nodes} nodes`} of our own (${OWN_NODE_ARGS.join(' ')}), on this machine: ` +
        `${own.nodes.map((n) => `${n.name} ${n.url}`).join(', ')}; ring ${version} after ${((clock() - t0) / 1000).toFixed(1)} s; data and logs in ${own.dir}`);
    } else {
      say(`target:   ${urls.join(' ')}`);
    }
    res = await runLoad(o, urls, own, parties, { command, machine, say });
  } catch (e) {
    await stopAll();
    if (own) (e as Error).message += `\n(node data and logs kept in ${own.dir})`;
    throw e;
  }
  await stopAll();
  // What the nodes logged while stopping, or how they exited, comes after the results.
  const lines = [...res.lines];
  if (own && res.profile) lines.push(...profileLines(own, res.profile));
  if (own) {
    const late = own.problems.filter((p) => p.phase === 'shutdown');
    if (late.length) {
      lines.push(`\nwhile stopping, the nodes logged ${late.length} warnings or errors; the first:`);
      for (const p of late.slice(0, 5)) lines.push(`  ${p.node}: ${p.line.slice(0, 400)}`);
    }
    if (!res.ok || o.keep || o.profile) lines.push(`\nnode data and logs kept in ${own.dir} (${own.nodes.map((n) => `${n.name}.log`).join(', ')})`);
    else await own.remove();
  }
  for (const l of lines) say(l);
  return res.ok ? 0 : 1;
}

async function runLoad(
  o: Opts, urls: string[], own: OwnCluster | undefined, parties: Party[],
  out: { command: string; machine: string; say: (s: string) => void },
): Promise<Result> {
  const { say } = out;
  const secret = own ? undefined : o.secret;
  const total = o.users * o.msgs;
  const run = o.run ?? Math.random().toString(36).slice(2, 8);
  say(`load:     ${o.users} users in ${o.users / 2} pairs (p${run}-a<i> and p${run}-b<i>), ${o.msgs} msgs each (${total} in all), window ${o.window}, body ${o.body} B, login ${secret ? 'with minted tokens' : 'insecure {"user"}'}`);

  const latency = new Percentiles(total);
  const sentLatency = new Percentiles(total);
  const errors: Record<string, number> = {};
  let firstSend = 0;
  let lastSent = 0;
  let lastReceipt = 0;
  let delivered = 0;

  // Users a<i> and b<i> are partners; in order a0 b0 a1 b1 …, round-robin over the URLs puts
  // the two of a pair on different URLs whenever there are several (i and i + 1 differ mod n).
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
      const welcome: WelcomeReply = await c.login(token ? { token, device: 'bench' } : { user: s.user, device: 'bench' }).catch((e: Error) => {
        c.close();
        throw new Error(`login of ${s.user} at ${s.url} failed: ${e.message}`);
      });
      return { ...s, c, node: welcome.node };
    }));
    for (const m of made) {
      parties.push({
        ...m, partner: undefined as unknown as Party, next: 0, inflight: 0,
        acked: new Uint8Array(o.msgs), ackedCount: 0, received: new Uint8Array(o.msgs), receivedCount: 0,
        mids: new Set(), lastCounter: -1, dup: 0, ooo: 0,
      });
    }
  }
  let split = 0;
  for (let i = 0; i < parties.length; i += 2) {
    parties[i]!.partner = parties[i + 1]!;
    parties[i + 1]!.partner = parties[i]!;
    if (parties[i]!.node !== parties[i + 1]!.node) split++;
  }
  const pairs = parties.length / 2;
  const nodesSeen = new Set(parties.map((p) => p.node));
  say(`setup:    ${parties.length} connections logged in in ${((clock() - t0) / 1000).toFixed(1)} s, at ${nodesSeen.size} node(s) (by their welcome); ${split} of ${pairs} pairs split across nodes`);
  // With a cluster of our own, every pair must span two nodes: that is the point of --nodes.
  if (own && own.nodes.length > 1 && split !== pairs) throw new Error(`only ${split} of ${pairs} pairs are split across nodes`);

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

  // Peer traffic: the nodes' counters before and after the load (n/a if a node's /metrics is not reachable).
  const bases = own ? own.nodes.map((n) => n.http) : await metricsBases(urls);
  let peerError: string | undefined;
  const readPeers = () => peerTotals(bases).catch((e: Error) => {
    peerError ??= e.message;
    return undefined;
  });
  let idle: (PeerTotals & { seconds: number }) | undefined;
  if (o.idleS > 0) {
    const a = await readPeers();
    const ta = clock();
    await sleep(o.idleS * 1000);
    const b = await readPeers();
    if (a && b) idle = { ...diff(a, b), seconds: (clock() - ta) / 1000 };
  }
  const peers0 = await readPeers();

  // Every connection keeps up to W sends in flight until it has sent M.
  if (own) own.phase = 'run';
  firstSend = clock();
  const cpu0 = process.cpuUsage();
  const nodeCpu0 = own?.cpu();
  const window0 = o.profile && own ? { us: monoUs(), threads: own.pids().map(threadCpu) } : undefined;
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
    await sleep(20);
  }
  clearInterval(ping);
  const cpuUsed = process.cpuUsage(cpu0);
  const benchCpuS = (cpuUsed.user + cpuUsed.system) / 1e6;
  const nodeCpu1 = own?.cpu();
  const profile = window0 && own
    ? { fromUs: window0.us, toUs: monoUs(), threads: own.pids().map((pid, i) => diffThreads(window0.threads[i]!, threadCpu(pid))), delivered }
    : undefined;
  const nodeCpus = nodeCpu0 && nodeCpu1 ? nodeCpu0.map((a, i) => (a !== undefined && nodeCpu1[i] !== undefined ? nodeCpu1[i]! - a : undefined)) : undefined;
  const nodeCpuS = nodeCpus?.every((c) => c !== undefined) ? nodeCpus.reduce<number>((s, c) => s + c!, 0) : undefined;
  const peers1 = await readPeers();
  if (own) own.phase = 'shutdown'; // anything logged from here on is reported after the stop

  const acked = parties.reduce((n, p) => n + p.ackedCount, 0);
  const lost = lostNow();
  const dup = parties.reduce((n, p) => n + p.dup, 0);
  const ooo = parties.reduce((n, p) => n + p.ooo, 0);
  const closedEarly = parties.filter((p) => p.closed).map((p) => `${p.user} (${p.closed!.code} ${p.closed!.reason})`);
  const wallMs = (lastReceipt || clock()) - firstSend;
  const sendMs = (lastSent || clock()) - firstSend;
  const lat = latency.summary();
  const slat = sentLatency.summary();
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const peerDelta = peers0 && peers1 ? diff(peers0, peers1) : undefined;
  const per = peerDelta && delivered
    ? { frames: peerDelta.frames / delivered, envelopes: peerDelta.envelopes / delivered, bytes: peerDelta.bytes / delivered }
    : undefined;
  const result = {
    command: out.command,
    machine: out.machine, node: process.version,
    target: own ? `own ${own.nodes.length === 1 ? 'node' : `cluster of ${own.nodes.length} nodes`}` : urls,
    nodes: own ? own.nodes.length : nodesSeen.size,
    users: o.users, msgs: o.msgs, window: o.window, body: o.body, run,
    pairs, pairs_split: split,
    attempted: o.users * o.msgs, acked, delivered,
    wall_s: Math.round(wallMs) / 1000,
    delivered_per_s: Math.round((delivered / wallMs) * 1000),
    acked_per_s: Math.round((acked / sendMs) * 1000),
    latency_ms: lat ?? null, sent_latency_ms: slat ?? null,
    lost, duplicated: dup, out_of_order: ooo, errors, closed_early: closedEarly.length,
    peer: peerDelta && per
      ? {
        frames: peerDelta.frames, envelopes: peerDelta.envelopes, bytes: peerDelta.bytes,
        frames_per_msg: round2(per.frames), envelopes_per_msg: round2(per.envelopes), bytes_per_msg: Math.round(per.bytes),
        envelopes_per_frame: peerDelta.frames ? round2(peerDelta.envelopes / peerDelta.frames) : null,
        ...(idle ? { idle: { seconds: round2(idle.seconds), frames: idle.frames, envelopes: idle.envelopes, bytes: idle.bytes } } : {}),
      }
      : null,
    cpu_s: {
      bench: round2(benchCpuS),
      ...(nodeCpuS !== undefined ? { nodes: round2(nodeCpuS), per_node: nodeCpus!.map((c) => round2(c!)) } : {}),
    },
  };

  const perMsg = (what: string, v: number | undefined, digits: number, totalV: number | undefined) =>
    v === undefined ? `n/a (${peerError ?? 'nothing delivered'})` : `${v.toFixed(digits)}  (${totalV} ${what} in all)`;
  const rows: [string, string][] = [
    ['sends acknowledged', `${acked} of ${result.attempted}`],
    ['messages delivered', `${delivered}`],
    ['wall time (first send → last receipt)', `${result.wall_s.toFixed(2)} s`],
    ['delivered msgs/s', `${result.delivered_per_s}`],
    ['send → receipt p50 / p99 / max', lat ? `${lat.p50} / ${lat.p99} / ${lat.max} ms` : 'n/a'],
    ['send → sent p50 / p99 / max', slat ? `${slat.p50} / ${slat.p99} / ${slat.max} ms` : 'n/a'],
    ['lost / duplicated / out-of-order', `${lost} / ${dup} / ${ooo}`],
    ['send errors', Object.keys(errors).length ? Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'],
    ['peer frames per msg (out, all nodes)', perMsg('frames', per?.frames, 3, peerDelta?.frames)],
    ['peer envelopes per msg', perMsg('envelopes', per?.envelopes, 3, peerDelta?.envelopes)
      + (peerDelta?.frames ? `, ${(peerDelta.envelopes / peerDelta.frames).toFixed(1)} per frame` : '')],
    ['peer bytes per msg', perMsg('bytes', per?.bytes, 0, peerDelta?.bytes)],
  ];
  if (idle) {
    rows.push(['idle peer traffic (before the load)', `${(idle.frames / idle.seconds).toFixed(1)} frames/s, ${(idle.envelopes / idle.seconds).toFixed(1)} envelopes/s, ${Math.round(idle.bytes / idle.seconds)} B/s (over ${idle.seconds.toFixed(1)} s)`]);
  }
  rows.push(
    ['CPU used: load generator / nodes', `${benchCpuS.toFixed(2)} s / ${nodeCpuS !== undefined
      ? `${nodeCpuS.toFixed(2)} s${nodeCpus!.length > 1 ? ` (${nodeCpus!.map((c) => c!.toFixed(2)).join(' + ')})` : ''}`
      : 'n/a (not our nodes)'} (over ${(wallMs / 1000).toFixed(2)} s of wall time)`],
    ['connections closed early', closedEarly.length ? closedEarly.slice(0, 5).join(', ') + (closedEarly.length > 5 ? ', …' : '') : 'none'],
  );
  const lines: string[] = [];
  const w = Math.max(...rows.map(([k]) => k.length));
  lines.push('');
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(w)}  ${v}`);
  const early = own?.problems.filter((p) => p.phase !== 'shutdown') ?? [];
  if (early.length) {
    lines.push(`\nthe nodes logged ${early.length} warnings or errors before or during the load; the first:`);
    for (const p of early.slice(0, 8)) lines.push(`  ${p.node} (${p.phase}): ${p.line.slice(0, 400)}`);
  }
  if (errors.rate_limited) lines.push(`\nsends were rate_limited: the node's --rate/--rate-burst (default 200/400 per connection) cap this load`);
  if (o.json) lines.push(JSON.stringify(result));
  const ok = lost === 0 && dup === 0 && ooo === 0 && closedEarly.length === 0;
  if (!ok) lines.push(`\nFAILED: messages were lost, duplicated or reordered, or connections closed (users p${run}-*; rerun with --run ${run} for the same homes)`);
  return { ok, lines, ...(profile ? { profile } : {}) };
}

/** The --profile table, from the profiles the nodes wrote as they exited. */
function profileLines(own: OwnCluster, w: ProfileWindow): string[] {
  const files = profilesByPid(join(own.dir, 'profiles'));
  const pids = own.pids();
  const missing = own.nodes.filter((_, i) => !files.has(pids[i]!)).map((n) => n.name);
  if (missing.length) return [`\nno CPU profile from ${missing.join(', ')} (a node that does not exit cleanly writes none)`];
  const samples = pids.map((pid) => stageSamples(files.get(pid)!, w.fromUs, w.toUs));
  return [
    `\nwhere the nodes' CPU went during the load (${own.nodes.length} nodes together; profiles in ${join(own.dir, 'profiles')}):`,
    ...stageTable(samples, w.threads, w.delivered),
  ];
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`pairs: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
