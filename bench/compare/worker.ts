// The load worker, forked by run.ts: holds one connection per user it owns, and for each phase
// (0 = warm-up, 1 = measured) sends M messages per user to the partner with at most W awaiting
// the system's ack, and counts what arrives: unique, duplicated, out of order, latency.
import { adapter } from './systems.ts';
import type { Link } from './systems.ts';
import { bodyOf, monoUs, parseBody } from './shape.ts';
import type { FromWorker, Stats, ToWorker, WorkerInit } from './shape.ts';

const CONNECT_BATCH = 50;

type User = {
  uid: number;
  partner: number;
  link?: Link;
  next: number;
  inflight: number;
  /** The partner's seqs received in this phase, and the highest one. */
  seen: Uint8Array;
  maxSeq: number;
};

let init: WorkerInit;
const users: User[] = [];
let phase = -1;
let msgs = 0;
let s: Stats = fresh(0);
let settled = 0;
let done = true;

function fresh(expected: number): Stats {
  return { firstSendUs: 0, lastRecvUs: 0, expected, unique: 0, dups: 0, outOfOrder: 0, stray: 0, acked: 0, sendErrors: 0, errors: 0, closed: 0, lat: [] };
}

const post = (m: FromWorker) => process.send!(m);

function pump(u: User): void {
  while (u.inflight < init.window && u.next < msgs && u.link) {
    const seq = u.next++;
    u.inflight++;
    u.link.send(bodyOf(phase, u.uid, seq, monoUs(), init.body), `${init.run}-${u.uid}-${phase}-${seq}`);
  }
}

/** Done when every send is settled (acked or failed) and every message not refused has arrived. */
function check(): void {
  if (!done && settled >= s.expected && s.unique + s.sendErrors >= s.expected) {
    done = true;
    post({ type: 'done' });
  }
}

function received(u: User, body: string): void {
  const now = monoUs();
  const st = parseBody(body);
  if (!st || st.phase !== phase || st.from !== u.partner || st.seq < 0 || st.seq >= msgs) {
    s.stray++;
    return;
  }
  if (u.seen[st.seq]) {
    s.dups++;
    return;
  }
  u.seen[st.seq] = 1;
  if (st.seq < u.maxSeq) s.outOfOrder++;
  else u.maxSeq = st.seq;
  s.unique++;
  s.lat.push(now - st.us);
  s.lastRecvUs = now;
  check();
}

function settle(u: User): void {
  u.inflight--;
  settled++;
  pump(u);
  check();
}

async function setup(): Promise<void> {
  const a = await adapter(init.system);
  for (const uid of init.users) users.push({ uid, partner: uid ^ 1, next: 0, inflight: 0, seen: new Uint8Array(0), maxSeq: -1 });
  for (let i = 0; i < users.length; i += CONNECT_BATCH) {
    await Promise.all(users.slice(i, i + CONNECT_BATCH).map(async (u) => {
      const endpoint = init.endpoints[u.uid % init.endpoints.length]!;
      u.link = await a.connect({ uid: u.uid, partner: u.partner, endpoint, run: init.run, ackEvery: init.ackEvery }, {
        onBody: (body) => received(u, body),
        onAck: () => {
          s.acked++;
          settle(u);
        },
        onSendError: (why) => {
          s.sendErrors++;
          s.firstError ??= why;
          settle(u);
        },
        onError: (why) => {
          s.errors++;
          s.firstError ??= `user ${u.uid}: ${why}`;
        },
        onClose: (why) => {
          s.closed++;
          s.firstError ??= `user ${u.uid}: ${why}`;
          u.link = undefined;
        },
      }).catch((e: Error) => {
        throw new Error(`${init.system}: connecting user ${u.uid} to ${endpoint}: ${e.message}`);
      });
    }));
  }
}

function go(p: number, m: number): void {
  phase = p;
  msgs = m;
  s = fresh(users.length * m);
  settled = 0;
  done = false;
  for (const u of users) Object.assign(u, { next: 0, inflight: 0, seen: new Uint8Array(m), maxSeq: -1 });
  s.firstSendUs = monoUs();
  for (const u of users) pump(u);
  check();
}

process.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'init':
      init = m.init;
      setup().then(() => post({ type: 'ready' }), (e: Error) => post({ type: 'error', error: e.message }));
      break;
    case 'go':
      go(m.phase, m.msgs);
      break;
    case 'collect':
      post({ type: 'stats', stats: s });
      break;
    case 'exit':
      for (const u of users) u.link?.close();
      // Let the closes go out, then leave even if a client library keeps a timer.
      setTimeout(() => process.exit(0), 300);
      break;
  }
});
