// The SDK's outbox (src/client/outbox.ts) alone, with a fake connection: the window, the order of
// sends across a refusal that is retried, resends with the same cid after a lost connection, and
// refusals that end a send.
import test from 'ava';
import { Outbox } from '../../src/client/outbox.ts';
import { ConnectionClosedError, ImError } from '../../src/client/connection.ts';
import type { Connection } from '../../src/client/connection.ts';
import type { PendingSend } from '../../src/client/types.ts';
import type { SentReply } from '../../src/protocol/frames.ts';

type Wire = { cid: string; resolve(r: SentReply): void; reject(e: Error): void };

/** A connection that records the sends put on it and lets the test answer them. */
function fakeConnection() {
  const wire: Wire[] = [];
  const conn = {
    open: true,
    request: (f: { cid: string }) => new Promise<SentReply>((resolve, reject) => wire.push({ cid: f.cid, resolve, reject })),
    abort() {
      conn.open = false;
      for (const w of wire.splice(0)) w.reject(new ConnectionClosedError(1006));
    },
  };
  return { conn, wire };
}

function setup(window = 2) {
  let { conn, wire } = fakeConnection();
  const states: string[] = [];
  const events: PendingSend[] = [];
  const box = new Outbox({ window, maxOutbox: 5, requestTimeoutMs: 1000 }, {
    connection: () => conn as unknown as Connection,
    changed: (p: PendingSend) => {
      states.push(`${p.cid}:${p.state}`);
      events.push(p);
    },
    backoff: () => 0,
    wrote: () => undefined,
  });
  const reconnect = () => {
    ({ conn, wire } = fakeConnection());
    box.lost();
    box.pump();
    return wire;
  };
  return { box, get wire() { return wire; }, states, events, reconnect, drop: () => conn.abort() };
}
const send = (box: Outbox, cid: string) => box.add({ cid, to: 'bob', body: cid, state: 'queued', attempts: 0 });
const sent = (seq: number): SentReply => ({ op: 'sent', mid: `m${seq}`, seq, ts: 1 });
const tick = () => new Promise((r) => setTimeout(r, 5));

test('at most window sends are on the wire; the next goes when one is confirmed', async (t) => {
  const s = setup(2);
  const replies = ['a', 'b', 'c'].map((c) => send(s.box, c));
  t.deepEqual(s.wire.map((w) => w.cid), ['a', 'b']);
  s.wire[0]!.resolve(sent(1));
  await tick();
  t.deepEqual(s.wire.map((w) => w.cid), ['a', 'b', 'c']);
  s.wire[1]!.resolve(sent(2));
  s.wire[2]!.resolve(sent(3));
  t.deepEqual((await Promise.all(replies)).map((r) => r.seq), [1, 2, 3]);
  t.deepEqual(s.box.pending, []);
});

test('a lost connection resends everything unconfirmed, in order, with the same cids', async (t) => {
  const s = setup(3);
  const replies = ['a', 'b', 'c', 'd'].map((c) => send(s.box, c));
  s.wire[0]!.resolve(sent(1));
  await tick();
  s.drop();
  await tick();
  const again = s.reconnect();
  t.deepEqual(again.map((w) => w.cid), ['b', 'c', 'd']);
  again.forEach((w, i) => w.resolve(sent(i + 2)));
  t.deepEqual((await Promise.all(replies)).map((r) => r.seq), [1, 2, 3, 4]);
  t.true(s.states.includes('b:resending'));
});

test('a retryable refusal holds the later sends until it goes again; a final one rejects', async (t) => {
  const s = setup(1);
  const a = send(s.box, 'a');
  const b = send(s.box, 'b');
  s.wire[0]!.reject(new ImError('unavailable', 'owner down'));
  while (s.wire.length < 2) await tick(); // after its retry delay
  await tick();
  t.deepEqual(s.wire.map((w) => w.cid), ['a', 'a'], 'a again before b');
  s.wire[1]!.resolve(sent(1));
  await tick();
  t.deepEqual(s.wire.map((w) => w.cid), ['a', 'a', 'b']);
  s.wire[2]!.reject(new ImError('forbidden', 'blocked'));
  t.is((await a).seq, 1);
  await t.throwsAsync(b, { message: /forbidden/ });
  t.true(s.states.includes('b:failed'));
});

test('a retryable refusal is the send\'s error while it waits, once per refusal; a lost connection is none', async (t) => {
  const s = setup(1);
  const a = send(s.box, 'a');
  s.wire[0]!.reject(new ImError('unavailable', 'owner down'));
  while (s.wire.length < 2) await tick();
  s.drop(); // the second attempt's connection goes: no refusal to report
  await tick();
  s.reconnect()[0]!.resolve(sent(1));
  await a;
  const seen = s.events.map((p) => `${p.state}/${p.attempts}${p.error ? `/${p.error.code}` : ''}`);
  t.deepEqual(seen, ['queued/0', 'sending/1', 'resending/1/unavailable', 'resending/2', 'resending/2', 'resending/3', 'sent/3']);
});

test('the outbox is bounded: past maxOutbox a send is refused at once', async (t) => {
  const s = setup(1);
  const waiting = Array.from({ length: 5 }, (_, i) => send(s.box, `c${i}`));
  await t.throwsAsync(send(s.box, 'one-too-many'), { message: /rate_limited/ });
  s.box.fail(new Error('session closed'));
  for (const w of waiting) await t.throwsAsync(w, { message: /session closed/ });
});
