// The peer authorization rules (src/cluster/peer-auth.ts) on a fake member table and rings: who is
// served, which handoffs are allowed, which absorbed keys are taken, whose deliveries count.
import test from 'ava';
import { createRing } from '../../src/ring/index.ts';
import type { Ring } from '../../src/ring/index.ts';
import type { MemberState } from '../../src/membership/index.ts';
import {
  absorbKeys, admit, admitOneWay, deliverAllowed, entriesFrom, fanAllowed, handoffAllowed, homeOf, memberName, pageKeys, pageOf,
} from '../../src/cluster/peer-auth.ts';
import type { AuthView } from '../../src/cluster/peer-auth.ts';
import { parsePeerOneWay, PeerFrameError, pushFrame } from '../../src/protocol/peer.ts';
import type { Delivery, Page, PeerRequest } from '../../src/protocol/peer.ts';

type Row = { name: string; peer: string; state: MemberState };

function viewOf(self: string, table: Row[], rings: Ring[]): AuthView {
  return {
    self,
    byPeer: (peer) => table.find((r) => r.peer === peer),
    names: () => table.map((r) => r.name),
    live: (name) => table.find((r) => r.name === name && r.state !== 'dead'),
    rings: () => rings,
    vnodes: 160,
    replicas: 2,
  };
}

const TABLE: Row[] = [
  { name: 'n1', peer: 'P1', state: 'up' },
  { name: 'n2', peer: 'P2', state: 'suspect' },
  { name: 'n3', peer: 'P3', state: 'leaving' },
  { name: 'n4', peer: 'P4', state: 'dead' },
];
const ring3 = createRing(['n1', 'n2', 'n3']);
const v = viewOf('n1', TABLE, [ring3]);

const handoff = (o: Partial<Extract<PeerRequest, { t: 'handoff' }>>): Extract<PeerRequest, { t: 'handoff' }> => ({
  t: 'handoff', target: 'n5', members: ['n1', 'n2', 'n3', 'n5'], from: '', to: null, after: {}, freeze: true, limit: 100, ...o,
});

/** A key whose holders (home first) satisfy `pred` in `ring`. */
function keyWhere(ring: Ring, pred: (owners: readonly string[]) => boolean, prefix = 'u'): string {
  for (let i = 0; ; i++) if (pred(ring.owners(`${prefix}${i}`, 2))) return `${prefix}${i}`;
}

test('members are up, suspect or leaving; the dead and strangers are not', (t) => {
  t.is(memberName(v, 'P1'), 'n1');
  t.is(memberName(v, 'P2'), 'n2');
  t.is(memberName(v, 'P3'), 'n3');
  t.is(memberName(v, 'P4'), undefined);
  t.is(memberName(v, 'PX'), undefined);
});

test('a stranger gets only the membership protocol and the handoff copy; a member gets everything', (t) => {
  for (const tp of ['join', 'members', 'ping', 'probe', 'handoff']) t.true(admit(v, 'PX', tp).ok, tp);
  for (const tp of ['call', 'deliver', 'fanout', 'relay', 'readmarks', 'presence', 'watch', 'register', 'renew', 'absorb', 'holding', 'replicate']) {
    t.like(admit(v, 'PX', tp), { ok: false, reason: 'not_member' }, tp);
    t.like(admit(v, 'P4', tp), { ok: false, reason: 'not_member' }, `${tp} from a dead member`);
    t.true(admit(v, 'P2', tp).ok, `${tp} from a member`);
  }
  const push = parsePeerOneWay({ t: 'push', conn: 'c1', frame: { op: 'typing', from: 'a', conv: 'dm:a:b' } });
  t.like(admitOneWay(v, 'PX', push), { ok: false, reason: 'not_member' });
  t.true(admitOneWay(v, 'P1', push).ok);
  t.true(admitOneWay(v, 'PX', { t: 'gossip', entries: [] }).ok);
});

test('gossip and join entries from a non-member speak only for the sender', (t) => {
  const entries = [{ name: 'n5', peer: 'PX' }, { name: 'n1', peer: 'P1', status: 'dead' }, null, 7];
  t.deepEqual(entriesFrom(v, 'PX', entries), [{ name: 'n5', peer: 'PX' }]);
  t.deepEqual(entriesFrom(v, 'P4', entries), [], 'a dead member: its own entry only');
  t.is(entriesFrom(v, 'P2', entries).length, 4, 'a member: everything');
});

