// Validation of peer frames for groups: peer input is checked like client input.
import test from 'ava';
import { packPage, parsePeerReply, parsePeerRequest, PeerFrameError, validatePage } from '../../src/protocol/peer.ts';

const MAX = 16384;
const msg = { mid: 'M1', conv: 'g:g1', from: 'alice', group: 'g1', body: 'hi', ts: 1 };

test('fanout items: a group message with member ids and an optional cid', (t) => {
  const r = parsePeerRequest({ t: 'fanout', rv: 'v', items: [{ ...msg, users: ['bob', 'carol'], cid: 'c1' }] }, MAX);
  t.deepEqual(r, { t: 'fanout', rv: 'v', items: [{ ...msg, users: ['bob', 'carol'], cid: 'c1' }] });
  const bad = (items: unknown[]) => t.throws(() => parsePeerRequest({ t: 'fanout', rv: 'v', items }, MAX), { instanceOf: PeerFrameError });
  bad([{ ...msg, users: ['no spaces'] }]);
  bad([{ ...msg, conv: 'dm:a:b', users: ['bob'] }]);
  bad([{ ...msg, group: 'g2', users: ['bob'] }]);
  bad([{ ...msg, body: 'x'.repeat(MAX + 1), users: ['bob'] }]);
  bad([{ ...msg, users: ['bob'], cid: 'a b' }]);
  bad([{ ...msg }]);
});

test('relay carries only typing or receipt frames, with ids and a conversation', (t) => {
  t.deepEqual(parsePeerRequest({ t: 'relay', users: ['bob'], frame: { op: 'typing', from: 'alice', conv: 'dm:alice:bob', extra: 1 } }, MAX),
    { t: 'relay', users: ['bob'], frame: { op: 'typing', from: 'alice', conv: 'dm:alice:bob' } });
  t.like(parsePeerRequest({ t: 'relay', users: ['bob'], frame: { op: 'receipt', conv: 'g:g1', by: 'carol', mid: 'M1' } }, MAX), { frame: { by: 'carol' } });
  for (const frame of [{ op: 'msg', seq: 1 }, { op: 'typing', from: 'alice', conv: 'dm:bob:alice' }, { op: 'receipt', conv: 'g:g1', by: 'c' }, { op: 'goaway' }]) {
    t.throws(() => parsePeerRequest({ t: 'relay', users: ['bob'], frame }, MAX), { instanceOf: PeerFrameError }, JSON.stringify(frame));
  }
});

test('group calls: keys g:<group>, known ops, posts with bodies in the limit', (t) => {
  const call = (c: unknown, key = 'g:g1') => parsePeerRequest({ t: 'call', key, rv: 'v', hops: 0, call: c }, MAX);
  t.like(call({ fn: 'group', op: 'add', group: 'g1', actor: 'alice', members: ['bob'] }), { key: 'g:g1', call: { fn: 'group', op: 'add' } });
  t.like(call({ fn: 'gpost', group: 'g1', posts: [{ from: 'alice', cid: 'c1', mid: 'M1', body: 'hi', ts: 1 }] }), { call: { fn: 'gpost' } });
  t.like(call({ fn: 'gcast', group: 'g1', from: 'alice', frame: { kind: 'receipt', mid: 'M1' } }), { call: { frame: { kind: 'receipt', mid: 'M1' } } });
  t.like(call({ fn: 'gsend', from: 'alice', group: 'g1', cid: 'c1', body: 'hi' }, 'alice'), { call: { fn: 'gsend' } });
  const bad = (c: unknown, key?: string) => t.throws(() => call(c, key), { instanceOf: PeerFrameError }, JSON.stringify(c));
  bad({ fn: 'group', op: 'explode', group: 'g1', actor: 'alice', members: [] });
  bad({ fn: 'group', op: 'add', group: 'g1', actor: 'alice', members: ['a b'] });
  bad({ fn: 'gpost', group: 'g1', posts: [{ from: 'alice', cid: 'c1', mid: 'M1', body: 'x'.repeat(MAX + 1), ts: 1 }] });
  bad({ fn: 'gcast', group: 'g1', from: 'alice', frame: { kind: 'shout' } });
  bad({ fn: 'unread', user: 'alice' }, 'g:bad key');
  t.throws(() => parsePeerRequest({ t: 'readmarks', conv: 'g:', users: ['a'] }, MAX), { instanceOf: PeerFrameError });
});

