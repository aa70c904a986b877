// Group state as a fold over the group's log: the membership events its home appended, in the
// same seq order as the group's messages. Pure: no I/O; the home keeps the events in the group's
// timeline (key `g:<group>`), so they are replicated and migrated like every timeline.

export type GroupEventOp = 'create' | 'add' | 'remove' | 'leave';
/** `ts`: when the group's home logged it (ms). */
export type GroupEvent = { seq: number; ts: number; actor: string; op: GroupEventOp; members: string[] };

export type GroupState = {
  exists: boolean;
  owner: string | undefined;
  /** Members in join order (re-joining puts a member last), each with when it joined (ms): the
   * first is the next owner. */
  members: Map<string, number>;
  /** Every event so far, for the member list at an earlier seq. */
  events: GroupEvent[];
};

/** Events of one group log entry: its body is `{"op":…,"members":[…]}`. */
export function eventBody(op: GroupEventOp, members: string[]): string {
  return JSON.stringify({ op, members });
}

/** Parses an event body; undefined when it is not one (a log written by a newer version). */
export function parseEvent(seq: number, ts: number, actor: string, body: string): GroupEvent | undefined {
  let o: unknown;
  try {
    o = JSON.parse(body);
  } catch {
    return undefined;
  }
  const e = o as { op?: unknown; members?: unknown };
  if (!['create', 'add', 'remove', 'leave'].includes(e.op as string)) return undefined;
  if (!Array.isArray(e.members) || !e.members.every((m) => typeof m === 'string')) return undefined;
  return { seq, ts, actor, op: e.op as GroupEventOp, members: e.members as string[] };
}

export function emptyGroup(): GroupState {
  return { exists: false, owner: undefined, members: new Map(), events: [] };
}

/** Applies one event (already checked by `check`) to the state. */
export function apply(s: GroupState, e: GroupEvent): void {
  s.events.push(e);
  switch (e.op) {
    case 'create':
      s.exists = true;
      s.owner = e.actor;
      s.members = new Map([e.actor, ...e.members].map((m) => [m, e.ts]));
      return;
    case 'add':
      for (const m of e.members) if (!s.members.has(m)) s.members.set(m, e.ts);
      return;
    case 'remove':
      for (const m of e.members) s.members.delete(m);
      return;
    case 'leave':
      s.members.delete(e.actor);
      if (s.members.size === 0) {
        s.exists = false;
        s.owner = undefined;
      } else if (s.owner === e.actor) {
        s.owner = s.members.keys().next().value;
      }
  }
}

export function fold(events: GroupEvent[]): GroupState {
  const s = emptyGroup();
  for (const e of events) apply(s, e);
  return s;
}

/** Members of the group just before the entry at `seq` (who a message at `seq` went to). */
export function membersAt(s: GroupState, seq: number): Map<string, number> {
  return fold(s.events.filter((e) => e.seq < seq)).members;
}

export type GroupRefusal = { code: 'not_found' | 'conflict' | 'forbidden' | 'bad_request' | 'too_large'; message: string };

/** Whether `actor` may do `op` with `members` now; undefined when allowed. */
export function check(s: GroupState, group: string, actor: string, op: GroupEventOp | 'info' | 'post', members: string[], maxMembers: number): GroupRefusal | undefined {
  if (op === 'create') {
    if (s.exists) return { code: 'conflict', message: `group ${group} already exists` };
    if (new Set([actor, ...members]).size > maxMembers) return { code: 'too_large', message: `a group has at most ${maxMembers} members` };
    return undefined;
  }
  if (!s.exists) return { code: 'not_found', message: `group ${group} does not exist` };
  if (!s.members.has(actor)) return { code: 'forbidden', message: `${actor} is not a member of ${group}` };
  if (op === 'add' || op === 'remove') {
    if (s.owner !== actor) return { code: 'forbidden', message: `only the owner of ${group} (${s.owner}) adds or removes members` };
    if (members.length === 0) return { code: 'bad_request', message: 'members must not be empty' };
  }
  if (op === 'remove' && members.includes(actor)) return { code: 'bad_request', message: 'the owner leaves with group_leave, not group_remove' };
  if (op === 'add') {
    let n = s.members.size;
    for (const m of new Set(members)) if (!s.members.has(m)) n++;
    if (n > maxMembers) return { code: 'too_large', message: `a group has at most ${maxMembers} members` };
  }
  return undefined;
}

/** What an allowed op changes: the event to log (members narrowed to real changes), or none. */
export function change(s: GroupState, actor: string, op: GroupEventOp, members: string[]): Omit<GroupEvent, 'seq' | 'ts'> | undefined {
  const uniq = [...new Set(members)];
  switch (op) {
    case 'create':
      return { actor, op, members: uniq.filter((m) => m !== actor) };
    case 'add': {
      const fresh = uniq.filter((m) => !s.members.has(m));
      return fresh.length ? { actor, op, members: fresh } : undefined;
    }
    case 'remove': {
      const gone = uniq.filter((m) => s.members.has(m));
      return gone.length ? { actor, op, members: gone } : undefined;
    }
    case 'leave':
      return { actor, op, members: [] };
  }
}
