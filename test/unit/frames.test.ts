// Request validation (parseRequest / validateRequest) for all 18 ops, request ids, limits, and isId / parseConv / dmConv.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  DEFAULT_LIMIT, DEFAULT_VALIDATE_LIMITS, FrameError, MAX_LIMIT, dmConv, isId, parseConv, parseRequest, validateRequest,
} from '../../src/protocol/frames.ts';
import type { ErrorCode, ReqId, ValidateLimits } from '../../src/protocol/frames.ts';

type Frame = Record<string, unknown>;

// JSON cannot spell Infinity; this marker becomes the literal 1e400 (parsed back as Infinity).
const INF = '__INFINITY__';
const text = (f: Frame): string => JSON.stringify(f).replaceAll(`"${INF}"`, '1e400');

function fails(t: ExecutionContext, raw: string, code: ErrorCode, id: ReqId | null, limits?: ValidateLimits): void {
  const e = t.throws(() => parseRequest(raw, limits), { instanceOf: FrameError }, `expected ${code} for ${raw.slice(0, 120)}`);
  t.is(e?.code, code, raw.slice(0, 120));
  t.is(e?.id, id, raw.slice(0, 120));
  t.is(e?.name, 'FrameError');
  t.true(typeof e?.message === 'string' && e.message.length > 0);
}

const ids64 = 'x'.repeat(64);
const ids65 = 'x'.repeat(65);
const BAD_IDS: unknown[] = ['', ids65, 'a b', 'a:b', 'a/b', 'é', '日本', '😀', 'a\n', 5, null, true, ['a'], {}];
const BAD_SEQS: unknown[] = [-1, 1.5, '3', null, true, [], {}, 'NaN', INF, 2 ** 53];
const users = (n: number): string[] => Array.from({ length: n }, (_, i) => `u${i}`);

// ---- per-op tables: valid frames with their parsed form, invalid frames with their code ----
type Valid = [Frame, Frame];
type Invalid = [Frame, ErrorCode];

