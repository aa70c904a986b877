// The group log's member snapshots (src/groups): a snapshot restates the members with their join
// times and owner, in parts; a fold of the latest snapshot and the events after it equals the fold
// of the whole log, at every point of a long random history, and so does the member list at an
// earlier seq; a 10,000-member snapshot fits its event parts.
import test from 'ava';
import { apply, change, check, emptyGroup, fold, membersAt, parseEvent, snapshotBodies, snapshotDue } from '../../src/groups/index.ts';
import type { GroupEvent, GroupEventOp, GroupState } from '../../src/groups/index.ts';
import { GROUP_EVENT_MEMBERS } from '../../src/protocol/peer.ts';

const view = (s: GroupState) => ({ exists: s.exists, owner: s.owner, members: [...s.members] });

/** A seeded random (mulberry32), so that a failure replays. */
function rand(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('a snapshot in parts restates owner, members in join order and join times', (t) => {
  const s = emptyGroup();
  apply(s, { seq: 1, ts: 10, actor: 'a', op: 'create', members: ['b', 'c'] });
  apply(s, { seq: 2, ts: 20, actor: 'a', op: 'add', members: ['d', 'e', 'f', 'g'] });
  apply(s, { seq: 3, ts: 30, actor: 'a', op: 'leave', members: [] });
  apply(s, { seq: 4, ts: 40, actor: 'b', op: 'add', members: ['a'] });
  const bodies = snapshotBodies(s, 3);
  t.is(bodies.length, 3, '7 members in parts of 3');
  const from = emptyGroup();
  // A state that has nothing to do with it: part 0 replaces everything.
  apply(from, { seq: 1, ts: 1, actor: 'zed', op: 'create', members: ['y'] });
  bodies.forEach((b, i) => apply(from, parseEvent(5 + i, 50, 'b', b)!));
  t.deepEqual(view(from), view(s));
  t.is(from.owner, 'b');
  t.deepEqual([...from.members.keys()], ['b', 'c', 'd', 'e', 'f', 'g', 'a']);
  t.is(from.members.get('a'), 40);
  t.is(from.since, 0, 'a snapshot starts the count of events again');
  t.is(from.events.length, 3, 'only the snapshot\'s parts are held');
  t.is(membersAt(from, 5), undefined, 'members before the snapshot are not known from it');
  t.deepEqual([...membersAt(from, 8)!.keys()], ['b', 'c', 'd', 'e', 'f', 'g', 'a']);
});

test('a snapshot of a deleted group restates that it does not exist', (t) => {
  const s = emptyGroup();
  apply(s, { seq: 1, ts: 10, actor: 'a', op: 'create', members: [] });
  apply(s, { seq: 2, ts: 20, actor: 'a', op: 'leave', members: [] });
  const [body] = snapshotBodies(s, 10);
  const from = fold([parseEvent(3, 30, 'group', body!)!]);
  t.false(from.exists);
  t.is(from.owner, undefined);
  t.is(check(from, 'g', 'a', 'post', [], 5)?.code, 'not_found');
  t.is(check(from, 'g', 'a', 'create', [], 5), undefined, 'it can be created again');
});

test('malformed snapshot bodies are not events', (t) => {
  const ok = { op: 'snapshot', owner: 'a', members: ['a'], joined: [1], part: 0, parts: 1 };
  t.truthy(parseEvent(1, 1, 'a', JSON.stringify(ok)));
  for (const bad of [{ ...ok, joined: [] }, { ...ok, joined: [-1] }, { ...ok, owner: 3 }, { ...ok, part: 1 }, { ...ok, parts: undefined }]) {
    t.is(parseEvent(1, 1, 'a', JSON.stringify(bad)), undefined, JSON.stringify(bad));
  }
});

test('a snapshot is due after N events, or once the events name many more ids than there are members', (t) => {
  const s = emptyGroup();
  apply(s, { seq: 1, ts: 1, actor: 'a', op: 'create', members: ['b'] });
  t.false(snapshotDue(s, 3, 100));
  apply(s, { seq: 2, ts: 2, actor: 'a', op: 'add', members: ['c'] });
  t.false(snapshotDue(s, 3, 100));
  apply(s, { seq: 3, ts: 3, actor: 'a', op: 'remove', members: ['c'] });
  t.true(snapshotDue(s, 3, 100), 'three events');
  const big = emptyGroup();
  apply(big, { seq: 1, ts: 1, actor: 'a', op: 'create', members: [] });
  const many = Array.from({ length: 60 }, (_, i) => `m${i}`);
  apply(big, { seq: 2, ts: 2, actor: 'a', op: 'add', members: many });
  apply(big, { seq: 3, ts: 3, actor: 'a', op: 'remove', members: many });
  t.true(snapshotDue(big, 1000, 100), '120 ids named for a group of one');
});

test('the latest snapshot and the events after it fold to the whole log, at every point of a random history', (t) => {
  for (const seed of [1, 2, 3, 42]) {
    const r = rand(seed);
    const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
    const pick = () => users[Math.floor(r() * users.length)]!;
    const all: GroupEvent[] = [];
    const gen = emptyGroup(); // what a home holds: the latest snapshot and the events since
    let seq = 0;
    let snapshots = 0;
    /** Members as the whole history says, just before each message seq. */
    const messages: { seq: number; members: string[] }[] = [];
    for (let step = 0; step < 400; step++) {
      const ops: Exclude<GroupEventOp, 'snapshot'>[] = ['create', 'add', 'add', 'remove', 'leave'];
      const op = ops[Math.floor(r() * ops.length)]!;
      const actor = op === 'add' || op === 'remove' ? (gen.owner ?? pick()) : pick();
      const members = Array.from({ length: 1 + Math.floor(r() * 4) }, pick).filter((m) => !(op === 'remove' && m === actor));
      if (r() < 0.3) {
        // A message between events.
        messages.push({ seq: ++seq, members: [...fold(all).members.keys()] });
        t.deepEqual([...membersAt(gen, seq)!.keys()], messages.at(-1)!.members, `seed ${seed}: members of message ${seq}`);
        continue;
      }
      if (check(gen, 'g', actor, op, members, 8)) continue;
      const ev = change(gen, actor, op, members);
      if (!ev) continue;
      const e = { ...ev, seq: ++seq, ts: seq * 10 };
      all.push(e);
      apply(gen, e);
      if (snapshotDue(gen, 5, 3)) {
        snapshots++;
        const parts = snapshotBodies(gen, 3).map((b) => parseEvent(++seq, seq * 10, 'group', b)!);
        for (const p of parts) apply(gen, p);
        t.true(gen.events.length <= parts.length, 'a home holds only the events since the snapshot');
      }
      // Loading: the latest generation alone.
      t.deepEqual(view(fold(gen.events)), view(fold(all)), `seed ${seed}, step ${step}`);
      t.true(gen.events.length <= 5 + Math.ceil(8 / 3), 'a bounded number of events to load');
    }
    t.true(snapshots > 10, `seed ${seed}: ${snapshots} snapshots`);
  }
});

test('a 10,000-member snapshot of 64-character ids goes in parts that each fit an event', (t) => {
  const s = emptyGroup();
  const id = (i: number) => `member-${String(i).padStart(57, '0')}`;
  apply(s, { seq: 1, ts: 1_700_000_000_000, actor: id(0), op: 'create', members: [] });
  for (let i = 1; i < 10_000; i += GROUP_EVENT_MEMBERS) {
    apply(s, { seq: 2, ts: 1_700_000_000_000 + i, actor: id(0), op: 'add', members: Array.from({ length: Math.min(GROUP_EVENT_MEMBERS, 10_000 - i) }, (_, k) => id(i + k)) });
  }
  t.is(s.members.size, 10_000);
  const bodies = snapshotBodies(s, GROUP_EVENT_MEMBERS);
  t.is(bodies.length, 5);
  for (const b of bodies) t.true(Buffer.byteLength(b) <= 256 * 1024, `${Buffer.byteLength(b)} bytes`);
  const from = fold(bodies.map((b, i) => parseEvent(10 + i, 5, id(0), b)!));
  t.deepEqual(view(from), view(s));
});
