// The requests of a logged-in session: one table from op name to a small handler, each asking
// the user's home (or the social role) and answering the client. Errors a handler throws are
// answered by failures.ts; login and ping, which need no session, are handled in intake.ts.
import type { Op, ReqId, Request } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import type { ClientError } from '../protocol/errors.ts';
import type { SocialReq } from '../social/social.ts';
import { typingBucket } from './conn.ts';
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';
import { TYPING_PER_S } from './rate.ts';

/** What a handler works with: the connection, its session and the request's id. */
export type OpContext = { g: Connections; cc: ClientConn; s: SessionRef; id: ReqId | undefined; withId: { id?: ReqId } };
type Handler<K extends Op> = OpHandler<Extract<Request, { op: K }>>;
type OpHandler<R extends Request> = (x: OpContext, req: R) => Promise<void> | void;
export type SessionOp = Exclude<Op, 'login' | 'ping'>;

const groupChange: OpHandler<Extract<Request, { op: 'group_create' | 'group_add' | 'group_remove' }>> = async ({ g, cc, s, id }, req) => {
  await g.homes.group(s.user, req.op.slice(6) as 'create' | 'add' | 'remove', req.group, req.members);
  g.ok(cc, id);
};

/** Profiles, status, privacy and contact changes: the social role on the user's home. */
const social: OpHandler<SocialReq> = async ({ g, cc, s, id }, req) => {
  await g.c.social.socialOp(s.user, req);
  g.ok(cc, id);
};

const typing: Handler<'typing'> = async ({ g, cc, s, id }, req) => {
  const t = g.now();
  const wait = typingBucket(cc, t).take(1, t);
  if (wait > 0) {
    // Typing is sent on keystrokes, mostly without an id: those are dropped without a word.
    if (id === undefined) return;
    return g.error(cc, id, 'rate_limited', `over ${TYPING_PER_S} typing notices/s; retry in ${wait} ms`);
  }
  try {
    await g.homes.typing(s.user, req.group !== undefined ? { group: req.group } : { to: req.to! });
  } catch (e) {
    // The group's typing budget: a keystroke notice without an id is dropped without a word too.
    if (id === undefined && (e as ClientError).code === 'rate_limited') return;
    throw e;
  }
  g.ok(cc, id);
};

const watch: Handler<'watch'> = async ({ g, cc, id }, req) => {
  const watching = (cc.watching ??= new Set());
  const more = new Set(req.users.filter((u) => !watching.has(u))).size;
  if (watching.size + more > g.config.maxWatched) {
    g.metrics.limits.inc({ limit: 'watched' });
    return g.error(cc, id, 'too_large', `a connection watches at most ${g.config.maxWatched} users (${watching.size} now); unwatch some first`);
  }
  for (const u of req.users) watching.add(u);
  await g.homes.watch(g.watcherOf(cc), req.users);
  g.ok(cc, id);
};

const unwatch: Handler<'unwatch'> = async ({ g, cc, id }, req) => {
  for (const u of req.users) cc.watching?.delete(u);
  // The roster's own watches stay.
  const gone = req.users.filter((u) => !cc.roster?.has(u));
  if (gone.length) await g.homes.unwatch(g.watcherOf(cc), gone);
  g.ok(cc, id);
};

export const OPS: { [K in SessionOp]: OpHandler<Extract<Request, { op: K }>> } = {
  send: async ({ g, cc, s, withId }, req) => {
    const r = req.group !== undefined
      ? await g.homes.sendGroup(s.user, req.group, req.cid, req.body, cc.lane)
      : await g.homes.send(s.user, req.to!, req.cid, req.body, cc.lane);
    g.send(cc, { op: 'sent', ...withId, ...r });
  },
  group_create: groupChange,
  group_add: groupChange,
  group_remove: groupChange,
  group_leave: async ({ g, cc, s, id }, req) => {
    await g.homes.group(s.user, 'leave', req.group, []);
    g.ok(cc, id);
  },
  group_info: async ({ g, cc, s, withId }, req) => {
    const i = (await g.homes.group(s.user, 'info', req.group, []))!;
    g.send(cc, { op: 'group', ...withId, group: i.group, owner: i.owner, members: i.members, joined: i.joined });
  },
  typing,
  receipts: async ({ g, cc, s, withId }, req) => g.send(cc, { op: 'receipts', ...withId, conv: req.conv, read: await g.homes.receipts(s.user, req.conv) }),
  ack: async ({ g, cc, s, id }, req) => {
    await g.homes.ack(s.user, s.device, req.seq);
    g.ok(cc, id);
  },
  sync: async ({ g, cc, s, withId }, req) => g.send(cc, { op: 'msgs', ...withId, ...(await g.homes.sync(s.user, req.after, req.limit)) }),
  history: async ({ g, cc, s, withId }, req) => g.send(cc, { op: 'msgs', ...withId, ...(await g.homes.history(s.user, req.conv, req.before, req.limit)) }),
  read: async ({ g, cc, s, id }, req) => {
    await g.homes.read(s, req.conv, req.seq);
    g.ok(cc, id);
  },
  unread: async ({ g, cc, s, withId }) => g.send(cc, { op: 'unread', ...withId, ...(await g.homes.unread(s.user)) }),
  presence: async ({ g, cc, s, withId }, req) => g.send(cc, { op: 'presence', ...withId, users: await g.homes.presence(req.users, s.user) }),
  watch,
  unwatch,
  profiles: async ({ g, cc, s, withId }, req) => g.send(cc, { op: 'profiles', ...withId, users: await g.c.social.profiles(s.user, req.users) }),
  contacts: async ({ g, cc, s, withId }, req) => g.send(cc, { op: 'contacts', ...withId, ...(await g.c.social.contacts(s.user, req.after, req.limit)) }),
  profile_set: social,
  status: social,
  privacy: social,
  contact_lists: social,
  contact_request: social,
  contact_accept: social,
  contact_decline: social,
  contact_remove: social,
  follow: social,
  unfollow: social,
  block: social,
  unblock: social,
};