const cases: Record<string, { valid: Valid[]; invalid: Invalid[] }> = {
  login: {
    valid: [
      [{ op: 'login', id: 1, token: 'aaa.bbb.ccc', device: 'phone' }, { op: 'login', id: 1, token: 'aaa.bbb.ccc', device: 'phone' }],
      [{ op: 'login', user: 'alice' }, { op: 'login', user: 'alice' }],
      [{ op: 'login', id: 'l1', user: 'alice', device: 'd.1', since: 0 }, { op: 'login', id: 'l1', user: 'alice', device: 'd.1', since: 0 }],
      [{ op: 'login', token: 't', user: 'bob', since: 42 }, { op: 'login', token: 't', user: 'bob', since: 42 }],
    ],
    invalid: [
      [{ op: 'login' }, 'bad_request'],
      [{ op: 'login', device: 'phone' }, 'bad_request'],
      [{ op: 'login', token: '' }, 'bad_request'],
      [{ op: 'login', token: 5 }, 'bad_request'],
      [{ op: 'login', token: null }, 'bad_request'],
      [{ op: 'login', token: ['t'] }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op: 'login', user: v }, 'bad_request']),
      ...BAD_IDS.map((v): Invalid => [{ op: 'login', user: 'alice', device: v }, 'bad_request']),
      ...BAD_SEQS.map((v): Invalid => [{ op: 'login', user: 'alice', since: v }, 'bad_request']),
    ],
  },
  ping: {
    valid: [
      [{ op: 'ping' }, { op: 'ping' }],
      [{ op: 'ping', id: 7 }, { op: 'ping', id: 7 }],
      [{ op: 'ping', id: 'p', extra: { x: 1 } }, { op: 'ping', id: 'p' }],
    ],
    invalid: [],
  },
  send: {
    valid: [
      [{ op: 'send', id: 2, to: 'bob', cid: 'c-0001', body: 'hi' }, { op: 'send', id: 2, to: 'bob', cid: 'c-0001', body: 'hi' }],
      [{ op: 'send', id: 2, group: 'g1', cid: 'c-0002', body: 'hi all' }, { op: 'send', id: 2, group: 'g1', cid: 'c-0002', body: 'hi all' }],
      [{ op: 'send', to: 'alice', cid: ids64, body: '' }, { op: 'send', to: 'alice', cid: ids64, body: '' }],
    ],
    invalid: [
      [{ op: 'send', cid: 'c1', body: 'x' }, 'bad_request'],
      [{ op: 'send', to: 'bob', group: 'g1', cid: 'c1', body: 'x' }, 'bad_request'],
      [{ op: 'send', to: null, group: 'g1', cid: 'c1', body: 'x' }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op: 'send', to: v, cid: 'c1', body: 'x' }, 'bad_request']),
      ...BAD_IDS.map((v): Invalid => [{ op: 'send', group: v, cid: 'c1', body: 'x' }, 'bad_request']),
      [{ op: 'send', to: 'bob', body: 'x' }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op: 'send', to: 'bob', cid: v, body: 'x' }, 'bad_request']),
      [{ op: 'send', to: 'bob', cid: 'c1' }, 'bad_request'],
      [{ op: 'send', to: 'bob', cid: 'c1', body: 5 }, 'bad_request'],
      [{ op: 'send', to: 'bob', cid: 'c1', body: null }, 'bad_request'],
      [{ op: 'send', to: 'bob', cid: 'c1', body: ['hi'] }, 'bad_request'],
      [{ op: 'send', to: 'bob', cid: 'c1', body: 'x'.repeat(16385) }, 'too_large'],
    ],
  },
  ack: {
    valid: [
      [{ op: 'ack', seq: 43 }, { op: 'ack', seq: 43 }],
      [{ op: 'ack', id: 'a', seq: 0 }, { op: 'ack', id: 'a', seq: 0 }],
      [{ op: 'ack', seq: Number.MAX_SAFE_INTEGER }, { op: 'ack', seq: Number.MAX_SAFE_INTEGER }],
    ],
    invalid: [
      [{ op: 'ack' }, 'bad_request'],
      ...BAD_SEQS.map((v): Invalid => [{ op: 'ack', seq: v }, 'bad_request']),
    ],
  },
  sync: {
    valid: [
      [{ op: 'sync' }, { op: 'sync', after: 0, limit: DEFAULT_LIMIT }],
      [{ op: 'sync', id: 3, after: 40, limit: 200 }, { op: 'sync', id: 3, after: 40, limit: 200 }],
      [{ op: 'sync', after: 5 }, { op: 'sync', after: 5, limit: 100 }],
      [{ op: 'sync', limit: 1 }, { op: 'sync', after: 0, limit: 1 }],
      [{ op: 'sync', limit: 1000 }, { op: 'sync', after: 0, limit: 1000 }],
      [{ op: 'sync', limit: 1001 }, { op: 'sync', after: 0, limit: 1000 }],
      [{ op: 'sync', limit: 99999 }, { op: 'sync', after: 0, limit: MAX_LIMIT }],
    ],
    invalid: [
      ...BAD_SEQS.map((v): Invalid => [{ op: 'sync', after: v }, 'bad_request']),
      ...[0, -1, 1.5, '10', null, true, INF].map((v): Invalid => [{ op: 'sync', limit: v }, 'bad_request']),
    ],
  },
  history: {
    valid: [
      [{ op: 'history', id: 4, conv: 'dm:alice:bob', before: 43, limit: 50 }, { op: 'history', id: 4, conv: 'dm:alice:bob', before: 43, limit: 50 }],
      [{ op: 'history', conv: 'g:g1' }, { op: 'history', conv: 'g:g1', limit: 100 }],
      [{ op: 'history', conv: 'dm:a:a', before: 0, limit: 5000 }, { op: 'history', conv: 'dm:a:a', before: 0, limit: 1000 }],
    ],
    invalid: [
      [{ op: 'history' }, 'bad_request'],
      ...['dm:bob:alice', 'g:', 'dm:a', 'x:a', 'alice', '', 5, null].map((v): Invalid => [{ op: 'history', conv: v }, 'bad_request']),
      ...BAD_SEQS.map((v): Invalid => [{ op: 'history', conv: 'g:g1', before: v }, 'bad_request']),
      ...[0, -1, 2.5, '50'].map((v): Invalid => [{ op: 'history', conv: 'g:g1', limit: v }, 'bad_request']),
    ],
  },
  read: {
    valid: [
      [{ op: 'read', id: 5, conv: 'dm:alice:bob', seq: 43 }, { op: 'read', id: 5, conv: 'dm:alice:bob', seq: 43 }],
      [{ op: 'read', conv: 'g:g1', seq: 0 }, { op: 'read', conv: 'g:g1', seq: 0 }],
    ],
    invalid: [
      [{ op: 'read', seq: 1 }, 'bad_request'],
      [{ op: 'read', conv: 'g:g1' }, 'bad_request'],
      ...['dm:bob:alice', 'g:a b', 'dm:a:b:c', 7].map((v): Invalid => [{ op: 'read', conv: v, seq: 1 }, 'bad_request']),
      ...BAD_SEQS.map((v): Invalid => [{ op: 'read', conv: 'g:g1', seq: v }, 'bad_request']),
    ],
  },
  unread: {
    valid: [
      [{ op: 'unread' }, { op: 'unread' }],
      [{ op: 'unread', id: 6 }, { op: 'unread', id: 6 }],
    ],
    invalid: [],
  },
  receipts: {
    valid: [
      [{ op: 'receipts', id: 15, conv: 'g:g1' }, { op: 'receipts', id: 15, conv: 'g:g1' }],
      [{ op: 'receipts', conv: 'dm:a:b' }, { op: 'receipts', conv: 'dm:a:b' }],
    ],
    invalid: [
      [{ op: 'receipts' }, 'bad_request'],
      ...['dm:b:a', 'g:', 'G:g1', 'g1', null].map((v): Invalid => [{ op: 'receipts', conv: v }, 'bad_request']),
    ],
  },
  typing: {
    valid: [
      [{ op: 'typing', to: 'bob' }, { op: 'typing', to: 'bob' }],
      [{ op: 'typing', id: 't', group: 'g1' }, { op: 'typing', id: 't', group: 'g1' }],
    ],
    invalid: [
      [{ op: 'typing' }, 'bad_request'],
      [{ op: 'typing', to: 'bob', group: 'g1' }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op: 'typing', to: v }, 'bad_request']),
      ...BAD_IDS.map((v): Invalid => [{ op: 'typing', group: v }, 'bad_request']),
    ],
  },
};

