// Group fan-out: for groups of each size on a cluster of our own, every member online (spread
// over the nodes), one sender sends messages one at a time; measures send → sent, send → first
// and last member push, and the peer traffic per group message (fan-out requests, all peer
// frames, envelopes and bytes, replication and pushes included, less the idle cluster's own
// traffic), to show what grows with nodes and what with members.
import { parseArgs } from 'node:util';
import { cpus, totalmem } from 'node:os';
import { ImClient } from '../src/client/client.ts';
import type { MsgEvent } from '../src/protocol/frames.ts';
import { diff, OWN_NODE_ARGS, OwnCluster, peerTotals } from './lib.ts';

const USAGE = `usage: npm run bench:fanout -- [options]     (or: node bench/fanout.ts [options])

Starts N nodes of our own (${OWN_NODE_ARGS.join(' ')}); for each group size S, logs in S
members (round robin over the nodes), creates the group (create, then adds of 2,000),
and sends M messages one at a time from a member, each waited for at every member.
Peer traffic per message is measured from the nodes' /metrics, less the idle
cluster's traffic (sampled for 3 s before) over the same time.
  --nodes N       nodes (3)
  --sizes LIST    group sizes, comma-separated (100,1000,10000)
  --msgs M        messages per size (20)
  --body B        body bytes (100)
  --burst K       then, for groups of up to 1,000 members, 10 members send K messages
                  each at once (10 in flight per sender): group msgs/s, member copies/s,
                  and whether every member got them in one order (50; 0 = skip)
  --keep          keep the nodes' folder (data, logs)
  --json          also print the result as one JSON object
`;

type Burst = { senders: number; msgs: number; seconds: number; msgsPerS: number; copiesPerS: number; oneOrder: boolean };
type SizeResult = {
  members: number; msgs: number; setupS: number; burst?: Burst;
  sentMs: Stats; firstPushMs: Stats; lastPushMs: Stats;
  perMsg: { fanoutRequests: number; peerEnvelopes: number; peerFrames: number; peerKiB: number };
};
type Stats = { p50: number; max: number };

const CONNECT_BATCH = 200;
const IDLE_SAMPLE_MS = 3000;
const ADD_CHUNK = 2000;

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: Math.round(s[Math.floor(s.length / 2)]! * 10) / 10, max: Math.round(s[s.length - 1]! * 10) / 10 };
}

async function fanoutRequests(bases: string[]): Promise<number> {
  let n = 0;
  for (const b of bases) {
    const text = await (await fetch(`${b}/metrics`)).text();
    for (const line of text.split('\n')) {
      const m = /^im_fanout_requests_total\{[^}]*\}\s+(\S+)/.exec(line);
      if (m) n += Number(m[1]);
    }
  }
  return n;
}

