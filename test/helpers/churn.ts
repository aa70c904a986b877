// Churn testing: clients that keep sending through joins, leaves, kills and restarts the way a
// careful app would (reconnect to another node on goaway or a dropped connection, resend
// unconfirmed messages with the same cid), and a checker of the invariants in docs/CLUSTER.md
// against the full history of confirmed sends.
import type { ExecutionContext } from 'ava';
import { ImSession } from '../../src/client/index.ts';
import type { Entry } from '../../src/protocol/frames.ts';
import { readAll, token } from './node.ts';
import type { TestCluster } from './cluster.ts';

/** A confirmed send; `to` is the recipient, or `g:<group>` for a group message. */
export type Confirmed = { from: string; to: string; mid: string; seq: number; cid: string; conn: number };

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

/**
 * One user sending to others (peers named `g:<group>` are groups) until stopped, one message at a
 * time, through the SDK's session (src/client/session.ts): it reconnects to another live node on
 * a goaway or a dropped connection and resends an unconfirmed message with the same cid, as an
 * app built on the SDK would.
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

  constructor(user: string, peers: string[], cluster: TestCluster, confirmed: Confirmed[], rand: () => number) {
    this.user = user;
    this.peers = peers;
    this.cluster = cluster;
    this.confirmed = confirmed;
    this.rand = rand;
  }

  private get s(): ImSession {
    if (!this.session) {
      const s = new ImSession({
        urls: this.cluster.live().map((n) => n.url), token: () => token(this.user), device: 'churn', since: 'latest', autoAck: false,
        window: 1, random: this.rand, connectTimeoutMs: 2000, backoffMs: { min: 50, max: 1000 },
      });
      s.on('welcome', () => this.conn++);
      s.on('state', (st) => st.state === 'reconnecting' && this.reconnects++);
      this.session = s;
    }
    return this.session;
  }

  /** Sends one message; the session resends the same cid until it is confirmed. */
  private async sendOne(): Promise<void> {
    const to = this.peers[this.n % this.peers.length]!;
    const cid = `${this.user}-${this.n++}`;
    const t0 = Date.now();
    const s = this.s;
    s.addUrls(this.cluster.live().map((n) => n.url)); // nodes added since
    const r = to.startsWith('g:') ? await s.sendGroup(to.slice(2), cid, cid) : await s.sendTo(to, cid, cid);
    this.waits.push(Date.now() - t0);
    this.confirmed.push({ from: this.user, to, mid: r.mid, seq: r.seq, cid, conn: this.conn });
  }

  async run(): Promise<void> {
    while (!this.stopped) await this.sendOne();
  }

  stop(): void {
    this.stopped = true;
  }

  close(): void {
    this.session?.close();
  }
}

/**
 * Reads every user's timeline from a fresh device and checks docs/CLUSTER.md's invariants: every confirmed
 * send is in the sender's and the recipient's timeline (invariant 1), seqs are 1..n with no mid
 * twice (2), sends from one connection keep their order in each recipient's timeline (3), and a
 * device replaying from the start gets exactly the timeline (5, via sync). Group messages are held
 * to the same: every confirmed one is in every member's timeline (members fixed for the run), in
 * one order shared by all members of the group.
 */
export async function checkInvariants(t: ExecutionContext, cluster: TestCluster, users: string[], confirmed: Confirmed[], groups = new Map<string, string[]>()): Promise<void> {
  const via = cluster.live()[0]!;
  const timelines = new Map<string, Entry[]>();
  for (const u of users) {
    const c = await via.client();
    await c.login({ token: await token(u), device: `check-${Date.now()}` });
    timelines.set(u, await readAll(c));
    c.close();
  }
  let problems = 0;
  const fail = (m: string) => {
    if (problems++ < 20) t.fail(m);
  };
  for (const [u, tl] of timelines) {
    if (!tl.every((e, i) => e.seq === i + 1)) fail(`${u}: seqs are not 1..${tl.length}`);
    if (new Set(tl.map((e) => e.mid)).size !== tl.length) fail(`${u}: a mid appears twice`);
  }
  const pos = new Map<string, Map<string, number>>(); // user -> mid -> seq
  for (const [u, tl] of timelines) pos.set(u, new Map(tl.map((e) => [e.mid, e.seq])));
  for (const m of confirmed) {
    if (!pos.get(m.from)?.has(m.mid)) fail(`${m.cid} (${m.mid}) confirmed but missing from the sender ${m.from}`);
    else if (pos.get(m.from)!.get(m.mid) !== m.seq) fail(`${m.cid}: sender seq ${pos.get(m.from)!.get(m.mid)} is not the confirmed ${m.seq}`);
    for (const r of groups.get(m.to) ?? [m.to]) {
      if (!pos.get(r)?.has(m.mid)) fail(`${m.cid} (${m.mid}) confirmed but missing from the recipient ${r}${m.to !== r ? ` (${m.to})` : ''}`);
    }
  }
  // One order per group: every member's timeline has the group's messages in the same order.
  for (const [g, members] of groups) {
    const orders = members.map((u) => (timelines.get(u) ?? []).filter((e) => e.conv === g).map((e) => e.mid));
    for (const [i, o] of orders.entries()) {
      const first = orders[0]!;
      if (JSON.stringify(o) !== JSON.stringify(first)) fail(`${g}: ${members[i]} sees ${o.length} messages in another order than ${members[0]} (${first.length})`);
    }
  }
  // Order per sending connection at each recipient.
  const last = new Map<string, number>();
  for (const m of confirmed) {
    for (const r of groups.get(m.to) ?? [m.to]) {
      const k = `${m.from}|${m.conn}|${m.to}|${r}`;
      const seq = pos.get(r)?.get(m.mid);
      if (seq === undefined) continue;
      if ((last.get(k) ?? 0) > seq) fail(`${m.cid}: out of order at ${r} (seq ${seq} after ${last.get(k)})`);
      last.set(k, seq);
    }
  }
  // Each confirmed cid once in its sender's timeline: no duplicate stores of a resend.
  for (const u of users) {
    const own = timelines.get(u)!.filter((e) => e.from === u && e.to !== u).map((e) => e.body);
    if (new Set(own).size !== own.length) fail(`${u}: a cid is stored twice in the sender's timeline`);
  }
  if (problems === 0) t.pass(`${confirmed.length} confirmed sends, ${users.length} timelines hold every invariant`);
}