for (const op of ['presence', 'watch', 'unwatch']) {
  cases[op] = {
    valid: [
      [{ op, id: 7, users: ['bob', 'carol'] }, { op, id: 7, users: ['bob', 'carol'] }],
      [{ op, users: [] }, { op, users: [] }],
      [{ op, users: users(500) }, { op, users: users(500) }],
    ],
    invalid: [
      [{ op }, 'bad_request'],
      [{ op, users: 'bob' }, 'bad_request'],
      [{ op, users: null }, 'bad_request'],
      [{ op, users: { bob: true } }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op, users: ['bob', v] }, 'bad_request']),
      [{ op, users: users(501) }, 'too_large'],
    ],
  };
}

for (const op of ['group_create', 'group_add', 'group_remove']) {
  cases[op] = {
    valid: [
      [{ op, id: 10, group: 'g1', members: ['bob', 'carol'] }, { op, id: 10, group: 'g1', members: ['bob', 'carol'] }],
      [{ op, group: ids64, members: users(10000) }, { op, group: ids64, members: users(10000) }],
    ],
    invalid: [
      [{ op, members: ['bob'] }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op, group: v, members: ['bob'] }, 'bad_request']),
      [{ op, group: 'g1' }, 'bad_request'],
      [{ op, group: 'g1', members: 'bob' }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op, group: 'g1', members: [v] }, 'bad_request']),
      [{ op, group: 'g1', members: users(10001) }, 'too_large'],
    ],
  };
}

for (const op of ['group_leave', 'group_info']) {
  cases[op] = {
    valid: [
      [{ op, id: 13, group: 'g1' }, { op, id: 13, group: 'g1' }],
      [{ op, group: 'a.b-c_d@e' }, { op, group: 'a.b-c_d@e' }],
    ],
    invalid: [
      [{ op }, 'bad_request'],
      ...BAD_IDS.map((v): Invalid => [{ op, group: v }, 'bad_request']),
    ],
  };
}

