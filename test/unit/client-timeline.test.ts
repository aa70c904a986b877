// The SDK's timeline (src/client/timeline.ts) alone, with a fake node: in-order delivery, held
// pushes and gap repair by sync, the bound on held pushes, and batched acks.
import test from 'ava';
import { Timeline } from '../../src/client/timeline.ts';
import type { Entry, MsgsReply, WelcomeReply } from '../../src/protocol/frames.ts';

const entry = (seq: number): Entry => ({ seq, mid: `m${seq}`, conv: 'dm:a:b', from: 'a', to: 'b', body: `b${seq}`, ts: seq });
const welcome = (seq: number, acked = 0): WelcomeReply => ({ op: 'welcome', user: 'b', device: 'd', node: 'n1', seq, acked });

function setup(opts: Partial<{ maxAhead: number; autoAck: boolean; ackDelayMs: number }> = {}, stored = 100) {
  const delivered: number[] = [];
  const syncs: number[] = [];
  const acks: number[] = [];
  const tl = new Timeline({ maxAhead: 1000, autoAck: false, ackDelayMs: 10, ...opts }, {
    deliver: (e) => delivered.push(e.seq),
    sync: async (after): Promise<MsgsReply> => {
      syncs.push(after);
      const msgs = [];
      for (let s = after + 1; s <= Math.min(stored, after + 3); s++) msgs.push(entry(s));
      return { op: 'msgs', msgs, more: after + 3 < stored };
    },
    postAck: (seq) => (acks.push(seq), true),
  });
  return { tl, delivered, syncs, acks };
}
const settle = () => new Promise((r) => setTimeout(r, 30));

test('the first login sets the cursor from since, else from the acked cursor; later ones keep it', (t) => {
  const a = setup();
  a.tl.loggedIn(undefined, welcome(9, 4));
  t.is(a.tl.seq, 4);
  a.tl.loggedIn(7, welcome(12, 4));
  t.is(a.tl.seq, 4, 'the cursor is the app\'s, not the next welcome\'s');
  t.is(a.tl.since(0), 4);
  const b = setup();
  b.tl.loggedIn(50, welcome(9));
  t.is(b.tl.seq, 9, 'a since past the newest seq is clamped like the node does');
});

test('pushes are delivered once and in order; a skip is held and filled with sync', async (t) => {
  const { tl, delivered, syncs } = setup({}, 8);
  tl.loggedIn(0, welcome(0));
  for (const s of [1, 2, 2, 1, 6, 8, 7]) tl.push(entry(s));
  await settle();
  t.deepEqual(delivered, [1, 2, 3, 4, 5, 6, 7, 8]);
  t.deepEqual(syncs.slice(0, 1), [2], 'the gap was asked for from the last seq delivered');
});

test('held pushes are bounded; what was dropped comes with the repair', async (t) => {
  const { tl, delivered } = setup({ maxAhead: 2 }, 10);
  tl.loggedIn(0, welcome(0));
  for (const s of [5, 6, 7, 8, 9, 10]) tl.push(entry(s));
  await settle();
  t.deepEqual(delivered, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

test('acks go in batches, only forward', async (t) => {
  const { tl, acks } = setup({ autoAck: true, ackDelayMs: 15 });
  tl.loggedIn(0, welcome(0));
  for (let s = 1; s <= 50; s++) tl.push(entry(s));
  await settle();
  t.deepEqual(acks, [50]);
  tl.ack(20);
  t.deepEqual(acks, [50], 'an ack below the cursor is not sent');
});
