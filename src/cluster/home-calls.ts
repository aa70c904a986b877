// Every call on a key's home (HomeCall), one entry per `fn`: the key whose home runs it, how that
// home runs it (the router runs it so on this node when it is the home, and for a peer that
// called), and what a peer's `done` value must look like. The call frames a peer sends are
// validated by parsePeerRequest (src/protocol/peer-requests.ts, homeCall).
import { isId } from '../protocol/frames.ts';
import type { Entry } from '../protocol/frames.ts';
import type { HomeCall } from '../protocol/peer.ts';
import type { Home } from '../home/home.ts';
import { groupKey } from '../group-home/groups.ts';
import type { Groups } from '../group-home/groups.ts';
import type { Social } from '../social/social.ts';

/** What runs a call on its home: this node's home, group-home and social roles. */
export type HomeSide = { local: Home; groups: Groups; social: Social };

type Fn = HomeCall['fn'];
type CallOf<F extends Fn> = Extract<HomeCall, { fn: F }>;
type CallEntry<F extends Fn> = {
  /** The key whose home runs the call. */
  key(c: CallOf<F>): string;
  /** The call's `done` value, run on its home. */
  run(h: HomeSide, c: CallOf<F>): Promise<unknown>;
  /** Replies are peer input too: whether a peer's `done` value has the shape the gateway relies on. */
  check(v: unknown): boolean;
  /** A call made for a client session: the gateway it belongs to (only that gateway may make it). */
  gateway?(c: CallOf<F>): string;
};
type AnyEntry = {
  key(c: HomeCall): string;
  run(h: HomeSide, c: HomeCall): Promise<unknown>;
  check(v: unknown): boolean;
  gateway?(c: HomeCall): string;
};

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const any = () => true;
type O = Record<string, unknown> | null;
const isSent = (v: unknown) => {
  const o = v as O;
  return !!o && typeof o.mid === 'string' && isNat(o.seq) && isNat(o.ts);
};
const isPage = (v: unknown) => {
  const o = v as O;
  return !!o && typeof o.more === 'boolean' && Array.isArray(o.msgs) &&
    (o.msgs as Entry[]).every((e) => e && isNat(e.seq) && typeof e.mid === 'string' && typeof e.body === 'string');
};
const isGroup = (v: unknown) => {
  const o = v as O;
  return v === undefined || v === null || (!!o && isId(o.owner) && Array.isArray(o.members) && (o.members as unknown[]).every(isId) &&
    typeof o.joined === 'object' && o.joined !== null && Object.values(o.joined).every(isNat));
};
const isPosted = (v: unknown) => Array.isArray(v) && v.every((r: Record<string, unknown> | null) => !!r &&
  ((typeof r.mid === 'string' && r.mid.length <= 64) || ((r.code === 'not_found' || r.code === 'forbidden' || r.code === 'rate_limited' || r.code === 'unavailable') && typeof r.message === 'string')));
const isLogin = (v: unknown) => {
  const o = v as O;
  return !!o && isNat(o.seq) && isNat(o.acked);
};
const isUnread = (v: unknown) => {
  const o = v as O;
  return !!o && isNat(o.total) && typeof o.convs === 'object' && o.convs !== null;
};
const isRefusal = (v: unknown) => {
  const o = v as O;
  return v === null || (!!o && typeof o.message === 'string' && ['forbidden', 'too_large', 'not_found', 'conflict', 'bad_request'].includes(o.code as string));
};

export const HOME_CALLS: { [F in Fn]: CallEntry<F> } = {
  send: { key: (c) => c.from, run: (h, c) => h.local.send(c.from, c.to, c.cid, c.body, undefined, c.at), check: isSent },
  gsend: { key: (c) => c.from, run: (h, c) => h.local.sendGroup(c.from, c.group, c.cid, c.body, undefined, c.at), check: isSent },
  group: { key: (c) => groupKey(c.group), run: (h, c) => h.groups.op(c.actor, c.op, c.group, c.members), check: isGroup },
  gpost: { key: (c) => groupKey(c.group), run: (h, c) => h.groups.post(c.group, c.posts), check: isPosted },
  gcast: { key: (c) => groupKey(c.group), run: (h, c) => h.groups.cast(c.group, c.from, c.frame), check: any },
  login: { key: (c) => c.session.user, run: (h, c) => h.local.login(c.session), check: isLogin, gateway: (c) => c.session.gateway },
  logout: { key: (c) => c.session.user, run: (h, c) => h.local.logout(c.session), check: any, gateway: (c) => c.session.gateway },
  sync: { key: (c) => c.user, run: (h, c) => h.local.sync(c.user, c.after, c.limit), check: isPage },
  history: { key: (c) => c.user, run: (h, c) => h.local.history(c.user, c.conv, c.before, c.limit), check: isPage },
  ack: { key: (c) => c.user, run: (h, c) => h.local.ack(c.user, c.device, c.seq), check: any },
  read: { key: (c) => c.session.user, run: (h, c) => h.local.read(c.session, c.conv, c.seq), check: any, gateway: (c) => c.session.gateway },
  unread: { key: (c) => c.user, run: (h, c) => h.local.unread(c.user), check: isUnread },
  social: { key: (c) => c.user, run: (h, c) => h.social.op(c.user, c.req), check: any },
  contacts: { key: (c) => c.user, run: (h, c) => h.social.contacts(c.user, c.after, c.limit), check: any },
  // No refusal travels as null (a missing value would read as a malformed reply).
  admit: { key: (c) => c.user, run: async (h, c) => (await h.social.admit(c.user, c.from, c.kind, c.epoch)) ?? null, check: isRefusal },
};

/** The table's entry for a call. */
export const callEntry = (c: HomeCall): AnyEntry => HOME_CALLS[c.fn] as unknown as AnyEntry;

/** The key whose home runs `c`. */
export const keyOfCall = (c: HomeCall): string => callEntry(c).key(c);

/** Whether a peer's `done` value for a call `fn` has the shape the caller relies on. */
export const checkValue = (fn: Fn, v: unknown): boolean => (HOME_CALLS[fn] as unknown as AnyEntry).check(v);