// Section 13: profiles, contacts, status and privacy.
cases.login!.valid.push([{ op: 'login', user: 'alice', roster: true }, { op: 'login', user: 'alice', roster: true }]);
cases.login!.valid.push([{ op: 'login', user: 'alice', roster: false }, { op: 'login', user: 'alice' }]);
cases.login!.invalid.push([{ op: 'login', user: 'alice', roster: 'yes' }, 'bad_request']);
for (const op of ['contact_request', 'contact_accept', 'contact_decline', 'contact_remove', 'follow', 'unfollow', 'block', 'unblock']) {
  cases[op] = {
    valid: [[{ op, id: 3, user: 'bob' }, { op, id: 3, user: 'bob' }]],
    invalid: [[{ op }, 'bad_request'], ...BAD_IDS.map((v): Invalid => [{ op, user: v }, 'bad_request'])],
  };
}
cases.contact_request!.valid.push([{ op: 'contact_request', user: 'bob', text: "hi, it's alice" }, { op: 'contact_request', user: 'bob', text: "hi, it's alice" }]);
cases.contact_request!.invalid.push([{ op: 'contact_request', user: 'bob', text: 'x'.repeat(281) }, 'bad_request'], [{ op: 'contact_request', user: 'bob', text: 5 }, 'bad_request']);
cases.profile_set = {
  valid: [
    [{ op: 'profile_set', id: 1, profile: { name: 'Alice', avatar: 'https://x.example/a.png', text: 'hi there', fields: { city: 'Lyon', age: 30, bot: false } } },
      { op: 'profile_set', id: 1, profile: { name: 'Alice', avatar: 'https://x.example/a.png', text: 'hi there', fields: { city: 'Lyon', age: 30, bot: false } } }],
    [{ op: 'profile_set', profile: {} }, { op: 'profile_set', profile: {} }],
    [{ op: 'profile_set', profile: { avatar: '' } }, { op: 'profile_set', profile: { avatar: '' } }],
  ],
  invalid: [
    [{ op: 'profile_set' }, 'bad_request'],
    [{ op: 'profile_set', profile: [] }, 'bad_request'],
    [{ op: 'profile_set', profile: { name: 'x'.repeat(65) } }, 'bad_request'],
    [{ op: 'profile_set', profile: { text: 'x'.repeat(141) } }, 'bad_request'],
    [{ op: 'profile_set', profile: { avatar: 'javascript:alert(1)' } }, 'bad_request'],
    [{ op: 'profile_set', profile: { avatar: `https://${'x'.repeat(510)}` } }, 'bad_request'],
    [{ op: 'profile_set', profile: { fields: { a: { nested: 1 } } } }, 'bad_request'],
    [{ op: 'profile_set', profile: { fields: { a: null } } }, 'bad_request'],
    [{ op: 'profile_set', profile: { fields: ['x'] } }, 'bad_request'],
    [{ op: 'profile_set', profile: { fields: { big: 'x'.repeat(2100) } } }, 'too_large'],
  ],
};
cases.profiles = {
  valid: [[{ op: 'profiles', id: 2, users: ['bob', 'carol'] }, { op: 'profiles', id: 2, users: ['bob', 'carol'] }]],
  invalid: [[{ op: 'profiles' }, 'bad_request'], [{ op: 'profiles', users: users(501) }, 'too_large'], ...BAD_IDS.map((v): Invalid => [{ op: 'profiles', users: [v] }, 'bad_request'])],
};
cases.contact_lists = {
  valid: [
    [{ op: 'contact_lists', id: 11, user: 'bob', lists: ['work', 'climbing'] }, { op: 'contact_lists', id: 11, user: 'bob', lists: ['work', 'climbing'] }],
    [{ op: 'contact_lists', user: 'bob', lists: ['a', 'a'] }, { op: 'contact_lists', user: 'bob', lists: ['a'] }],
    [{ op: 'contact_lists', user: 'bob', lists: [] }, { op: 'contact_lists', user: 'bob', lists: [] }],
  ],
  invalid: [
    [{ op: 'contact_lists', user: 'bob' }, 'bad_request'],
    [{ op: 'contact_lists', user: 'bob', lists: [''] }, 'bad_request'],
    [{ op: 'contact_lists', user: 'bob', lists: ['x'.repeat(65)] }, 'bad_request'],
    [{ op: 'contact_lists', user: 'bob', lists: Array.from({ length: 33 }, (_, i) => `l${i}`) }, 'too_large'],
  ],
};
cases.contacts = {
  valid: [
    [{ op: 'contacts', id: 12 }, { op: 'contacts', id: 12, limit: 500 }],
    [{ op: 'contacts', after: 'bob', limit: 5000 }, { op: 'contacts', after: 'bob', limit: 1000 }],
    [{ op: 'contacts', after: '' }, { op: 'contacts', limit: 500 }],
  ],
  invalid: [[{ op: 'contacts', after: 5 }, 'bad_request'], [{ op: 'contacts', after: 'a b' }, 'bad_request'], [{ op: 'contacts', limit: 0 }, 'bad_request']],
};
cases.status = {
  valid: [
    [{ op: 'status', id: 13, status: 'busy', text: 'in a meeting' }, { op: 'status', id: 13, status: 'busy', text: 'in a meeting' }],
    [{ op: 'status', status: 'invisible' }, { op: 'status', status: 'invisible' }],
  ],
  invalid: [[{ op: 'status' }, 'bad_request'], [{ op: 'status', status: 'asleep' }, 'bad_request'], [{ op: 'status', status: 'away', text: 'x'.repeat(141) }, 'bad_request']],
};
cases.privacy = {
  valid: [
    [{ op: 'privacy', id: 14, presence: 'contacts', profile: 'nobody', dm: 'contacts' }, { op: 'privacy', id: 14, presence: 'contacts', profile: 'nobody', dm: 'contacts' }],
    [{ op: 'privacy', dm: 'everyone' }, { op: 'privacy', dm: 'everyone' }],
  ],
  invalid: [[{ op: 'privacy', dm: 'nobody' }, 'bad_request'], [{ op: 'privacy', presence: 'friends' }, 'bad_request'], [{ op: 'privacy', profile: true }, 'bad_request']],
};

