// The group state fold (src/groups): membership events in log order, owner succession, deletion
// and re-creation, the member list at an earlier seq, and which ops are refused with which code.
import test from 'ava';
import { apply, change, check, emptyGroup, eventBody, fold, membersAt, parseEvent } from '../../src/groups/index.ts';
import type { GroupEvent, GroupEventOp, GroupState } from '../../src/groups/index.ts';

/** Applies an allowed op the way the group home does (check, then the narrowed event). */
function run(s: GroupState, seq: number, actor: string, op: Exclude<GroupEventOp, 'snapshot'>, members: string[] = []): void {
  const no = check(s, 'g', actor, op, members, 5);
  if (no) throw new Error(`${op} refused: ${no.code}`);
  const ev = change(s, actor, op, members);
  if (ev) apply(s, { ...ev, seq, ts: seq * 1000 });
}

test('create makes the creator owner and first member; members keep join order', (t) => {
  const s = emptyGroup();
  run(s, 1, 'alice', 'create', ['bob', 'alice', 'bob']);
  t.true(s.exists);
  t.is(s.owner, 'alice');
  t.deepEqual([...s.members.keys()], ['alice', 'bob']);
  run(s, 2, 'alice', 'add', ['carol', 'bob']);
  t.deepEqual(s.events.at(-1)!.members, ['carol'], 'only real additions are logged');
  run(s, 3, 'alice', 'remove', ['bob', 'zed']);
  t.deepEqual(s.events.at(-1)!.members, ['bob']);
  run(s, 4, 'alice', 'add', ['bob']);
  t.deepEqual([...s.members], [['alice', 1000], ['carol', 2000], ['bob', 4000]], 'a member added again joins last, with its new join time');
});

test('the earliest-joined member becomes owner when the owner leaves; the last leave deletes', (t) => {
  const s = emptyGroup();
  run(s, 1, 'alice', 'create', ['bob', 'carol']);
  run(s, 2, 'alice', 'leave');
  t.is(s.owner, 'bob');
  run(s, 3, 'carol', 'leave');
  t.is(s.owner, 'bob');
  run(s, 4, 'bob', 'leave');
  t.false(s.exists);
  t.is(s.members.size, 0);
  t.is(check(s, 'g', 'bob', 'info', [], 5)?.code, 'not_found');
  run(s, 5, 'dave', 'create', []);
  t.is(s.owner, 'dave');
  t.deepEqual([...s.members.keys()], ['dave']);
});

test('refusals: conflict, not_found, forbidden, bad_request, too_large', (t) => {
  const s = emptyGroup();
  t.is(check(s, 'g', 'a', 'add', ['b'], 5)?.code, 'not_found');
  t.is(check(s, 'g', 'a', 'post', [], 5)?.code, 'not_found');
  t.is(check(s, 'g', 'a', 'create', ['b', 'c', 'd', 'e', 'f'], 5)?.code, 'too_large');
  run(s, 1, 'a', 'create', ['b']);
  t.is(check(s, 'g', 'b', 'create', [], 5)?.code, 'conflict');
  t.is(check(s, 'g', 'x', 'info', [], 5)?.code, 'forbidden');
  t.is(check(s, 'g', 'x', 'post', [], 5)?.code, 'forbidden');
  t.is(check(s, 'g', 'x', 'leave', [], 5)?.code, 'forbidden');
  t.is(check(s, 'g', 'b', 'add', ['c'], 5)?.code, 'forbidden', 'only the owner adds');
  t.is(check(s, 'g', 'b', 'remove', ['a'], 5)?.code, 'forbidden', 'only the owner removes');
  t.is(check(s, 'g', 'a', 'add', [], 5)?.code, 'bad_request');
  t.is(check(s, 'g', 'a', 'remove', ['a'], 5)?.code, 'bad_request');
  t.is(check(s, 'g', 'a', 'add', ['c', 'd', 'e', 'f'], 5)?.code, 'too_large');
  t.is(check(s, 'g', 'a', 'add', ['b', 'c', 'd', 'e'], 5), undefined, 'members already in do not count twice');
  t.is(check(s, 'g', 'b', 'post', [], 5), undefined);
});

test('membersAt gives the members a message at that seq went to', (t) => {
  const s = emptyGroup();
  run(s, 1, 'a', 'create', ['b']);
  run(s, 4, 'a', 'add', ['c']);
  run(s, 7, 'a', 'remove', ['b']);
  t.deepEqual([...membersAt(s, 2)!.keys()], ['a', 'b']);
  t.deepEqual([...membersAt(s, 4)!.keys()], ['a', 'b'], 'only events before the seq count');
  t.deepEqual([...membersAt(s, 5)!.keys()], ['a', 'b', 'c']);
  t.deepEqual([...membersAt(s, 8)!.keys()], ['a', 'c']);
});

test('event bodies round-trip; unknown or malformed bodies are not events', (t) => {
  const e = parseEvent(3, 30, 'a', eventBody('add', ['x', 'y']));
  t.deepEqual(e, { seq: 3, ts: 30, actor: 'a', op: 'add', members: ['x', 'y'] } satisfies GroupEvent);
  t.is(parseEvent(1, 10, 'a', 'not json'), undefined);
  t.is(parseEvent(1, 10, 'a', '{"op":"explode","members":[]}'), undefined);
  t.is(parseEvent(1, 10, 'a', '{"op":"add","members":[1]}'), undefined);
  const events = [parseEvent(1, 10, 'a', eventBody('create', ['b']))!, parseEvent(2, 20, 'b', eventBody('leave', []))!];
  t.deepEqual([...fold(events).members.keys()], ['a']);
});