async function runSize(cluster: OwnCluster, size: number, msgs: number, bodyBytes: number, tag: string, burstK: number): Promise<SizeResult> {
  const t0 = performance.now();
  const group = `fan${tag}s${size}`;
  const names = Array.from({ length: size }, (_, i) => `f${tag}s${size}m${i}`);
  const clients: ImClient[] = [];
  // Per member: the performance.now() at which each message index arrived.
  const arrivals: number[][] = Array.from({ length: msgs }, () => []);
  // Per member, the burst messages in the order they arrived.
  const burstSeen: string[][] = Array.from({ length: size }, () => []);
  let burstCopies = 0;
  for (let i = 0; i < size; i += CONNECT_BATCH) {
    await Promise.all(names.slice(i, i + CONNECT_BATCH).map(async (u, k) => {
      const node = cluster.nodes[(i + k) % cluster.nodes.length]!;
      const c = await ImClient.connect(node.url, { timeoutMs: 30_000 });
      await c.login({ user: u, device: 'bench' });
      c.on('msg', (m: MsgEvent) => {
        if (m.conv !== `g:${group}`) return;
        if (m.body.startsWith('b')) {
          burstSeen[i + k]!.push(m.body.slice(0, m.body.indexOf(' ')));
          burstCopies++;
          return;
        }
        const idx = Number(m.body.slice(0, m.body.indexOf(' ')));
        arrivals[idx]?.push(performance.now());
      });
      clients[i + k] = c;
    }));
  }
  const owner = clients[0]!;
  await owner.group('create', group, names.slice(1, ADD_CHUNK));
  for (let i = ADD_CHUNK; i < size; i += ADD_CHUNK) await owner.group('add', group, names.slice(i, i + ADD_CHUNK));
  const info = await owner.groupInfo(group);
  if (info.members.length !== size) throw new Error(`group has ${info.members.length} members, expected ${size}`);
  const setupS = (performance.now() - t0) / 1000;

  const bases = cluster.nodes.map((n) => n.http);
  // The idle cluster's own peer traffic (gossip, heartbeats, session renewals) per second, to
  // take out of the per-message figures.
  const idle0 = await peerTotals(bases);
  const ti = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
  const idle = diff(idle0, await peerTotals(bases));
  const idleS = (performance.now() - ti) / 1000;
  const peers0 = await peerTotals(bases);
  const fan0 = await fanoutRequests(bases);
  const tm = performance.now();
  const sent: number[] = [];
  const first: number[] = [];
  const last: number[] = [];
  const sender = clients[Math.min(1, size - 1)]!;
  for (let i = 0; i < msgs; i++) {
    const body = `${i} `.padEnd(bodyBytes, 'x');
    const ts = performance.now();
    await sender.sendGroup(group, `m${i}`, body);
    sent.push(performance.now() - ts);
    const end = Date.now() + 60_000;
    while (arrivals[i]!.length < size) {
      if (Date.now() > end) throw new Error(`message ${i}: ${arrivals[i]!.length} of ${size} members got it within 60 s`);
      await new Promise((r) => setTimeout(r, 2));
    }
    first.push(Math.min(...arrivals[i]!) - ts);
    last.push(Math.max(...arrivals[i]!) - ts);
  }
  // Replication of the last message's copies may still be on the wire: let it land in the counts.
  await new Promise((r) => setTimeout(r, 500));
  const raw = diff(peers0, await peerTotals(bases));
  const spanS = (performance.now() - tm) / 1000;
  const less = (k: keyof typeof raw) => Math.max(0, raw[k] - (idle[k] / idleS) * spanS);
  const peers = { frames: less('frames'), envelopes: less('envelopes'), bytes: less('bytes') };
  const fan = (await fanoutRequests(bases)) - fan0;
  let burst: Burst | undefined;
  if (burstK > 0 && size <= 1000) {
    const senders = clients.slice(0, Math.min(10, size));
    const total = senders.length * burstK;
    const tb = performance.now();
    await Promise.all(senders.map(async (c, s) => {
      let next = 0;
      const lane = async () => {
        while (next < burstK) {
          const i = next++;
          await c.sendGroup(group, `b${s}-${i}`, `b${s}-${i} `.padEnd(bodyBytes, 'x'));
        }
      };
      await Promise.all(Array.from({ length: 10 }, lane));
    }));
    const end = Date.now() + 120_000;
    while (burstCopies < total * size) {
      if (Date.now() > end) throw new Error(`burst: ${burstCopies} of ${total * size} copies arrived within 120 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const seconds = (performance.now() - tb) / 1000;
    const first = JSON.stringify(burstSeen[0]);
    burst = {
      senders: senders.length, msgs: total, seconds: Math.round(seconds * 100) / 100, msgsPerS: Math.round(total / seconds),
      copiesPerS: Math.round((total * size) / seconds), oneOrder: burstSeen.every((l) => JSON.stringify(l) === first),
    };
  }
  for (const c of clients) c.close();
  const per = (x: number) => Math.round((x / msgs) * 10) / 10;
  return {
    members: size, msgs, setupS: Math.round(setupS * 10) / 10, ...(burst ? { burst } : {}), sentMs: stats(sent), firstPushMs: stats(first), lastPushMs: stats(last),
    perMsg: { fanoutRequests: per(fan), peerEnvelopes: per(peers.envelopes), peerFrames: per(peers.frames), peerKiB: per(peers.bytes / 1024) },
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string' }, sizes: { type: 'string' }, msgs: { type: 'string' }, body: { type: 'string' }, burst: { type: 'string' },
      keep: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const nodes = Number(values.nodes ?? 3);
  const sizes = (values.sizes ?? '100,1000,10000').split(',').map(Number);
  const msgs = Number(values.msgs ?? 20);
  const body = Number(values.body ?? 100);
  const burstK = Number(values.burst ?? 50);
  if (![nodes, msgs, body, ...sizes].every((n) => Number.isInteger(n) && n > 0) || !Number.isInteger(burstK) || burstK < 0) {
    process.stderr.write(USAGE);
    return 2;
  }
  const command = `node bench/fanout.ts ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`fanout: ${command}`);
  console.log(`machine: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; ${nodes} nodes and this load generator share them`);
  const cluster = await OwnCluster.start(nodes, ['--max-members', String(Math.max(...sizes))]);
  const results: SizeResult[] = [];
  let ok = false;
  let misordered = false;
  try {
    await cluster.converged();
    cluster.phase = 'run';
    const tag = Math.random().toString(36).slice(2, 7);
    for (const size of sizes) {
      const r = await runSize(cluster, size, msgs, body, tag, burstK);
      results.push(r);
      console.log(`members ${r.members}: send→sent p50 ${r.sentMs.p50} ms (max ${r.sentMs.max}), send→last push p50 ${r.lastPushMs.p50} ms (max ${r.lastPushMs.max}), ` +
        `first push p50 ${r.firstPushMs.p50} ms; per message: ${r.perMsg.fanoutRequests} fan-out requests, ${r.perMsg.peerEnvelopes} peer envelopes, ` +
        `${r.perMsg.peerFrames} peer frames, ${r.perMsg.peerKiB} KiB between nodes (setup ${r.setupS} s)`);
      if (r.burst) {
        console.log(`  burst: ${r.burst.senders} senders, ${r.burst.msgs} messages in ${r.burst.seconds} s: ${r.burst.msgsPerS} group msgs/s, ` +
          `${r.burst.copiesPerS} member copies/s, ${r.burst.oneOrder ? 'every member in one order' : 'MEMBERS SAW DIFFERENT ORDERS'}`);
        if (!r.burst.oneOrder) misordered = true;
      }
    }
    ok = true;
  } finally {
    await cluster.stop();
    if (ok && !values.keep) await cluster.remove();
    else console.log(`nodes' folder kept: ${cluster.dir}`);
  }
  console.log('');
  console.log(`| members | send → sent p50 / max | send → first push p50 | send → last push p50 / max | fan-out requests / msg | peer frames / msg | peer envelopes / msg | KiB between nodes / msg |`);
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(`| ${r.members} | ${r.sentMs.p50} / ${r.sentMs.max} ms | ${r.firstPushMs.p50} ms | ${r.lastPushMs.p50} / ${r.lastPushMs.max} ms | ${r.perMsg.fanoutRequests} | ${r.perMsg.peerFrames} | ${r.perMsg.peerEnvelopes} | ${r.perMsg.peerKiB} |`);
  }
  if (values.json) console.log(JSON.stringify({ command, nodes, msgs, body, results }));
  return misordered ? 1 : 0;
}

process.exitCode = await main();