test('the tables cover exactly the 32 ops of the protocol', (t) => {
  t.deepEqual(Object.keys(cases).sort(), [
    'ack', 'block', 'contact_accept', 'contact_decline', 'contact_lists', 'contact_remove', 'contact_request', 'contacts', 'follow',
    'group_add', 'group_create', 'group_info', 'group_leave', 'group_remove', 'history', 'login', 'ping',
    'presence', 'privacy', 'profile_set', 'profiles', 'read', 'receipts', 'send', 'status', 'sync', 'typing', 'unblock', 'unfollow', 'unread', 'unwatch', 'watch',
  ]);
  t.deepEqual(DEFAULT_VALIDATE_LIMITS, { maxBody: 16384, maxUsers: 500, maxMembers: 10000, maxProfileFields: 2048 });
  t.is(DEFAULT_LIMIT, 100);
  t.is(MAX_LIMIT, 1000);
});

for (const [op, { valid, invalid }] of Object.entries(cases)) {
  test(`${op}: valid frames parse to the typed request`, (t) => {
    t.true(valid.length > 0);
    for (const [frame, expected] of valid) {
      const got = parseRequest(text(frame));
      t.deepEqual(got, expected as unknown, text(frame).slice(0, 120));
      t.is('id' in got, 'id' in expected, 'id is present exactly when given');
      // validateRequest on the already-parsed object agrees.
      t.deepEqual(validateRequest(JSON.parse(text(frame)) as Frame), expected as unknown);
    }
  });

  if (invalid.length > 0) {
    test(`${op}: invalid frames give FrameError carrying the request id`, (t) => {
      for (const [frame, code] of invalid) {
        fails(t, text({ ...frame, id: 'req-9' }), code, 'req-9');
        fails(t, text({ ...frame, id: 9 }), code, 9);
        const { id: _omit, ...noId } = frame;
        fails(t, text(noId), code, null);
      }
    });
  }

  test(`${op}: a frame with an invalid id is bad_request with id null`, (t) => {
    const base = valid[0]![0];
    for (const id of [ids65, null, true, {}, [1]]) fails(t, text({ ...base, id }), 'bad_request', null);
  });
}

// The creator is always a member (docs/PROTOCOL.md, section 6), so a group of just the creator is a real state
// (it is also reached by group_remove / group_leave); creating one must not be refused.
test('group_create with an empty member list creates a group of the creator alone', (t) => {
  t.deepEqual(parseRequest('{"op":"group_create","id":1,"group":"solo","members":[]}'), { op: 'group_create', id: 1, group: 'solo', members: [] });
});

test('group_add and group_remove with an empty member list are bad_request', (t) => {
  for (const op of ['group_add', 'group_remove']) fails(t, JSON.stringify({ op, id: 'e', group: 'g1', members: [] }), 'bad_request', 'e');
});

// ---- frames that are not requests at all ----
test('non-JSON text is bad_request with id null', (t) => {
  for (const raw of ['', ' ', '{', 'hello', "{'op':'ping'}", '{"op":"ping",}', '{"op":"ping","id":1', 'undefined', 'NaN']) {
    fails(t, raw, 'bad_request', null);
  }
});

test('JSON that is not an object is bad_request with id null', (t) => {
  for (const raw of ['[]', '[{"op":"ping","id":1}]', 'null', '42', '0', '"ping"', 'true', 'false']) {
    fails(t, raw, 'bad_request', null);
  }
});

