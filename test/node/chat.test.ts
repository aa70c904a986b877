// Sending, pushing, dedup, order, sync, history, ack and replay against one real node process.
import test from 'ava';
import { cleanup, startNode, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import type { MsgEvent } from '../../src/protocol/frames.ts';

let node: TestNode;
test.before(async () => {
  node = await startNode();
});
test.after.always(cleanup);

test('a message reaches the recipient and the sender, with sent after both are stored', async (t) => {
  const { c: alice } = await node.login('alice1');
  const { c: bob } = await node.login('bob1');
  const got = bob.waitFor<MsgEvent>((f) => f.op === 'msg');
  const echo = alice.waitFor<MsgEvent>((f) => f.op === 'msg');
  const sent = await alice.send('bob1', 'c1', 'hi bob');
  t.is(sent.op, 'sent');
  t.is(sent.seq, 1);
  t.falsy(sent.dup);
  const m = await got;
  t.like(m, { op: 'msg', seq: 1, mid: sent.mid, conv: 'dm:alice1:bob1', from: 'alice1', to: 'bob1', body: 'hi bob', ts: sent.ts });
  t.like(await echo, { seq: 1, mid: sent.mid });
  const s = await bob.sync(0);
  t.is(s.msgs.length, 1);
  t.like(s.msgs[0], { mid: sent.mid, seq: 1 });
});
