// Bad input gets a clear error and changes nothing: never a crash, never a disturbed neighbour.
import test from 'ava';
import WebSocket from 'ws';
import { once } from 'node:events';
import { cleanup, startNode, token, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import type { ImClient } from '../../src/client/client.ts';
import type { ErrorReply, ServerFrame } from '../../src/protocol/frames.ts';

let node: TestNode;
let bad: ImClient;
let bystander: ImClient;
let friend: ImClient;
test.before(async () => {
  node = await startNode({ args: ['--max-frame', '8192', '--max-body', '1024'] });
  bad = (await node.login('mallory')).c;
  bystander = (await node.login('bystander')).c;
  friend = (await node.login('friend')).c;
});
test.after.always(cleanup);

/** Sends raw text and returns the error reply it got (the next error frame). */
async function errorFor(raw: string | Buffer, c: ImClient = bad): Promise<ErrorReply> {
  const e = c.waitFor<ErrorReply>((f) => f.op === 'error');
  c.ws.send(raw);
  return e;
}

test.serial('non-JSON, non-object, binary, missing and unknown op are bad_request, id null', async (t) => {
  for (const raw of ['not json', '{"op":', '[1,2]', '42', '"str"', 'null', 'true', '{}', '{"op":7}', '{"op":"launch_missiles"}']) {
    const e = await errorFor(raw);
    t.is(e.code, 'bad_request', raw);
    t.is(e.id, null, raw);
    t.true(e.message.length > 0);
  }
  const e = await errorFor(Buffer.from([1, 2, 3]));
  t.like(e, { code: 'bad_request', id: null });
});

test.serial('an unknown op with an id gets its id back', async (t) => {
  t.like(await errorFor('{"op":"nope","id":"x1"}'), { code: 'bad_request', id: 'x1' });
  t.like(await errorFor('{"op":"nope","id":99}'), { code: 'bad_request', id: 99 });
  t.like(await errorFor('{"op":"ping","id":{"a":1}}'), { code: 'bad_request', id: null });
  t.like(await errorFor(JSON.stringify({ op: 'ping', id: 'x'.repeat(65) })), { code: 'bad_request', id: null });
});

const invalid: Record<string, unknown>[] = [
  { op: 'send', cid: 'c', body: 'b' },                              // no target
  { op: 'send', to: 'bob', group: 'g', cid: 'c', body: 'b' },       // both targets
  { op: 'send', to: 'bob', body: 'b' },                             // no cid
  { op: 'send', to: 'bob', cid: 'c' },                              // no body
  { op: 'send', to: 'bob', cid: 'c', body: 5 },
  { op: 'send', to: 'bo b', cid: 'c', body: 'b' },                  // bad id chars
  { op: 'send', to: 'x'.repeat(65), cid: 'c', body: 'b' },          // id too long
  { op: 'send', to: '', cid: 'c', body: 'b' },
  { op: 'send', to: 'bob', cid: 'c/1', body: 'b' },
  { op: 'send', to: ['bob'], cid: 'c', body: 'b' },
  { op: 'ack' }, { op: 'ack', seq: -1 }, { op: 'ack', seq: 1.5 }, { op: 'ack', seq: '3' },
  { op: 'sync', after: -1 }, { op: 'sync', limit: 0 }, { op: 'sync', limit: 'x' },
  { op: 'history' }, { op: 'history', conv: 'dm:b:a' }, { op: 'history', conv: 'dm:a' }, { op: 'history', conv: 'x:a:b' },
  { op: 'history', conv: 'g:' }, { op: 'history', conv: 'dm:a:b', before: -2 },
  { op: 'read', conv: 'dm:a:b' }, { op: 'read', seq: 3 }, { op: 'read', conv: 5, seq: 3 },
  { op: 'presence' }, { op: 'presence', users: 'bob' }, { op: 'presence', users: ['ok', 'not ok'] },
  { op: 'watch', users: [1] }, { op: 'unwatch' },
  { op: 'login', token: 5 }, { op: 'login' },
  { op: 'typing' }, { op: 'receipts' }, { op: 'group_create', members: [] }, { op: 'group_info' },
];

test.serial('missing and invalid fields of every op are bad_request with the id', async (t) => {
  let i = 0;
  for (const f of invalid) {
    const id = `v${++i}`;
    const e = await errorFor(JSON.stringify({ ...f, id }));
    t.is(e.code, 'bad_request', JSON.stringify(f));
    t.is(e.id, id);
  }
});

test.serial('a body over the limit is too_large and nothing is stored', async (t) => {
  const before = (await friend.sync(0)).msgs.length;
  const e = await errorFor(JSON.stringify({ op: 'send', id: 1, to: 'friend', cid: 'big', body: 'é'.repeat(600) }));
  t.like(e, { code: 'too_large', id: 1 });
  t.is((await friend.sync(0)).msgs.length, before);
  const ok = await bad.send('friend', 'small', 'x'.repeat(1024));
  t.is(ok.op, 'sent');
});

test.serial('more than 500 users in presence, watch or unwatch is too_large', async (t) => {
  const users = Array.from({ length: 501 }, (_, i) => `u${i}`);
  for (const op of ['presence', 'watch', 'unwatch']) {
    t.like(await errorFor(JSON.stringify({ op, id: op, users })), { code: 'too_large', id: op });
  }
  const p = await bad.presence(users.slice(0, 500));
  t.is(Object.keys(p.users).length, 500);
});

test.serial('history of a conversation the user is not part of is forbidden', async (t) => {
  t.like(await errorFor(JSON.stringify({ op: 'history', id: 'h', conv: 'dm:alice:bob' })), { code: 'forbidden', id: 'h' });
  t.like(await errorFor(JSON.stringify({ op: 'read', id: 'r', conv: 'dm:alice:bob', seq: 1 })), { code: 'forbidden', id: 'r' });
});

test.serial('after all that the bad client and its neighbours still work', async (t) => {
  t.is(bad.closed, undefined);
  const got = friend.waitFor((f) => f.op === 'msg' && f.from === 'bystander');
  await bystander.send('friend', 'fine-1', 'still fine');
  t.like(await got, { body: 'still fine' });
  t.like(await bad.request({ op: 'ping' }), { op: 'pong' });
});

test('a frame over the limit closes that connection with 1009, and only that one', async (t) => {
  const { c } = await node.login('big-framer');
  c.post({ op: 'send', to: 'friend', cid: 'huge', body: 'x'.repeat(9000) });
  const { code } = await c.closedWith();
  t.is(code, 1009);
  t.like(await bystander.request({ op: 'ping' }), { op: 'pong' });
  t.is((await friend.sync(0)).msgs.filter((m) => m.body.length > 8000).length, 0);
});

test('a raw WebSocket to another path is refused; the node keeps serving', async (t) => {
  const ws = new WebSocket(node.url.replace('/ws', '/other'));
  const [err] = (await once(ws, 'error')) as [Error];
  t.regex(err.message, /404/);
  t.like(await bystander.request({ op: 'ping' }), { op: 'pong' });
});

test('every frame counts against the rate limit: past it frames are dropped with one rate_limited a second; others are not limited', async (t) => {
  const n = await startNode({ name: 'rl', args: ['--rate', '5', '--rate-burst', '5'] });
  const c = await n.client();
  await c.login({ token: await token('spammer') });
  const replies: ServerFrame[] = [];
  c.on('frame', (f) => replies.push(f));
  // A burst of 12 sends and 10 frames that are not JSON objects, all within a few ms: the
  // remaining 4 tokens of the burst go to the first 4 sends, the rest are dropped.
  for (let i = 0; i < 12; i++) c.post({ op: 'send', id: `s${i}`, to: 'spammer', cid: `r${i}`, body: 'x' });
  for (let i = 0; i < 10; i++) c.post('not json' as unknown as Record<string, unknown>);
  await until(() => replies.filter((f) => f.op === 'sent').length >= 4, 'the sends within the burst to be answered');
  const limited = await c.waitFor<ErrorReply>((f) => f.op === 'error' && f.code === 'rate_limited').catch(() => replies.find((f) => f.op === 'error' && (f as ErrorReply).code === 'rate_limited') as ErrorReply);
  t.truthy(limited, 'a rate_limited error came');
  t.regex(limited.message, /retry in \d+ ms/);
  t.is(limited.id, null);
  const sent = replies.filter((f) => f.op === 'sent').length;
  t.is(sent, 4, 'the sends past the limit were dropped, not served');
  t.is(replies.filter((f) => f.op === 'error' && (f as ErrorReply).code === 'rate_limited').length, 1, 'one rate_limited error for the whole second');
  t.is(replies.filter((f) => f.op === 'error' && (f as ErrorReply).code === 'bad_request').length, 0, 'the junk frames were dropped before parsing');
  // another device of the same user has its own bucket: exactly the accepted sends were stored
  const other = await n.client();
  await other.login({ token: await token('spammer'), device: 'second' });
  t.is((await other.sync(0)).msgs.length, sent);
  t.is(c.closed, undefined, 'the connection stays open');
});

test('a connection that stays over its rate limit for 10 s is closed with 1008', async (t) => {
  const n = await startNode({ name: 'rl2', args: ['--rate', '5', '--rate-burst', '5'] });
  const c = await n.client();
  await c.login({ token: await token('flooder') });
  const t0 = Date.now();
  const timer = setInterval(() => {
    if (!c.closed) c.post({ op: 'ping' });
  }, 40);
  t.teardown(() => clearInterval(timer));
  const { code } = await c.closedWith(20_000);
  clearInterval(timer);
  t.is(code, 1008);
  t.true(Date.now() - t0 >= 10_000, 'not before 10 s over the limit');
  t.regex((await n.get('/metrics')).text, /im_limits_hit_total\{[^}]*limit="rate_close"[^}]*\} 1/);
});