test('a missing or non-string op is bad_request and keeps the id', (t) => {
  fails(t, '{}', 'bad_request', null);
  fails(t, '{"id":5}', 'bad_request', 5);
  fails(t, '{"id":"r1","op":5}', 'bad_request', 'r1');
  fails(t, '{"id":"r1","op":null}', 'bad_request', 'r1');
  fails(t, '{"id":"r1","op":["ping"]}', 'bad_request', 'r1');
  fails(t, '{"id":"r1","Op":"ping"}', 'bad_request', 'r1');
});

test('an unknown op is bad_request and keeps the id', (t) => {
  for (const op of ['nope', 'PING', 'Ping', ' ping', 'ping ', '', 'welcome', 'msg', 'error', 'sent', 'group',
    'constructor', 'toString', '__proto__', 'hasOwnProperty', 'x'.repeat(10000)]) {
    fails(t, JSON.stringify({ op, id: 7 }), 'bad_request', 7);
    fails(t, JSON.stringify({ op, id: 'u' }), 'bad_request', 'u');
    fails(t, JSON.stringify({ op }), 'bad_request', null);
  }
});

test('request ids: numbers and strings of up to 64 characters are kept as given', (t) => {
  for (const id of [0, 1, -3, 1.5, 1e300, Number.MAX_SAFE_INTEGER, '', 'a', 'with space:and/slash é', ids64, '😀'.repeat(32)]) {
    const r = parseRequest(JSON.stringify({ op: 'ping', id }));
    t.deepEqual(r, { op: 'ping', id });
    t.is(r.id, id);
  }
  const r = parseRequest('{"op":"ping"}');
  t.false('id' in r);
});

test('request ids: a string over 64 characters or a non-number non-string is bad_request with id null', (t) => {
  for (const id of [ids65, '😀'.repeat(33), null, true, false, {}, [], [1], { id: 1 }]) {
    fails(t, JSON.stringify({ op: 'ping', id }), 'bad_request', null);
    // An invalid id makes the frame bad even when everything else is bad too: the id is still not echoed.
    fails(t, JSON.stringify({ op: 'nope', id }), 'bad_request', null);
  }
  // Infinity (1e400 in JSON) and NaN are not usable ids.
  fails(t, '{"op":"ping","id":1e400}', 'bad_request', null);
  const e = t.throws(() => validateRequest({ op: 'ping', id: Number.NaN }), { instanceOf: FrameError });
  t.is(e?.code, 'bad_request');
  t.is(e?.id, null);
});

test('validateRequest rejects non-finite seq and limit values that JSON cannot carry', (t) => {
  for (const [o, id] of [
    [{ op: 'ack', id: 1, seq: Number.NaN }, 1],
    [{ op: 'ack', id: 'x', seq: Number.POSITIVE_INFINITY }, 'x'],
    [{ op: 'sync', after: Number.NaN }, null],
    [{ op: 'sync', id: 2, limit: Number.NaN }, 2],
    [{ op: 'sync', limit: Number.POSITIVE_INFINITY }, null],
    [{ op: 'read', conv: 'g:g', seq: Number.NEGATIVE_INFINITY }, null],
    [{ op: 'login', user: 'a', since: Number.NaN }, null],
    [{ op: 'ack', seq: 3n }, null],
  ] as [Frame, ReqId | null][]) {
    const e = t.throws(() => validateRequest(o), { instanceOf: FrameError });
    t.is(e?.code, 'bad_request');
    t.is(e?.id, id);
  }
});

test('fields are not taken from the prototype chain and unknown fields are dropped', (t) => {
  const r = parseRequest('{"op":"send","id":1,"to":"bob","cid":"c","body":"b","__proto__":{"group":"g"},"extra":1}');
  t.deepEqual(r, { op: 'send', id: 1, to: 'bob', cid: 'c', body: 'b' });
});

// ---- the body limit, in UTF-8 bytes ----
const send = (body: string, id: ReqId = 'b'): string => JSON.stringify({ op: 'send', id, to: 'bob', cid: 'c1', body });

test('body: exactly 16384 bytes is accepted, one byte more is too_large (ASCII)', (t) => {
  t.is((parseRequest(send('a'.repeat(16384))) as { body: string }).body.length, 16384);
  fails(t, send('a'.repeat(16385)), 'too_large', 'b');
  fails(t, send('a'.repeat(16385), 3), 'too_large', 3);
});

