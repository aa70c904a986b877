// The router: the Homes API over the ring. A call for a key runs on this node when it is the
// key's home, else it goes to the home peer to peer; the home checks ownership by its own ring,
// forwards once if the caller's ring was stale, or answers not_owner so that the caller retries.
// The work is done by private classes: calls.ts (a call on a home, with its retries),
// deliveries.ts (copies to recipients' homes), per-home.ts (requests about many users),
// serve.ts (what peers ask of this node); home-calls.ts is the table of calls.
import type { Logger } from 'pino';
import type { Clock } from '../clock/index.ts';
import type { Ring } from '../ring/index.ts';
import type { CastFrame, Delivery, GroupPost, HomeCall, PeerReply, PeerRequest, PostResult } from '../protocol/peer.ts';
import type { Unread } from '../store/index.ts';
import type { Homes, Page, SendResult } from '../home/home.ts';
import type { GroupInfo } from '../group-home/groups.ts';
import type { AdmitKind, ContactInfo, ContactsPage, SocialReq } from '../social/social.ts';
import type { Refusal } from '../contacts/index.ts';
import type { Profile } from '../protocol/frames.ts';
import type { Lane } from '../gateway/lane.ts';
import type { PeerDispatch } from './dispatch.ts';
import type { HomeSide } from './home-calls.ts';
import { HomeCaller } from './calls.ts';
import { Deliveries } from './deliveries.ts';
import { PerHome } from './per-home.ts';
import { RouterContext } from './router-context.ts';
import { PeerServer } from './serve.ts';

/** What the router needs of the peer transport. */
export type PeerLink = {
  request(peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }): Promise<unknown>;
};

export type RouterComponents = {
  self: string;
  ring: () => Ring;
  joined: () => boolean;
  /** This node's home roles, reached when the ring says "here" (a LocalRoles, set once they exist). */
  locals: HomeSide;
  peerOf: (name: string) => string | undefined;
  link: PeerLink;
  log: Logger;
  /** Resolves when the ring changes or after `ms`, whichever is first (to retry on a new ring);
   * the router passes its signal, which may end the wait early too. */
  ringChange: (ms: number, signal?: AbortSignal) => Promise<void>;
  onForward?: (kind: 'forward' | 'reforward' | 'retry') => void;
  requestTimeoutMs?: number;
  /** How long a call or a delivery keeps retrying before the client is told `unavailable`
   * (default CALL_DEADLINE_MS). */
  deadlineMs?: number;
  /** Default systemClock: the deadlines of calls and deliveries. */
  clock?: Clock;
  /** Aborting it ends every retry: a call waiting to retry fails with UnavailableError, a copy
   * waiting to be routed again is given back as unavailable. */
  signal?: AbortSignal;
  /** The node's peer dispatch table: the router registers the request types it serves there. */
  dispatch?: PeerDispatch;
};

export type Router = Omit<Homes, 'group' | 'typing' | 'receipts'> & {
  /** A group op or query on the group's home. */
  groupCall(actor: string, op: Extract<HomeCall, { fn: 'group' }>['op'], group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Posts of this node's senders to the group's home. */
  postGroup(group: string, posts: GroupPost[]): Promise<PostResult[]>;
  /** A member's typing or receipt, relayed by the group's home. */
  castGroup(group: string, from: string, frame: CastFrame): Promise<void>;
  /** Splits users by home and runs `here` locally and `there` per remote home (in parallel). */
  perHome<T>(users: string[], here: (us: string[]) => Promise<T>, there: (peer: string, us: string[]) => Promise<T>): Promise<T[]>;
  /** One request to a peer; its `done` value, or UnavailableError. */
  remote(peer: string, req: PeerRequest, timeoutMs?: number): Promise<unknown>;
  /** Hands a copy to the recipient's home, in order per destination node; resolves when durable there. */
  deliverRemote(d: Delivery): Promise<void>;
  /** A change of `user`'s profile, status, privacy or contacts, on the user's home. */
  socialOp(user: string, req: SocialReq): Promise<void>;
  contacts(user: string, after: string | undefined, limit: number): Promise<ContactsPage>;
  profiles(viewer: string, users: string[]): Promise<Record<string, Profile | null>>;
  info(viewer: string, users: string[]): Promise<Record<string, ContactInfo>>;
  /** Whether `to`'s home takes `kind` from `from`. */
  admitAt(to: string, from: string, kind: AdmitKind, epoch?: number): Promise<Refusal | undefined>;
  /** Every other member forgets the admissions it cached for these users. */
  revokeEverywhere(users: string[]): Promise<void>;
  /** Serves a peer's call, deliver, presence, watch, register or renew request. */
  handle(fromName: string | undefined, req: PeerRequest): Promise<PeerReply>;
};

export function createRouter(c: RouterComponents): Router {
  const x = new RouterContext(c);
  const calls = new HomeCaller(x);
  const deliveries = new Deliveries(x);
  const many = new PerHome(x);
  const server = new PeerServer(x);
  if (c.dispatch) server.register(c.dispatch);
  const call = <T>(hc: HomeCall, lane?: Lane) => calls.call<T>(hc, lane);
  // A plain object of functions: the wiring spreads it ({ ...router }) and passes some on alone.
  return {
    send: (from, to, cid, body, lane) => call<SendResult>({ fn: 'send', from, to, cid, body }, lane),
    login: (s) => call({ fn: 'login', session: s }),
    logout: (s) => call({ fn: 'logout', session: s }),
    sync: (user, after, limit) => call<Page>({ fn: 'sync', user, after, limit }),
    history: (user, conv, before, limit) => call<Page>({ fn: 'history', user, conv, limit, ...(before !== undefined ? { before } : {}) }),
    ack: (user, device, seq) => call({ fn: 'ack', user, device, seq }),
    read: (s, conv, seq) => call({ fn: 'read', session: s, conv, seq }),
    unread: (user) => call<Unread>({ fn: 'unread', user }),
    sendGroup: (from, group, cid, body, lane) => call<SendResult>({ fn: 'gsend', from, group, cid, body }, lane),
    groupCall: (actor, op, group, members) => call<GroupInfo | undefined>({ fn: 'group', op, group, actor, members }),
    postGroup: (group, posts) => call<PostResult[]>({ fn: 'gpost', group, posts }),
    castGroup: (group, from, frame) => call<void>({ fn: 'gcast', group, from, frame }),
    perHome: (users, here, there) => many.run(users, here, there),
    remote: (peer, req, ms) => many.remote(peer, req, ms),
    socialOp: (user, req) => call<void>({ fn: 'social', user, req }),
    contacts: (user, after, limit) => call<ContactsPage>({ fn: 'contacts', user, limit, ...(after !== undefined ? { after } : {}) }),
    profiles: (viewer, users) => many.profiles(viewer, users),
    info: (viewer, users) => many.info(viewer, users),
    // A call like any other on the recipient's home: retried through ring changes and moves.
    admitAt: async (to, from, kind, epoch) => (await call<Refusal | null>({ fn: 'admit', user: to, from, kind, ...(epoch === undefined ? {} : { epoch }) })) ?? undefined,
    revokeEverywhere: (users) => many.revokeEverywhere(users),
    presence: (users, viewer) => many.presence(users, viewer),
    watch: (w, users) => many.watch(w, users, true),
    unwatch: (w, users) => many.watch(w, users, false),
    deliverRemote: (d) => deliveries.deliver(d),
    handle: (fromName, req) => server.handle(fromName, req),
  };
}