test('handoff: only the newcomer itself, in a future ring of known members plus it', (t) => {
  t.true(handoffAllowed(v, 'PX', handoff({})).ok, 'a joining stranger under a new name');
  t.true(handoffAllowed(v, 'P4', handoff({ target: 'n4', members: ['n1', 'n2', 'n3', 'n4'] })).ok, 'a dead member rejoining under its name');
  t.true(handoffAllowed(v, 'P2', handoff({ target: 'n2', members: ['n1', 'n2', 'n3'] })).ok, 'a member restarted before it was declared dead');
  t.true(handoffAllowed(v, 'PY', handoff({ target: 'n4', members: ['n1', 'n2', 'n3', 'n4'] })).ok, 'a new identity under a dead member\'s name');
  t.like(handoffAllowed(v, 'PX', handoff({ members: ['n1', 'n5'] })), { ok: false, reason: 'bad_members' }, 'a ring without the other members');
  const older = viewOf('n1', TABLE, [ring3, createRing(['n1'])]);
  t.like(handoffAllowed(older, 'PX', handoff({ members: ['n1', 'n5'] })), { ok: false, reason: 'bad_members' }, 'not by an older ring (n1 alone)');
  t.like(handoffAllowed(v, 'PX', handoff({ target: 'n2', members: ['n1', 'n2'] })), { ok: false, reason: 'not_target' }, 'a stranger taking a live member\'s name');
  t.like(handoffAllowed(v, 'P2', handoff({ target: 'n3' })), { ok: false, reason: 'not_target' }, 'a member asking for another');
  t.like(handoffAllowed(v, 'P4', handoff({ target: 'n5' })), { ok: false, reason: 'not_target' }, 'a dead member under a new name');
  t.like(handoffAllowed(v, 'PX', handoff({ target: 'n1', members: ['n1'] })), { ok: false, reason: 'not_target' }, 'this node as the target');
  t.like(handoffAllowed(v, 'PX', handoff({ members: ['n1', 'n2', 'n3', 'n5', 'ghost'] })), { ok: false, reason: 'bad_members' }, 'a member nobody knows');
  t.like(handoffAllowed(v, 'PX', handoff({ members: ['n5', 'n2'] })), { ok: false, reason: 'bad_members' }, 'without this node');
  t.like(handoffAllowed(v, 'PX', handoff({ members: ['n1', 'n2'] })), { ok: false, reason: 'bad_members' }, 'without the target');
  t.like(handoffAllowed(v, 'PX', handoff({ members: ['n1', 'n2', 'n3', 'n5', ...Array.from({ length: 1100 }, (_, i) => `m${i}`)] })), { ok: false, reason: 'bad_members' });
});

test('absorb: keys the leaver held that this node holds once it is gone, by the current or the previous ring', (t) => {
  const cache = new Map();
  const without = createRing(['n1', 'n2']);
  const moving = keyWhere(ring3, (o) => o.includes('n3') && !o.includes('n1'));
  t.true(without.owners(moving, 2).includes('n1'), 'with two nodes left, n1 holds everything');
  const notHeld = keyWhere(ring3, (o) => !o.includes('n3'));
  const r = absorbKeys(v, cache, 'n3', [moving, notHeld]);
  t.deepEqual([...r.ok], [moving]);
  t.deepEqual(r.refused, [notHeld]);
  // The same once this node's ring dropped the leaver (the tail pushed after the announce).
  t.deepEqual([...absorbKeys(viewOf('n1', TABLE, [without]), cache, 'n3', [moving]).ok], [moving]);
  // A member pushing keys it does not hold: refused.
  const other = keyWhere(ring3, (o) => !o.includes('n2'), 'b');
  t.deepEqual(absorbKeys(v, cache, 'n2', [other]).refused, [other]);
  // Five nodes: taken only where n1 holds the key in the ring without the leaver.
  const ring5 = createRing(['n1', 'n2', 'n3', 'n6', 'n7']);
  const gone = createRing(['n1', 'n2', 'n6', 'n7']);
  const wide = viewOf('n1', [...TABLE, { name: 'n6', peer: 'P6', state: 'up' }, { name: 'n7', peer: 'P7', state: 'up' }], [ring5]);
  const k1 = ((): string => {
    for (let i = 0; ; i++) {
      const k = `e${i}`;
      if (ring5.owners(k, 2).includes('n3') && gone.owners(k, 2).includes('n1')) return k;
    }
  })();
  const k2 = ((): string => {
    for (let i = 0; ; i++) {
      const k = `f${i}`;
      if (ring5.owners(k, 2).includes('n3') && !gone.owners(k, 2).includes('n1')) return k;
    }
  })();
  const res = absorbKeys(wide, cache, 'n3', [k1, k2]);
  t.deepEqual([...res.ok], [k1]);
  t.deepEqual(res.refused, [k2]);
});