test('body: the limit counts UTF-8 bytes, not characters', (t) => {
  // é is 2 bytes, € is 3, 😀 is 4 (and 2 UTF-16 code units).
  const cases: [string, string][] = [
    ['é'.repeat(8192), 'é'.repeat(8192) + 'a'],
    ['€'.repeat(5461) + 'a', '€'.repeat(5461) + 'aa'],
    ['😀'.repeat(4096), '😀'.repeat(4096) + 'a'],
    ['a' + '😀'.repeat(4095) + 'bcd', 'a' + '😀'.repeat(4095) + 'bcde'],
  ];
  for (const [atLimit, over] of cases) {
    t.is(Buffer.byteLength(atLimit, 'utf8'), 16384);
    t.is(Buffer.byteLength(over, 'utf8'), 16385);
    t.true(over.length < 16384, 'the over-limit body has fewer than 16384 UTF-16 units');
    t.is((parseRequest(send(atLimit)) as { body: string }).body, atLimit);
    fails(t, send(over), 'too_large', 'b');
  }
  // far fewer characters than the limit, far more bytes
  fails(t, send('é'.repeat(9000)), 'too_large', 'b');
});

test('body: the limit applies to the decoded string, not to its JSON escaping', (t) => {
  const quotes = '"'.repeat(16384);
  const raw = send(quotes);
  t.true(raw.length > 32768);
  t.is((parseRequest(raw) as { body: string }).body, quotes);
  const escaped = '\\u00e9'.repeat(8192); // 8192 × é written as \u00e9 in the JSON text = 16384 bytes decoded
  t.is((parseRequest(`{"op":"send","to":"bob","cid":"c","body":"${escaped}"}`) as { body: string }).body, 'é'.repeat(8192));
  fails(t, `{"op":"send","id":1,"to":"bob","cid":"c","body":"${escaped}a"}`, 'too_large', 1);
});

test('body: the same limit applies to group sends', (t) => {
  const g = (body: string): string => JSON.stringify({ op: 'send', id: 4, group: 'g1', cid: 'c1', body });
  t.is((parseRequest(g('é'.repeat(8192))) as { body: string }).body.length, 8192);
  fails(t, g('é'.repeat(8192) + '.'), 'too_large', 4);
});

// ---- custom limits ----
test('custom limits: maxBody is honoured, in bytes', (t) => {
  const limits: ValidateLimits = { maxBody: 10, maxUsers: 500, maxMembers: 10000 };
  t.is((parseRequest(send('é'.repeat(5)), limits) as { body: string }).body, 'é'.repeat(5));
  fails(t, send('é'.repeat(5) + 'a'), 'too_large', 'b', limits);
  fails(t, send('a'.repeat(11)), 'too_large', 'b', limits);
  // a larger limit accepts what the default refuses
  const big: ValidateLimits = { ...DEFAULT_VALIDATE_LIMITS, maxBody: 20000 };
  t.is((parseRequest(send('a'.repeat(20000)), big) as { body: string }).body.length, 20000);
  fails(t, send('a'.repeat(20001)), 'too_large', 'b', big);
  // and the default was not changed by any of this
  fails(t, send('a'.repeat(16385)), 'too_large', 'b');
});

test('custom limits: maxUsers bounds presence, watch and unwatch', (t) => {
  const limits: ValidateLimits = { maxBody: 16384, maxUsers: 3, maxMembers: 10000 };
  for (const op of ['presence', 'watch', 'unwatch']) {
    t.deepEqual(parseRequest(JSON.stringify({ op, id: 1, users: users(3) }), limits), { op, id: 1, users: users(3) });
    fails(t, JSON.stringify({ op, id: 1, users: users(4) }), 'too_large', 1, limits);
    fails(t, JSON.stringify({ op, users: users(4) }), 'too_large', null, limits);
    // members are not bounded by maxUsers
    t.deepEqual(parseRequest(JSON.stringify({ op: 'group_add', group: 'g', members: users(4) }), limits),
      { op: 'group_add', group: 'g', members: users(4) });
  }
  const more: ValidateLimits = { ...DEFAULT_VALIDATE_LIMITS, maxUsers: 600 };
  t.deepEqual(parseRequest(JSON.stringify({ op: 'watch', users: users(600) }), more), { op: 'watch', users: users(600) });
  fails(t, JSON.stringify({ op: 'watch', id: 'w', users: users(501) }), 'too_large', 'w');
});

test('custom limits: maxMembers bounds group_create, group_add and group_remove', (t) => {
  const limits: ValidateLimits = { maxBody: 16384, maxUsers: 500, maxMembers: 2 };
  for (const op of ['group_create', 'group_add', 'group_remove']) {
    t.deepEqual(parseRequest(JSON.stringify({ op, group: 'g', members: ['a', 'b'] }), limits), { op, group: 'g', members: ['a', 'b'] });
    fails(t, JSON.stringify({ op, id: 'm', group: 'g', members: ['a', 'b', 'c'] }), 'too_large', 'm', limits);
  }
  // users are not bounded by maxMembers
  t.deepEqual(parseRequest(JSON.stringify({ op: 'presence', users: ['a', 'b', 'c'] }), limits), { op: 'presence', users: ['a', 'b', 'c'] });
});

