// What a client was told is durable survives SIGKILL: kill the node the moment replies arrive,
// restart it on the same data folder, and check every confirmed message, seq and cursor.
import test from 'ava';
import { cleanup, readAll, startNode, token } from '../helpers/node.ts';
import type { SentReply } from '../../src/protocol/frames.ts';

test.after.always(cleanup);

test('SIGKILL right after sent loses nothing; seqs continue and cids still dedup after restart', async (t) => {
  const node = await startNode({ name: 'dur', args: ['--rate', '100000', '--rate-burst', '100000', '--max-in-flight', '100000'] });
  const { c: bob } = await node.login('dur-b');
  await bob.ack(0);
  const { c: alice } = await node.login('dur-a');
  await alice.send('dur-b', 'warm', 'first');
  await bob.ack(1);

  // Every `sent` the client receives was written by the node before it died, so all count.
  const confirmed = new Map<string, SentReply>(); // cid -> reply
  const total = 20_000;
  const killAfter = 400;
  let replies = 0;
  // Kill synchronously inside the handler that sees the killAfter-th reply: nothing else runs first.
  alice.on('frame', (f) => {
    if (f.op === 'sent' && ++replies === killAfter) node.proc!.kill('SIGKILL');
  });
  // At most 200 sends in flight, so the kill always lands with most of the stream unsent, however
  // fast or slow the node is; every new send goes out when a reply (or error) comes back.
  const cids: string[] = [];
  await new Promise<void>((done) => {
    let next = 0;
    const pump = () => {
      if (alice.ws.readyState !== alice.ws.OPEN || next >= total) return done();
      const cid = `k${next}`;
      const i = next++;
      cids.push(cid);
      alice.send('dur-b', cid, `body ${i}`).then((r) => confirmed.set(cid, r), () => undefined).finally(pump);
    };
    for (let k = 0; k < 200; k++) pump();
    alice.once('close', () => done());
  });
  await alice.closedWith(10_000);
  t.true(replies >= killAfter, 'the node was killed mid-stream');
  t.true(confirmed.size >= killAfter);
  t.true(confirmed.size < total, 'some sends were still unconfirmed');

  await node.start(node.port);
  const b2 = await node.client();
  const w = await b2.login({ token: await token('dur-b'), device: 'd1' });
  t.is(w.acked, 1, 'the device cursor survived');
  const a2 = await node.client();
  await a2.login({ token: await token('dur-a'), device: 'd2' });
  const timeline = await readAll(b2);
  t.deepEqual(timeline.map((e) => e.seq), Array.from({ length: timeline.length }, (_, i) => i + 1), 'seqs 1..n');
  t.is(new Set(timeline.map((e) => e.mid)).size, timeline.length, 'no mid twice');
  const byMid = new Map(timeline.map((e) => [e.mid, e]));
  const aliceTimeline = await readAll(a2);
  const aliceBySeq = new Map(aliceTimeline.map((e) => [e.seq, e]));
  let missing = 0;
  for (const s of confirmed.values()) {
    if (!byMid.has(s.mid)) missing++;
    t.is(aliceBySeq.get(s.seq)?.mid, s.mid, 'the sender entry has the seq it was given');
  }
  t.is(missing, 0, `all ${confirmed.size} confirmed messages are in the recipient's timeline`);
  t.true(timeline.length >= confirmed.size + 1);

  // Re-send everything with the same cids: confirmed ones come back dup with the same mid and seq;
  // unconfirmed ones are stored at most once.
  const resent = await Promise.all(cids.slice(0, 800).map((cid) => a2.send('dur-b', cid, `body ${cid.slice(1)}`).then((r) => [cid, r] as const)));
  for (const [cid, r] of resent) {
    const before = confirmed.get(cid);
    if (before) t.like(r, { dup: true, mid: before.mid, seq: before.seq });
  }
  const after = await readAll(b2);
  t.is(new Set(after.map((e) => e.body)).size, after.length, 'each body (cid) exactly once');
  t.deepEqual(after.map((e) => e.seq), Array.from({ length: after.length }, (_, i) => i + 1));
  t.true(after.every((e, i) => i === 0 || e.mid > after[i - 1]!.mid), 'mids grow with seq');
});
