// The relation model of src/contacts/index.ts: both sides' copies converge whatever the order,
// delay and repetition of the copies they send each other, and the states they show mirror.
import test from 'ava';
import { applyEntry, applyOp, emptyPair, emptySocial, flip, join, stateOf, view, visible, wire } from '../../src/contacts/index.ts';
import type { Pair, WirePair } from '../../src/contacts/index.ts';
import type { ContactOp } from '../../src/protocol/frames.ts';
import { prng as rng } from '../helpers/churn.ts';

const LIMITS = { maxContacts: 100, maxPending: 100 };
const OPS: ContactOp[] = ['contact_request', 'contact_accept', 'contact_decline', 'contact_remove', 'follow', 'unfollow', 'block', 'unblock'];

type Side = { p: Pair; inbox: WirePair[] };
const MIRROR = { friend: 'friend', requested: 'pending', pending: 'requested', none: 'none' } as const;

function op(me: Side, other: Side, o: ContactOp): boolean {
  const next = applyOp(me.p, o, 'x', '', 0, LIMITS);
  if (next === 'same' || 'code' in next) return false;
  me.p = next;
  other.inbox.push(wire(next));
  return true;
}

test('random ops, copies late, reordered and repeated, converge (1,000 seeded runs)', (t) => {
  for (let seed = 1; seed <= 1000; seed++) {
    const r = rng(seed);
    const a: Side = { p: emptyPair(), inbox: [] };
    const b: Side = { p: emptyPair(), inbox: [] };
    const deliver = (s: Side) => {
      if (s.inbox.length === 0) return;
      const i = Math.floor(r() * s.inbox.length);
      const w = s.inbox[i]!;
      if (r() < 0.7) s.inbox.splice(i, 1); // else delivered again later
      s.p = join(s.p, flip(w));
    };
    for (let step = 0; step < 40; step++) {
      const x = r();
      if (x < 0.35) op(a, b, OPS[Math.floor(r() * OPS.length)]!);
      else if (x < 0.7) op(b, a, OPS[Math.floor(r() * OPS.length)]!);
      else deliver(r() < 0.5 ? a : b);
    }
    // Everything still on its way arrives, in some order, some of it twice.
    while (a.inbox.length || b.inbox.length) {
      deliver(a);
      deliver(b);
    }
    const va = view('b', a.p);
    const vb = view('a', b.p);
    t.is(vb.state, MIRROR[va.state], `seed ${seed}: a sees ${va.state}, b sees ${vb.state}`);
    t.is(va.following, vb.follows_me, `seed ${seed}`);
    t.is(va.follows_me, vb.following, `seed ${seed}`);
    t.deepEqual(flip(wire(a.p)), wire(b.p), `seed ${seed}: the two copies are the same relation`);
  }
});

test('join is commutative, idempotent and keeps the newer epoch', (t) => {
  const base = emptyPair();
  const req = applyOp(base, 'contact_request', 'b', 'hi', 0, LIMITS) as Pair;
  const reset = applyOp(req, 'contact_remove', 'b', '', 0, LIMITS) as Pair;
  t.deepEqual(join(join(base, wire(req)), wire(reset)), join(join(base, wire(reset)), wire(req)));
  t.deepEqual(join(reset, wire(reset)), reset);
  t.is(stateOf(join(reset, wire(req))), 'none', 'a request of an older epoch is void');
});

test('crossing requests meet in friend; a block ends the friendship and the follows both ways', (t) => {
  let a = applyOp(emptyPair(), 'contact_request', 'b', '', 0, LIMITS) as Pair;
  let b = applyOp(emptyPair(), 'contact_request', 'a', '', 0, LIMITS) as Pair;
  a = join(a, flip(wire(b)));
  b = join(b, flip(wire(a)));
  t.is(stateOf(a), 'friend');
  t.is(stateOf(b), 'friend');
  a = applyOp(a, 'follow', 'b', '', 1, LIMITS) as Pair;
  b = join(b, flip(wire(a)));
  t.true(view('a', b).follows_me);
  b = applyOp(b, 'block', 'a', '', 1, LIMITS) as Pair;
  a = join(a, flip(wire(b)));
  t.like(view('b', a), { state: 'none', following: false, blocked: false });
  t.like(view('a', b), { state: 'none', follows_me: false, blocked: true });
  t.like(applyOp(a, 'contact_request', 'b', '', 0, LIMITS), { code: 'forbidden' });
  t.like(applyOp(b, 'contact_request', 'a', '', 0, LIMITS), { code: 'conflict' });
});

test('refusals: conflict, not_found, too_large; repeats change nothing', (t) => {
  const none = emptyPair();
  t.like(applyOp(none, 'contact_accept', 'b', '', 0, LIMITS), { code: 'not_found' });
  t.like(applyOp(none, 'contact_decline', 'b', '', 0, LIMITS), { code: 'not_found' });
  t.like(applyOp(none, 'contact_remove', 'b', '', 0, LIMITS), { code: 'not_found' });
  t.is(applyOp(none, 'unfollow', 'b', '', 0, LIMITS), 'same');
  t.is(applyOp(none, 'unblock', 'b', '', 0, LIMITS), 'same');
  t.like(applyOp(none, 'follow', 'b', '', 100, LIMITS), { code: 'too_large' });
  const req = applyOp(none, 'contact_request', 'b', '', 0, LIMITS) as Pair;
  t.is(applyOp(req, 'contact_request', 'b', '', 1, LIMITS), 'same');
  // Already counted: following someone requested does not need room.
  t.notDeepEqual(applyOp(req, 'follow', 'b', '', 100, LIMITS), { code: 'too_large' });
});

test('the fold: profile version, status, invisible since, privacy and what others may see', (t) => {
  const s = emptySocial();
  applyEntry(s, 1, 1000, JSON.stringify({ k: 'profile', p: { name: 'Alice', fields: { a: 1 } } }));
  applyEntry(s, 2, 2000, JSON.stringify({ k: 'profile', p: { text: 'hi' } }));
  t.like(s.profile, { name: 'Alice', text: 'hi', fields: { a: 1 } });
  t.is(s.pver, 2);
  t.false(applyEntry(s, 2, 2000, JSON.stringify({ k: 'profile', p: { name: 'again' } })), 'a seq folded in already is skipped');
  applyEntry(s, 3, 3000, JSON.stringify({ k: 'status', s: 'invisible', x: '' }));
  applyEntry(s, 4, 4000, JSON.stringify({ k: 'status', s: 'invisible', x: 'still' }));
  t.is(s.hiddenAt, 3000);
  t.false(visible('alice', s, 'bob', 'presence'));
  t.true(visible('alice', s, 'alice', 'presence'));
  t.true(visible('alice', s, 'bob', 'profile'));
  applyEntry(s, 5, 5000, JSON.stringify({ k: 'privacy', p: { profile: 'contacts' } }));
  t.false(visible('alice', s, 'bob', 'profile'));
  t.false(applyEntry(s, 6, 6000, '{"k":"later-version"}'), 'an unknown event is skipped');
  t.is(s.seq, 6);
});