// ---- isId / parseConv / dmConv ----
test('isId accepts 1 to 64 characters from A-Z a-z 0-9 _ . @ -', (t) => {
  for (const v of ['a', 'Z', '0', '_', '.', '@', '-', 'alice', 'alice@example.com', 'a.b-c_d@E9', ids64, '..', '--']) {
    t.true(isId(v), JSON.stringify(v));
  }
});

test('isId rejects empty, too long, other characters and non-strings', (t) => {
  for (const v of ['', ids65, 'a b', ' a', 'a ', 'a:b', 'a/b', 'a\\b', 'a+b', 'a#b', 'a,b', 'a*b', 'a\tb', 'a\n', '\na',
    'a\u0000', 'é', 'café', 'ü', '日本', '😀', 'ａ', 'x'.repeat(63) + 'é']) {
    t.false(isId(v), JSON.stringify(v));
  }
  for (const v of [undefined, null, 5, 0, true, ['a'], { a: 1 }, new String('a')]) t.false(isId(v), String(v));
});

test('parseConv: dm:<a>:<b> with a <= b, and g:<group>', (t) => {
  t.deepEqual(parseConv('dm:a:b'), { kind: 'dm', a: 'a', b: 'b' });
  t.deepEqual(parseConv('dm:alice:bob'), { kind: 'dm', a: 'alice', b: 'bob' });
  t.deepEqual(parseConv('dm:a:a'), { kind: 'dm', a: 'a', b: 'a' });
  t.deepEqual(parseConv('dm:B:a'), { kind: 'dm', a: 'B', b: 'a' }); // uppercase sorts before lowercase
  t.deepEqual(parseConv('dm:10:9'), { kind: 'dm', a: '10', b: '9' }); // string order, not numeric
  t.deepEqual(parseConv(`dm:${'a'.repeat(64)}:${'b'.repeat(64)}`), { kind: 'dm', a: 'a'.repeat(64), b: 'b'.repeat(64) });
  t.deepEqual(parseConv('g:x'), { kind: 'group', group: 'x' });
  t.deepEqual(parseConv('g:g1'), { kind: 'group', group: 'g1' });
  t.deepEqual(parseConv(`g:${ids64}`), { kind: 'group', group: ids64 });
  t.deepEqual(parseConv('g:dm'), { kind: 'group', group: 'dm' });
});

test('parseConv: everything else is not a conversation', (t) => {
  for (const v of ['dm:b:a', 'dm:bob:alice', 'dm:a:B', 'dm:9:10', 'dm:a', 'dm:a:b:c', 'dm::b', 'dm:a:', 'dm::', 'dm',
    'DM:a:b', 'Dm:a:b', 'dm:a b:c', 'dm:a:é', `dm:a:${ids65}`, `dm:${ids65}:z`, ' dm:a:b', 'dm:a:b ',
    'g:', 'G:x', 'g:a b', 'g:a:b', 'g:a/b', 'g:é', `g:${ids65}`, 'g', 'gx', 'group:x', 'x', '', 'a:b', 'x:a:b', ':a:b']) {
    t.is(parseConv(v), undefined, JSON.stringify(v));
  }
  for (const v of [undefined, null, 5, ['dm', 'a', 'b'], { kind: 'dm' }]) t.is(parseConv(v), undefined);
});

test('dmConv names a pair the same way from both sides, sorted', (t) => {
  t.is(dmConv('alice', 'bob'), 'dm:alice:bob');
  t.is(dmConv('bob', 'alice'), 'dm:alice:bob');
  t.is(dmConv('a', 'a'), 'dm:a:a');
  t.is(dmConv('a', 'B'), 'dm:B:a');
  t.is(dmConv('9', '10'), 'dm:10:9');
  const names = ['a', 'b', 'B', 'alice', 'bob', '1', '10', '9', 'x.y', 'x@y', '_', '-'];
  for (const x of names) {
    for (const y of names) {
      const c = dmConv(x, y);
      t.is(c, dmConv(y, x));
      const p = parseConv(c);
      t.deepEqual(p, { kind: 'dm', a: x <= y ? x : y, b: x <= y ? y : x }, c);
    }
  }
});
