// Group state as a fold over the group's log: the membership events its home appended, in the
// same seq order as the group's messages. Pure: no I/O; the home keeps the events in the group's
// timeline (key `g:<group>`), so they are replicated and migrated like every timeline. Every so
// many events the home writes a snapshot of the members (in parts); a fold then starts from the
// latest snapshot, so loading a group reads a bounded number of events however old it is.

export type GroupEventOp = 'create' | 'add' | 'remove' | 'leave' | 'snapshot';
/** `ts`: when the group's home logged it (ms). A `snapshot` part restates the members: part 0
 * replaces the state (owner, members with their join times `joined`), the later parts of the
 * same snapshot add the rest, in join order. */
export type GroupEvent = {
  seq: number; ts: number; actor: string; op: GroupEventOp; members: string[];
  joined?: number[]; owner?: string | null; part?: number; parts?: number;
};

export type GroupState = {
  exists: boolean;
  owner: string | undefined;
  /** Members in join order (re-joining puts a member last), each with when it joined (ms): the
   * first is the next owner. */
  members: Map<string, number>;
  /** The events since the latest snapshot (its parts first), for the members at an earlier seq. */
  events: GroupEvent[];
  /** Events since the latest snapshot (its parts not counted), and the member ids they name:
   * what decides when the next snapshot is due. */
  since: number;
  named: number;
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
  const e = o as { op?: unknown; members?: unknown; joined?: unknown; owner?: unknown; part?: unknown; parts?: unknown };
  if (!['create', 'add', 'remove', 'leave', 'snapshot'].includes(e.op as string)) return undefined;
  if (!Array.isArray(e.members) || !e.members.every((m) => typeof m === 'string')) return undefined;
  const ev: GroupEvent = { seq, ts, actor, op: e.op as GroupEventOp, members: e.members as string[] };
  if (ev.op !== 'snapshot') return ev;
  const nat = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(e.joined) || e.joined.length !== ev.members.length || !e.joined.every(nat)) return undefined;
  if (!(e.owner === null || typeof e.owner === 'string') || !nat(e.part) || !nat(e.parts) || (e.part as number) >= (e.parts as number)) return undefined;
  return { ...ev, joined: e.joined as number[], owner: e.owner as string | null, part: e.part as number, parts: e.parts as number };
}

export function emptyGroup(): GroupState {
  return { exists: false, owner: undefined, members: new Map(), events: [], since: 0, named: 0 };
}

/** Applies one event (already checked by `check`) to the state. */
export function apply(s: GroupState, e: GroupEvent): void {
  if (e.op === 'snapshot') {
    const joined = e.joined ?? [];
    if (e.part === 0) {
      // Everything before is summed up here: the events before it are no longer needed.
      s.exists = e.owner !== null && e.owner !== undefined;
      s.owner = e.owner ?? undefined;
      s.members = new Map();
      s.events = [];
      s.since = 0;
      s.named = 0;
    }
    e.members.forEach((m, i) => {
      if (!s.members.has(m)) s.members.set(m, joined[i]!);
    });
    s.events.push(e);
    return;
  }
  s.events.push(e);
  s.since++;
  s.named += e.members.length;
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

/** Members of the group just before the entry at `seq` (who a message at `seq` went to);
 * undefined for a seq at or before the latest snapshot (its events are no longer held). */
export function membersAt(s: GroupState, seq: number): Map<string, number> | undefined {
  const first = s.events[0];
  if (first?.op === 'snapshot' && seq <= first.seq) return undefined;
  return fold(s.events.filter((e) => e.seq < seq)).members;
}

/** Whether a snapshot is due: after `every` events, or once the events since the last one name
 * more ids than a snapshot would hold (so the events held stay in proportion to the members). */
export function snapshotDue(s: GroupState, every: number, partMembers: number): boolean {
  return s.since >= every || (s.since > 1 && s.named >= Math.max(partMembers, 2 * s.members.size));
}

/** The bodies of a snapshot of the state, each part at most `partMembers` members. */
export function snapshotBodies(s: GroupState, partMembers: number): string[] {
  const all = [...s.members];
  const parts = Math.max(1, Math.ceil(all.length / partMembers));
  const out: string[] = [];
  for (let p = 0; p < parts; p++) {
    const slice = all.slice(p * partMembers, (p + 1) * partMembers);
    out.push(JSON.stringify({ op: 'snapshot', owner: s.exists ? s.owner! : null, members: slice.map((m) => m[0]), joined: slice.map((m) => m[1]), part: p, parts }));
  }
  return out;
}

export type GroupRefusal = { code: 'not_found' | 'conflict' | 'forbidden' | 'bad_request' | 'too_large'; message: string };

/** Whether `actor` may do `op` with `members` now; undefined when allowed. */
export function check(s: GroupState, group: string, actor: string, op: Exclude<GroupEventOp, 'snapshot'> | 'info' | 'post', members: string[], maxMembers: number): GroupRefusal | undefined {
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
export function change(s: GroupState, actor: string, op: Exclude<GroupEventOp, 'snapshot'>, members: string[]): Omit<GroupEvent, 'seq' | 'ts'> | undefined {
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