test('deliver and fanout: from the home of the sender or the group, by a recent ring', (t) => {
  const d = (from: string): Delivery => ({ user: 'x', mid: 'm', conv: 'dm:a:b', from, body: '', ts: 1 });
  const a = keyWhere(ring3, (o) => o[0] === 'n2', 'a');
  t.true(deliverAllowed(v, 'n2', d(a)));
  t.false(deliverAllowed(v, 'n3', d(a)));
  // A key n6's join moved from n3: n3 stays accepted while the ring it was home in is recent.
  const ring4 = createRing(['n1', 'n2', 'n3', 'n6']);
  const k = ((): string => {
    for (let i = 0; ; i++) if (ring3.owner(`k${i}`) === 'n3' && ring4.owner(`k${i}`) === 'n6') return `k${i}`;
  })();
  t.true(homeOf(viewOf('n1', TABLE, [ring4, ring3]), 'n3', k));
  t.true(homeOf(viewOf('n1', TABLE, [ring4, ring3]), 'n6', k));
  t.false(homeOf(viewOf('n1', TABLE, [ring4]), 'n3', k), 'not once the old ring is past its grace');
  const g = keyWhere(ring3, (o) => o[0] === 'n2', 'g:grp').slice(2);
  const item = { mid: 'm', conv: `g:${g}`, from: 'a', group: g, body: '', ts: 1, users: [] };
  t.true(fanAllowed(v, 'n2', item));
  t.false(fanAllowed(v, 'n1', item));
});

test('page helpers keep snapshots and entries of the kept keys only', (t) => {
  const page: Page = {
    users: [{ user: 'a', seq: 1, convs: [], cursors: [] }, { user: 'b', seq: 1, convs: [], cursors: [] }],
    entries: [{ user: 'a', mid: 'm1', conv: 'dm:a:b', from: 'a', body: '', ts: 1, seq: 1, dkey: 'c:1', ocum: 0 }, { user: 'c', mid: 'm2', conv: 'dm:a:c', from: 'a', body: '', ts: 1, seq: 1, dkey: 'c:2', ocum: 0 }],
  };
  t.deepEqual(pageKeys(page).sort(), ['a', 'b', 'c']);
  const p = pageOf(page, new Set(['a']));
  t.deepEqual(p.users.map((s) => s.user), ['a']);
  t.deepEqual(p.entries.map((e) => e.user), ['a']);
});

test('pushed frames are server events, typed and bounded, rebuilt without extra fields', (t) => {
  t.deepEqual(pushFrame({ op: 'msg', seq: 3, mid: 'm', conv: 'dm:a:b', from: 'a', to: 'b', body: 'hi', ts: 5, evil: '<script>' }),
    { op: 'msg', seq: 3, mid: 'm', conv: 'dm:a:b', from: 'a', to: 'b', body: 'hi', ts: 5 });
  t.deepEqual(pushFrame({ op: 'presence', user: 'a', online: true, __proto__: { x: 1 } }), { op: 'presence', user: 'a', online: true });
  t.deepEqual(pushFrame({ op: 'goaway', reason: 'replaced' }), { op: 'goaway', reason: 'replaced' });
  for (const bad of [
    { op: 'welcome', user: 'a' }, { op: 'sent', mid: 'm', seq: 1, ts: 1 }, { op: 'error', code: 'internal' }, { op: 'pong', ts: 1 },
    { op: 'msg', seq: 'one' }, { op: 'msg', seq: 1, mid: 'm', conv: 'not a conv', from: 'a', body: '', ts: 1 },
    { op: 'msg', seq: 1, mid: 'x'.repeat(65), conv: 'dm:a:b', from: 'a', body: '', ts: 1 },
    { op: 'msg', seq: 1, mid: 'm', conv: 'dm:a:b', from: 'a', body: 'x'.repeat(300 * 1024), ts: 1 },
    { op: 'presence', user: 'a', online: 'yes' }, { op: 'typing', from: 'bad id!', conv: 'dm:a:b' },
    { op: 'goaway', reason: 'x', nodes: Array(100).fill('n') }, 'frame', null, [],
  ]) {
    t.throws(() => pushFrame(bad), { instanceOf: PeerFrameError }, JSON.stringify(bad)?.slice(0, 80));
  }
  t.throws(() => parsePeerOneWay({ t: 'push', conn: 'c1', frame: { op: 'welcome' } }), { instanceOf: PeerFrameError });
});
