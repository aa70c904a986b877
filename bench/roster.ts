// The cost of a login with a large roster: a user with C contacts (F friends, the rest followed),
// some of them online, on a 3-node cluster. Logins alternate between the nodes, with and without
// `roster: true`; each prints the time from sending the login to the last roster page (or to
// welcome), and the peer traffic (envelopes, frames, bytes sent by all nodes) in that window,
// against an idle window of the same length (gossip and heartbeats).
//   node bench/roster.ts [--contacts 2000] [--friends 200] [--online 200] [--logins 6]
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { ImClient } from '../src/client/client.ts';
import type { ServerFrame } from '../src/protocol/frames.ts';
import { diff, metricsBases, OwnCluster, peerTotals, sleep } from './lib.ts';
import type { PeerTotals } from './lib.ts';

const { values } = parseArgs({
  options: {
    contacts: { type: 'string', default: '2000' }, friends: { type: 'string', default: '200' },
    online: { type: 'string', default: '200' }, logins: { type: 'string', default: '6' }, keep: { type: 'boolean', default: false },
  },
});
const CONTACTS = Number(values.contacts);
const FRIENDS = Number(values.friends);
const ONLINE = Number(values.online);
const LOGINS = Number(values.logins);

type Req = Parameters<ImClient['request']>[0];
const ask = (c: ImClient, frame: Record<string, unknown>) => c.request(frame as Req);

async function connect(url: string, user: string, roster = false): Promise<ImClient> {
  const c = await ImClient.connect(url);
  await c.login({ user, device: 'bench', ...(roster ? { roster: true } : {}) });
  return c;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<number> {
  if (![CONTACTS, FRIENDS, ONLINE, LOGINS].every((n) => Number.isInteger(n) && n >= 0) || FRIENDS > CONTACTS || ONLINE > CONTACTS) {
    process.stderr.write('usage: node bench/roster.ts [--contacts N] [--friends F <= N] [--online O <= N] [--logins K]\n');
    return 2;
  }
  console.log(`roster: node bench/roster.ts ${process.argv.slice(2).join(' ')}`.trim());
  console.log(`machine: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; 3 nodes and this load generator share them`);
  const cluster = await OwnCluster.start(3, ['--max-in-flight', '5000', '--max-contacts', String(Math.max(5000, CONTACTS))]);
  let ok = false;
  const open: ImClient[] = [];
  try {
    await cluster.converged();
    cluster.phase = 'run';
    const urls = cluster.nodes.map((n) => n.url);
    const bases = await metricsBases(urls);
    const tag = Math.random().toString(36).slice(2, 7);
    const owner = `ro-${tag}`;
    const friends = Array.from({ length: FRIENDS }, (_, i) => `rf-${tag}-${i}`);
    const followed = Array.from({ length: CONTACTS - FRIENDS }, (_, i) => `rw-${tag}-${i}`);
    const t0 = performance.now();
    const o = await connect(urls[0]!, owner);
    await Promise.all(followed.map((u) => ask(o, { op: 'follow', user: u })));
    // Friends ask, 50 at a time; the owner accepts once every request is there.
    for (let i = 0; i < friends.length; i += 50) {
      await Promise.all(friends.slice(i, i + 50).map(async (u, j) => {
        const c = await connect(urls[(i + j) % urls.length]!, u);
        await ask(c, { op: 'contact_request', user: owner });
        c.close();
      }));
    }
    for (;;) {
      let pending = 0;
      let after: string | undefined;
      for (;;) {
        const r = (await ask(o, { op: 'contacts', limit: 1000, ...(after ? { after } : {}) })) as unknown as { contacts: { state: string }[]; more: boolean; next?: string };
        pending += r.contacts.filter((k) => k.state === 'pending').length;
        if (!r.more) break;
        after = r.next;
      }
      if (pending === FRIENDS) break;
      await sleep(200);
    }
    await Promise.all(friends.map((u) => ask(o, { op: 'contact_accept', user: u })));
    o.close();
    // Some contacts online, friends first, spread over the nodes.
    for (const [i, u] of [...friends, ...followed].slice(0, ONLINE).entries()) open.push(await connect(urls[i % urls.length]!, u));
    console.log(`setup: ${CONTACTS} contacts (${FRIENDS} friends), ${ONLINE} online, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    type Row = { roster: boolean; node: number; ms: number; pages: number; contacts: number; online: number; traffic: PeerTotals };
    const rows: Row[] = [];
    for (let i = 0; i < 2 * LOGINS; i++) {
      const roster = i % 2 === 0;
      const node = Math.floor(i / 2) % urls.length;
      await sleep(500);
      const before = await peerTotals(bases);
      const c = await ImClient.connect(urls[node]!);
      let pages = 0;
      let contacts = 0;
      let online = 0;
      let last = false;
      c.on('frame', (f: ServerFrame) => {
        if (f.op !== 'roster') return;
        pages++;
        contacts += f.contacts.length;
        online += f.contacts.filter((k) => k.presence?.online).length;
        last = !f.more;
      });
      const s = performance.now();
      await c.login({ user: owner, device: `b${i}`, since: 0, ...(roster ? { roster: true } : {}) });
      while (roster && !last) await sleep(1);
      const ms = performance.now() - s;
      const traffic = diff(before, await peerTotals(bases));
      c.close();
      rows.push({ roster, node: node + 1, ms, pages, contacts, online, traffic });
      console.log(`login ${roster ? 'with roster' : 'without   '} at node ${node + 1}: ${ms.toFixed(0)} ms, ${pages} pages, ${contacts} contacts (${online} online); ` +
        `peer: ${traffic.envelopes} envelopes, ${traffic.frames} frames, ${(traffic.bytes / 1024).toFixed(1)} KiB`);
    }
    await sleep(500);
    const idleBefore = await peerTotals(bases);
    const idleMs = median(rows.filter((r) => r.roster).map((r) => r.ms)) + 50;
    await sleep(idleMs);
    const idle = diff(idleBefore, await peerTotals(bases));
    console.log('');
    console.log(`| login | time p50 (min–max) | pages | peer envelopes p50 | peer frames p50 | KiB between nodes p50 |`);
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const roster of [true, false]) {
      const rs = rows.filter((r) => r.roster === roster);
      const ms = rs.map((r) => r.ms);
      console.log(`| ${roster ? `roster:true, ${CONTACTS} contacts` : 'no roster'} | ${median(ms).toFixed(0)} ms (${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)}) | ` +
        `${median(rs.map((r) => r.pages))} | ${median(rs.map((r) => r.traffic.envelopes))} | ${median(rs.map((r) => r.traffic.frames))} | ${(median(rs.map((r) => r.traffic.bytes)) / 1024).toFixed(1)} |`);
    }
    console.log(`| idle, ${idleMs.toFixed(0)} ms (background) | | | ${idle.envelopes} | ${idle.frames} | ${(idle.bytes / 1024).toFixed(1)} |`);
    ok = true;
  } finally {
    for (const c of open) c.close();
    await cluster.stop();
    if (ok && !values.keep) await cluster.remove();
    else console.log(`nodes' folder kept: ${cluster.dir}`);
  }
  return 0;
}

process.exitCode = await main();