test('pages carry group logs: g: keys, e: event entries with long member lists', (t) => {
  const members = Array.from({ length: 2000 }, (_, i) => `member-number-${i}`);
  const body = JSON.stringify({ op: 'add', members });
  t.true(body.length > MAX);
  const page = validatePage({
    users: [{ user: 'g:g1', seq: 2, convs: [], cursors: [{ device: 'fanout', acked: 1 }] }],
    entries: [
      { user: 'g:g1', seq: 1, mid: 'M1', conv: 'g:g1', from: 'alice', group: 'g1', body, ts: 1, dkey: 'e:M1', ocum: 0 },
      { user: 'g:g1', seq: 2, mid: 'M2', conv: 'g:g1', from: 'alice', group: 'g1', body: 'hi', ts: 2, dkey: `c:alice:${'c'.repeat(64)}`, ocum: 0 },
    ],
  }, MAX);
  t.is(page.entries.length, 2);
  t.throws(() => validatePage({ users: [], entries: [{ user: 'g:g1', seq: 1, mid: 'M', conv: 'g:g1', from: 'a', body: 'x'.repeat(MAX + 1), ts: 1, dkey: 'c:a:c', ocum: 0 }] }, MAX),
    { instanceOf: PeerFrameError }, 'a message body keeps its limit');
  t.throws(() => validatePage({ users: [{ user: 'g:', seq: 1, convs: [], cursors: [] }], entries: [] }, MAX), { instanceOf: PeerFrameError });
  t.throws(() => validatePage({ users: [], entries: [{ user: 'a', seq: 1, mid: 'M', conv: 'g:g1', from: 'a', body: '', ts: 1, dkey: 'x:1', ocum: 0 }] }, MAX), { instanceOf: PeerFrameError });
});

test('fail replies carry the new client codes, and nothing else', (t) => {
  for (const code of ['not_found', 'conflict', 'too_large']) t.like(parsePeerReply({ t: 'fail', code, message: 'm' }), { code });
  t.throws(() => parsePeerReply({ t: 'fail', code: 'teapot', message: 'm' }), { instanceOf: PeerFrameError });
});

test('packed pages: the copies of one message travel once and unpack to the same entries', (t) => {
  const copy = (user: string, seq: number) => ({ user, seq, mid: 'M1', conv: 'g:g1', from: 'alice', group: 'g1', body: 'x'.repeat(500), ts: 1, dkey: 'm:M1', ocum: seq });
  const page = { users: [], entries: [copy('bob', 3), { ...copy('alice', 9), mid: 'M0', dkey: 'c:c0' }, copy('carol', 4), copy('dave', 5)] };
  const wire = packPage(page);
  t.is(wire.entries.length, 1);
  t.is(wire.copies?.[0]?.rows.length, 3);
  t.true(JSON.stringify(wire).length < JSON.stringify(page).length * 0.6, "two bodies instead of four");
  const back = validatePage(JSON.parse(JSON.stringify(wire)), MAX);
  const key = (e: { user: string; seq: number }) => `${e.user}:${e.seq}`;
  t.deepEqual([...back.entries].sort((a, b) => key(a).localeCompare(key(b))), [...page.entries].sort((a, b) => key(a).localeCompare(key(b))));
  t.is(packPage({ users: [], entries: [copy('bob', 1)] }).copies, undefined, 'nothing to pack');
  t.throws(() => validatePage({ ...wire, copies: [{ msg: wire.copies![0]!.msg, rows: [['a b', 1, 'm:M1', 0]] }] }, MAX), { instanceOf: PeerFrameError });
  t.throws(() => validatePage({ ...wire, copies: [{ msg: { ...wire.copies![0]!.msg, body: 'x'.repeat(MAX + 1) }, rows: [['bob', 1, 'm:M1', 0]] }] }, MAX), { instanceOf: PeerFrameError });
});

test('a send call\'s lane mark is kept when well formed and refused otherwise; a call without one is as before', (t) => {
  const call = { fn: 'send', from: 'alice', to: 'bob', cid: 'c1', body: 'hi' };
  const req = (c: object) => ({ t: 'call', key: 'alice', rv: 'v', hops: 0, call: c });
  t.deepEqual(parsePeerRequest(req({ ...call, at: { lane: 'x1', epoch: 3, extra: 1 } }), MAX), req({ ...call, at: { lane: 'x1', epoch: 3 } }));
  t.deepEqual(parsePeerRequest(req({ ...call, at: { lane: 'x1', epoch: 3, n: 8, after: 7 } }), MAX), req({ ...call, at: { lane: 'x1', epoch: 3, n: 8, after: 7 } }));
  t.deepEqual(parsePeerRequest(req({ ...call, at: { lane: 'x1', epoch: 3, n: 8 } }), MAX), req({ ...call, at: { lane: 'x1', epoch: 3, n: 8 } }));
  t.deepEqual(parsePeerRequest(req(call), MAX), req(call));
  const bad = [null, 'x', { lane: 'x' }, { lane: 1, epoch: 0 }, { lane: 'x', epoch: -1 }, { lane: 'x', epoch: 1.5 }, { lane: 'x'.repeat(65), epoch: 0 },
    { lane: 'x', epoch: 0, n: -1 }, { lane: 'x', epoch: 0, n: '2' }, { lane: 'x', epoch: 0, after: 1 }, { lane: 'x', epoch: 0, n: 2, after: 2 }, { lane: 'x', epoch: 0, n: 2, after: 0.5 }];
  for (const at of bad) {
    t.throws(() => parsePeerRequest(req({ ...call, at }), MAX), { instanceOf: PeerFrameError }, JSON.stringify(at));
  }
});

test('an admit call\'s epoch is kept when a whole number and refused otherwise; one without it is as before', (t) => {
  const call = { fn: 'admit', user: 'bob', from: 'alice', kind: 'request' };
  const req = (c: object) => ({ t: 'call', key: 'bob', rv: 'v', hops: 0, call: c });
  t.deepEqual(parsePeerRequest(req({ ...call, epoch: 4 }), MAX), req({ ...call, epoch: 4 }));
  t.deepEqual(parsePeerRequest(req(call), MAX), req(call));
  for (const epoch of [null, '4', -1, 1.5, {}]) {
    t.throws(() => parsePeerRequest(req({ ...call, epoch }), MAX), { instanceOf: PeerFrameError }, JSON.stringify(epoch));
  }
});

test('a holding request names at most 10,000 valid user keys', (t) => {
  t.deepEqual(parsePeerRequest({ t: 'holding', users: ['u1', 's:g1'] }, MAX), { t: 'holding', users: ['u1', 's:g1'] });
  for (const users of [undefined, null, 'u1', [7], [''], Array.from({ length: 10_001 }, (_, i) => `u${i}`)]) {
    t.throws(() => parsePeerRequest({ t: 'holding', users }, MAX), { instanceOf: PeerFrameError }, JSON.stringify(users)?.slice(0, 40));
  }
});

test('a handoff\'s prove list is kept when well formed and refused otherwise', (t) => {
  const req = { t: 'handoff', target: 'n4', members: ['n1', 'n4'], from: '', to: null, after: {}, freeze: false, limit: 1 };
  t.deepEqual(parsePeerRequest({ ...req, prove: [['u1', 3, 'abc']] }, MAX), { ...req, prove: [['u1', 3, 'abc']] });
  t.deepEqual(parsePeerRequest(req, MAX), req);
  for (const prove of [null, 'x', [['u1', 3]], [['u1', -1, 'a']], [['u1', 1, 'a'.repeat(65)]], [[7, 1, 'a']], Array.from({ length: 10_001 }, () => ['u1', 1, 'a'])]) {
    t.throws(() => parsePeerRequest({ ...req, prove }, MAX), { instanceOf: PeerFrameError }, JSON.stringify(prove).slice(0, 40));
  }
});
