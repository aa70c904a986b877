// Every peer message as a discriminated union on `t`, and the one validator for what arrives
// from other nodes: peer input is checked like client input, never trusted.
import { CONTACT_OPS, isId, parseConv, PROFILE_LIMITS, profileFields, STATUSES, validateRequest } from './frames.ts';
import type { Contact, ContactOp, ContactState, MsgEvent, Profile, ProfileEvent, Request, ServerFrame, StatusValue } from './frames.ts';

export type Session = { user: string; device: string; gateway: string; conn: string };
export type Watcher = { gateway: string; conn: string; user?: string };
/** A timeline entry as it travels to a recipient's home (its seq is assigned there). */
export type Delivery = { user: string; mid: string; conv: string; from: string; to?: string; group?: string; body: string; ts: number };
/** One group message for the members one home node holds: each gets a copy (its seq assigned
 * there); the sender's own copy is keyed by `cid`, which makes it the sender's send-dedup entry. */
export type FanItem = { mid: string; conv: string; from: string; group: string; body: string; ts: number; users: string[]; cid?: string };
/** A group send as the sender's home hands it to the group's home (the mid is the sender home's). */
export type GroupPost = { from: string; cid: string; mid: string; body: string; ts: number };
export type GroupOp = 'create' | 'add' | 'remove' | 'leave' | 'info' | 'members';
/** What a group home relays to the other members' online devices. */
export type CastFrame = { kind: 'typing' } | { kind: 'receipt'; mid: string };
/** The answer of a group home to one post: the message's mid, or the client error for it. */
export type PostResult = { mid: string } | { code: 'not_found' | 'forbidden' | 'rate_limited' | 'unavailable'; message: string };

/** Calls on a key's home. `rv` is the caller's ring version, `hops` how often it was forwarded. */
export type HomeCall =
  | { fn: 'send'; from: string; to: string; cid: string; body: string }
  | { fn: 'gsend'; from: string; group: string; cid: string; body: string }
  /** On the group's home (key `g:<group>`): a membership op or a query by `actor`. */
  | { fn: 'group'; op: GroupOp; group: string; actor: string; members: string[] }
  /** On the group's home: posts from one sender's home, in the order its senders made them. */
  | { fn: 'gpost'; group: string; posts: GroupPost[] }
  /** On the group's home: relay a typing notice or a receipt of `from` to the other members. */
  | { fn: 'gcast'; group: string; from: string; frame: CastFrame }
  | { fn: 'login'; session: Session }
  | { fn: 'logout'; session: Session }
  | { fn: 'sync'; user: string; after: number; limit: number }
  | { fn: 'history'; user: string; conv: string; before?: number; limit: number }
  | { fn: 'ack'; user: string; device: string; seq: number }
  | { fn: 'read'; session: Session; conv: string; seq: number }
  | { fn: 'unread'; user: string }
  /** On the user's home: a change of the user's profile, status, privacy or contacts. */
  | { fn: 'social'; user: string; req: SocialCall }
  /** On the user's home: a page of the user's contacts. */
  | { fn: 'contacts'; user: string; after?: string; limit: number }
  /** On `user`'s home: whether it takes a direct message, typing, a request or a follow from `from`. */
  | { fn: 'admit'; user: string; from: string; kind: AdmitItem['kind'] };
/** The client requests `fn: 'social'` carries (validated as a client's). */
export type SocialCall = Extract<Request, { op: 'profile_set' | 'status' | 'privacy' | 'contact_lists' | ContactOp }>;
export type AdmitItem = { kind: 'dm' | 'typing' | 'request' | 'follow' };

export type PeerRequest =
  | { t: 'call'; key: string; rv: string; hops: number; call: HomeCall }
  | { t: 'deliver'; rv: string; items: Delivery[] }
  /** A group home hands group messages to the members this node is home of. */
  | { t: 'fanout'; rv: string; items: FanItem[] }
  /** Push a typing notice or receipt to the online devices of these users (their home). */
  | { t: 'relay'; users: string[]; frame: ServerFrame }
  /** The newest mid each of these users has read in `conv` (their home answers). */
  | { t: 'readmarks'; conv: string; users: string[] }
  | { t: 'presence'; users: string[]; viewer?: string }
  /** Profile versions and presence of users homed at the receiver, as `viewer` may see them. */
  | { t: 'cinfo'; viewer: string; users: string[] }
  | { t: 'profiles'; viewer: string; users: string[] }
  /** Forget admissions cached for these users (one of them blocked someone or got stricter). */
  | { t: 'revoke'; users: string[] }
  | { t: 'watch'; watcher: Watcher; users: string[]; on: boolean }
  | { t: 'register'; sessions: Session[] }
  /** A gateway's heartbeat: renews its sessions on these connections; the reply lists the
   * connections the home holds no session for (the gateway registers those again). */
  | { t: 'renew'; gateway: string; conns: string[] }
  | { t: 'join'; entries: unknown[] }
  | { t: 'probe'; target: string }
  | { t: 'ping' }
  /** The member table, without joining it (a newcomer copies data before it joins). */
  | { t: 'members' }
  /** A newcomer `target` copies the users it will own in the ring of `members` from their home:
   * one export page after `after` (seqs it holds); with `freeze`, the home first stops writing
   * those users (until its ring includes the target, or a timeout) so the copy is final. */
  | { t: 'handoff'; target: string; members: string[]; from: string; to: string | null; after: Record<string, number>; freeze: boolean; limit: number;
      /** Resumes in the middle of a large snapshot: users from `at.user` on (not after `from`),
       * leaving out the first `at.rows` rows of its snapshot (the part's `next`). */
      at?: { user: string; rows: number } }
  /** A leaving node pushes one export page of users the receiver will own once it is gone. */
  | { t: 'absorb'; page: Page }
  /** A home sends its users' new entries and state to one of their replicas. */
  | { t: 'replicate'; page: Page };

export type PeerOneWay =
  | { t: 'gossip'; entries: unknown[] }
  | { t: 'push'; conn: string; frame: ServerFrame }
  /** One message pushed to many connections of the receiving gateway, each with its own seq. */
  | { t: 'pushmsg'; msg: Omit<MsgEvent, 'op' | 'seq'>; to: [string, number][] };

/** Replies: `done` carries the call's value; `fail` a client error code the caller may pass on. */
export type PeerReply =
  | { t: 'done'; value?: unknown }
  | { t: 'fail'; code: FailCode; message: string };
export type FailCode = 'not_owner' | 'unavailable' | 'forbidden' | 'bad_request' | 'internal' | 'not_found' | 'conflict' | 'too_large' | 'rate_limited';
const FAIL_CODES: FailCode[] = ['not_owner', 'unavailable', 'forbidden', 'bad_request', 'internal', 'not_found', 'conflict', 'too_large', 'rate_limited'];

export class PeerFrameError extends Error {
  override name = 'PeerFrameError';
}

const MAX_ITEMS = 100_000;
/** JSON characters one batch, page or request between nodes may take: a quarter of the peer
 * frame limit (4 MiB), so that escaping and multi-byte text still fit. */
export const PEER_BUDGET_CHARS = 1 << 20;
/** Splits `items` into runs in order whose estimated JSON characters (`chars` each) stay within
 * `budget`, at most `maxItems` and at least one item per run: a request listing them then fits
 * a peer frame and its validation (MAX_ITEMS per array). */
export function chunkByChars<T>(items: T[], chars: (t: T) => number, budget: number = PEER_BUDGET_CHARS, maxItems = 10_000): T[][] {
  const out: T[][] = [];
  let run: T[] = [];
  let n = 0;
  for (const it of items) {
    const c = chars(it);
    if (run.length > 0 && (n + c > budget || run.length >= maxItems)) {
      out.push(run);
      run = [];
      n = 0;
    }
    run.push(it);
    n += c;
  }
  if (run.length > 0) out.push(run);
  return out;
}
/** Estimated JSON characters of a timeline entry (or a message) with this body. */
export const entryWireChars = (body: string): number => 256 + 2 * Buffer.byteLength(body);
/** A group log's membership event lists up to GROUP_EVENT_MEMBERS ids: its body may exceed the
 * message body limit. */
export const GROUP_EVENT_MEMBERS = 2000;
const EVENT_BODY_MAX = 256 * 1024;

type O = Record<string, unknown>;
const bad = (m: string): never => {
  throw new PeerFrameError(m);
};
const obj = (v: unknown, what: string): O => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as O) : bad(`${what} must be an object`));
const id = (v: unknown, what: string): string => (isId(v) ? v : bad(`${what} must be an id`));
const str = (v: unknown, what: string, max = 1 << 20): string => (typeof v === 'string' && v.length <= max ? v : bad(`${what} must be a string`));
const nat = (v: unknown, what: string): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${what} must be a non-negative integer`));
const arr = (v: unknown, what: string): unknown[] => (Array.isArray(v) && v.length <= MAX_ITEMS ? v : bad(`${what} must be an array`));
const conv = (v: unknown): string => (parseConv(v) ? (v as string) : bad('conv must be a conversation id'));
/** A store key: a user id, or `g:<group>` for a group's log. */
export const isKey = (v: unknown): v is string => isId(v) || (typeof v === 'string' && (v.startsWith('g:') || v.startsWith('s:')) && isId(v.slice(2)));
const key = (v: unknown, what: string): string => (isKey(v) ? v : bad(`${what} must be a user, g:<group> or s:<user>`));
const ids = (v: unknown, what: string): string[] => arr(v, what).map((u) => id(u, what));
// Node names and connection ids are ids too (config restricts names to a subset of id characters).
const session = (v: unknown): Session => {
  const o = obj(v, 'session');
  return { user: id(o.user, 'user'), device: id(o.device, 'device'), gateway: id(o.gateway, 'gateway'), conn: id(o.conn, 'conn') };
};
const watcher = (v: unknown): Watcher => {
  const o = obj(v, 'watcher');
  return { gateway: id(o.gateway, 'gateway'), conn: id(o.conn, 'conn'), ...(o.user !== undefined ? { user: id(o.user, 'user') } : {}) };
};

export function validateDelivery(v: unknown, maxBody: number, anyKey = false): Delivery {
  const o = obj(v, 'delivery');
  const d: Delivery = {
    user: anyKey ? key(o.user, 'user') : id(o.user, 'user'), mid: str(o.mid, 'mid', 64), conv: conv(o.conv), from: id(o.from, 'from'),
    body: str(o.body, 'body'), ts: nat(o.ts, 'ts'),
  };
  if (Buffer.byteLength(d.body, 'utf8') > maxBody) bad('body over the limit');
  if (o.to !== undefined) d.to = id(o.to, 'to');
  if (o.group !== undefined) d.group = id(o.group, 'group');
  return d;
}

function homeCall(v: unknown, maxBody: number): HomeCall {
  const o = obj(v, 'call');
  switch (o.fn) {
    case 'send':
    case 'gsend': {
      const body = str(o.body, 'body');
      if (Buffer.byteLength(body, 'utf8') > maxBody) bad('body over the limit');
      if (o.fn === 'gsend') return { fn: 'gsend', from: id(o.from, 'from'), group: id(o.group, 'group'), cid: id(o.cid, 'cid'), body };
      return { fn: 'send', from: id(o.from, 'from'), to: id(o.to, 'to'), cid: id(o.cid, 'cid'), body };
    }
    case 'group': {
      const ops: GroupOp[] = ['create', 'add', 'remove', 'leave', 'info', 'members'];
      if (!ops.includes(o.op as GroupOp)) bad('unknown group op');
      return { fn: 'group', op: o.op as GroupOp, group: id(o.group, 'group'), actor: id(o.actor, 'actor'), members: ids(o.members, 'members') };
    }
    case 'gpost':
      return {
        fn: 'gpost', group: id(o.group, 'group'), posts: arr(o.posts, 'posts').map((x) => {
          const p = obj(x, 'post');
          const body = str(p.body, 'body');
          if (Buffer.byteLength(body, 'utf8') > maxBody) bad('body over the limit');
          return { from: id(p.from, 'from'), cid: id(p.cid, 'cid'), mid: str(p.mid, 'mid', 64), body, ts: nat(p.ts, 'ts') };
        }),
      };
    case 'gcast': {
      const f = obj(o.frame, 'frame');
      const frame: CastFrame = f.kind === 'typing' ? { kind: 'typing' }
        : f.kind === 'receipt' ? { kind: 'receipt', mid: str(f.mid, 'mid', 64) } : bad('unknown cast frame');
      return { fn: 'gcast', group: id(o.group, 'group'), from: id(o.from, 'from'), frame };
    }
    case 'login':
    case 'logout':
      return { fn: o.fn, session: session(o.session) };
    case 'sync':
      return { fn: 'sync', user: id(o.user, 'user'), after: nat(o.after, 'after'), limit: Math.min(nat(o.limit, 'limit'), 1000) };
    case 'history': {
      const c: HomeCall = { fn: 'history', user: id(o.user, 'user'), conv: conv(o.conv), limit: Math.min(nat(o.limit, 'limit'), 1000) };
      if (o.before !== undefined) c.before = nat(o.before, 'before');
      return c;
    }
    case 'ack':
      return { fn: 'ack', user: id(o.user, 'user'), device: id(o.device, 'device'), seq: nat(o.seq, 'seq') };
    case 'read':
      return { fn: 'read', session: session(o.session), conv: conv(o.conv), seq: nat(o.seq, 'seq') };
    case 'unread':
      return { fn: 'unread', user: id(o.user, 'user') };
    case 'social': {
      let req: Request;
      try {
        req = validateRequest(obj(o.req, 'req'), { maxBody, maxUsers: 1, maxMembers: 1, maxProfileFields: 64 * 1024 });
      } catch (e) {
        return bad(`social request: ${(e as Error).message}`);
      }
      if (!['profile_set', 'status', 'privacy', 'contact_lists', ...CONTACT_OPS].includes(req.op)) bad('not a social op');
      return { fn: 'social', user: id(o.user, 'user'), req: req as SocialCall };
    }
    case 'admit':
      if (!['dm', 'typing', 'request', 'follow'].includes(o.kind as string)) bad('unknown admit kind');
      return { fn: 'admit', user: id(o.user, 'user'), from: id(o.from, 'from'), kind: o.kind as AdmitItem['kind'] };
    case 'contacts': {
      const c: HomeCall = { fn: 'contacts', user: id(o.user, 'user'), limit: Math.min(Math.max(nat(o.limit, 'limit'), 1), 1000) };
      if (o.after !== undefined) c.after = id(o.after, 'after');
      return c;
    }
  }
  return bad(`unknown call '${String(o.fn).slice(0, 40)}'`);
}

/** An export page (see the store's ExportPage), as it travels between nodes in a handoff. */
export type PageSnapshot = {
  user: string; seq: number; lastSeen?: number;
  convs: { conv: string; lastSeq: number; ocum: number; readSeq: number; readCum: number }[];
  cursors: { device: string; acked: number }[];
  /** Outbox rows (copies of the user's messages not yet with `dest`'s home; `item` a Delivery)
   * and rows handed over since. */
  outbox?: { mid: string; dest: string; item: unknown }[];
  cleared?: { mid: string; dest: string }[];
  /** A part of a larger snapshot: the row where the next part starts. */
  next?: number;
};
export type PageEntry = Delivery & { seq: number; dkey: string; ocum: number };
export type Page = { users: PageSnapshot[]; entries: PageEntry[] };
/** A page on the wire: entries that share a mid (the copies of one group message) may travel as
 * one `copies` item, the message once and per copy its user, seq, dedup key and ocum. */
export type WirePage = Page & { copies?: { msg: Omit<Delivery, 'user'>; rows: [string, number, string, number][] }[] };

/** Packs the copies of each message that has more than one in the page. */
export function packPage(page: Page): WirePage {
  const byMid = new Map<string, PageEntry[]>();
  for (const e of page.entries) {
    const l = byMid.get(e.mid);
    if (l) l.push(e);
    else byMid.set(e.mid, [e]);
  }
  const entries: PageEntry[] = [];
  const copies: NonNullable<WirePage['copies']> = [];
  for (const l of byMid.values()) {
    if (l.length === 1) {
      entries.push(l[0]!);
      continue;
    }
    const { user: _u, seq: _s, dkey: _d, ocum: _o, ...msg } = l[0]!;
    copies.push({ msg, rows: l.map((e) => [e.user, e.seq, e.dkey, e.ocum]) });
  }
  return copies.length ? { users: page.users, entries, copies } : page;
}

/** Validates an export page from a peer (a handoff reply or an absorb request); throws PeerFrameError. */
export function validatePage(v: unknown, maxBody: number): Page {
  const o = obj(v, 'page');
  const users = arr(o.users, 'page.users').map((x): PageSnapshot => {
    const u = obj(x, 'snapshot');
    const snap: PageSnapshot = {
      user: key(u.user, 'snapshot.user'), seq: nat(u.seq, 'snapshot.seq'),
      convs: arr(u.convs, 'snapshot.convs').map((y) => {
        const cv = obj(y, 'conv state');
        return { conv: conv(cv.conv), lastSeq: nat(cv.lastSeq, 'lastSeq'), ocum: nat(cv.ocum, 'ocum'), readSeq: nat(cv.readSeq, 'readSeq'), readCum: nat(cv.readCum, 'readCum') };
      }),
      cursors: arr(u.cursors, 'snapshot.cursors').map((y) => {
        const cu = obj(y, 'cursor');
        return { device: id(cu.device, 'device'), acked: nat(cu.acked, 'acked') };
      }),
    };
    if (u.lastSeen !== undefined) snap.lastSeen = nat(u.lastSeen, 'lastSeen');
    if (u.outbox !== undefined) {
      snap.outbox = arr(u.outbox, 'snapshot.outbox').map((y) => {
        const o = obj(y, 'outbox row');
        const item = validateDelivery(o.item, maxBody, true);
        const row = { mid: str(o.mid, 'mid', 64), dest: key(o.dest, 'dest'), item };
        if (item.mid !== row.mid || item.user !== row.dest || (item.from !== snap.user && `s:${item.from}` !== snap.user)) bad('an outbox row is a copy of the user\'s message for dest');
        return row;
      });
    }
    if (u.cleared !== undefined) {
      snap.cleared = arr(u.cleared, 'snapshot.cleared').map((y) => {
        const o = obj(y, 'cleared row');
        return { mid: str(o.mid, 'mid', 64), dest: key(o.dest, 'dest') };
      });
    }
    if (u.next !== undefined) snap.next = nat(u.next, 'next');
    return snap;
  });
  const entry = (x: unknown): PageEntry => {
    const e = obj(x, 'entry');
    const dkey = str(e.dkey, 'dkey', 140);
    if (!/^[cmes]:/.test(dkey)) bad('dkey must start with c:, m:, e: or s:');
    return { ...validateDelivery(e, /^[es]:/.test(dkey) ? EVENT_BODY_MAX : maxBody, true), seq: nat(e.seq, 'seq'), dkey, ocum: nat(e.ocum, 'ocum') };
  };
  const entries = arr(o.entries, 'page.entries').map(entry);
  if (o.copies !== undefined) {
    let n = entries.length;
    for (const x of arr(o.copies, 'page.copies')) {
      const c = obj(x, 'copies');
      const rows = arr(c.rows, 'copies.rows');
      if ((n += rows.length) > MAX_ITEMS) bad('page has too many entries');
      const m = obj(c.msg, 'copies.msg');
      for (const r of rows) {
        const row = arr(r, 'copy');
        entries.push(entry({ ...m, user: row[0], seq: row[1], dkey: row[2], ocum: row[3] }));
      }
    }
  }
  return { users, entries };
}

/** Validates a peer request; throws PeerFrameError. */
export function parsePeerRequest(v: unknown, maxBody: number): PeerRequest {
  const o = obj(v, 'request');
  switch (o.t) {
    case 'call':
      return { t: 'call', key: key(o.key, 'key'), rv: str(o.rv, 'rv', 64), hops: nat(o.hops, 'hops'), call: homeCall(o.call, maxBody) };
    case 'deliver':
      return { t: 'deliver', rv: str(o.rv, 'rv', 64), items: arr(o.items, 'items').map((d) => validateDelivery(d, maxBody, true)) };
    case 'fanout':
      return {
        t: 'fanout', rv: str(o.rv, 'rv', 64), items: arr(o.items, 'items').map((x): FanItem => {
          const f = obj(x, 'fan item');
          const d = validateDelivery({ ...f, user: f.from }, maxBody);
          if (d.group === undefined || d.conv !== `g:${d.group}`) bad('a fan item is a group message');
          const item: FanItem = { mid: d.mid, conv: d.conv, from: d.from, group: d.group!, body: d.body, ts: d.ts, users: ids(f.users, 'users') };
          if (f.cid !== undefined) item.cid = id(f.cid, 'cid');
          return item;
        }),
      };
    case 'relay': {
      const f = obj(o.frame, 'frame');
      let frame: ServerFrame;
      if (f.op === 'typing') frame = { op: 'typing', from: id(f.from, 'from'), conv: conv(f.conv) };
      else if (f.op === 'receipt') frame = { op: 'receipt', conv: conv(f.conv), by: id(f.by, 'by'), mid: str(f.mid, 'mid', 64) };
      else if (f.op === 'profile') frame = profileFrame(f);
      else return bad('a relayed frame is typing, receipt or profile');
      return { t: 'relay', users: ids(o.users, 'users'), frame };
    }
    case 'readmarks':
      return { t: 'readmarks', conv: conv(o.conv), users: ids(o.users, 'users') };
    case 'presence':
      return { t: 'presence', users: arr(o.users, 'users').map((u) => id(u, 'user')), ...(o.viewer !== undefined ? { viewer: id(o.viewer, 'viewer') } : {}) };
    case 'cinfo':
    case 'profiles':
      return { t: o.t, viewer: id(o.viewer, 'viewer'), users: ids(o.users, 'users') };
    case 'revoke':
      return { t: 'revoke', users: ids(o.users, 'users') };
    case 'watch':
      if (typeof o.on !== 'boolean') bad('on must be a boolean');
      return { t: 'watch', watcher: watcher(o.watcher), users: arr(o.users, 'users').map((u) => id(u, 'user')), on: o.on as boolean };
    case 'register':
      return { t: 'register', sessions: arr(o.sessions, 'sessions').map(session) };
    case 'renew':
      return { t: 'renew', gateway: id(o.gateway, 'gateway'), conns: ids(o.conns, 'conns') };
    case 'join':
      return { t: 'join', entries: arr(o.entries, 'entries') };
    case 'probe':
      return { t: 'probe', target: id(o.target, 'target') };
    case 'ping':
      return { t: 'ping' };
    case 'members':
      return { t: 'members' };
    case 'absorb':
      return { t: 'absorb', page: validatePage(o.page, maxBody) };
    case 'replicate':
      return { t: 'replicate', page: validatePage(o.page, maxBody) };
    case 'handoff': {
      const after: Record<string, number> = {};
      for (const [u, n] of Object.entries(obj(o.after, 'after'))) after[key(u, 'after user')] = nat(n, 'after seq');
      if (typeof o.freeze !== 'boolean') bad('freeze must be a boolean');
      return {
        t: 'handoff', target: id(o.target, 'target'), members: arr(o.members, 'members').map((m) => id(m, 'member')),
        from: str(o.from, 'from', 64), to: o.to === null ? null : id(o.to, 'to'),
        after, freeze: o.freeze as boolean, limit: Math.min(Math.max(nat(o.limit, 'limit'), 1), 10_000),
        ...(o.at !== undefined ? { at: { user: key(obj(o.at, 'at').user, 'at.user'), rows: nat((o.at as O).rows, 'at.rows') } } : {}),
      };
    }
  }
  return bad(`unknown request '${String(o.t).slice(0, 40)}'`);
}

/** The events a home pushes to a connection on another node's gateway (replies never cross):
 * rebuilt from their typed fields only, so a peer cannot hand a client anything else. */
export const PUSH_OPS = ['msg', 'presence', 'read', 'goaway', 'typing', 'receipt', 'profile', 'contact'] as const;
const MAX_GOAWAY_NODES = 64;

function profileFrame(f: O): ProfileEvent {
  const p = obj(f.profile, 'profile');
  const fields = profileFields({ name: p.name, avatar: p.avatar, text: p.text, fields: p.fields }, 64 * 1024, bad, bad);
  const version = nat(f.version, 'version');
  const profile: Profile = { name: fields.name ?? '', avatar: fields.avatar ?? '', text: fields.text ?? '', fields: fields.fields ?? {}, version };
  return { op: 'profile', user: id(f.user, 'user'), profile, version };
}

const bool = (v: unknown, what: string): boolean => (typeof v === 'boolean' ? v : bad(`${what} must be a boolean`));
function presenceView(v: unknown): { online: boolean; status?: StatusValue; text?: string } {
  const p = obj(v, 'presence');
  const out: { online: boolean; status?: StatusValue; text?: string } = { online: bool(p.online, 'online') };
  if (p.status !== undefined) out.status = STATUSES.includes(p.status as StatusValue) ? p.status as StatusValue : bad('unknown status');
  if (p.text !== undefined) out.text = str(p.text, 'text', PROFILE_LIMITS.text);
  return out;
}

export function contactOf(v: unknown): Contact {
  const f = obj(v, 'contact');
  if (!['friend', 'requested', 'pending', 'none'].includes(f.state as string)) bad('unknown contact state');
  const k: Contact = {
    user: id(f.user, 'user'), state: f.state as ContactState, following: bool(f.following, 'following'), follows_me: bool(f.follows_me, 'follows_me'),
    blocked: bool(f.blocked, 'blocked'), lists: arr(f.lists, 'lists').slice(0, PROFILE_LIMITS.lists).map((l) => str(l, 'list', PROFILE_LIMITS.label)),
  };
  if (f.text !== undefined) k.text = str(f.text, 'text', PROFILE_LIMITS.requestText);
  if (f.profile_version !== undefined) k.profile_version = nat(f.profile_version, 'profile_version');
  if (f.presence !== undefined) k.presence = presenceView(f.presence);
  return k;
}

export function pushFrame(v: unknown): ServerFrame {
  const f = obj(v, 'frame');
  switch (f.op) {
    case 'msg': {
      // The gateway orders pushes by seq. Group log events may carry long member lists.
      const m: MsgEvent = {
        op: 'msg', seq: nat(f.seq, 'frame.seq'), mid: str(f.mid, 'mid', 64), conv: conv(f.conv), from: id(f.from, 'from'),
        body: str(f.body, 'body', EVENT_BODY_MAX), ts: nat(f.ts, 'ts'),
      };
      if (f.to !== undefined) m.to = id(f.to, 'to');
      if (f.group !== undefined) m.group = id(f.group, 'group');
      return m;
    }
    case 'presence':
      return { op: 'presence', user: id(f.user, 'user'), ...presenceView(f) };
    case 'profile':
      return profileFrame(f);
    case 'contact':
      return { op: 'contact', ...contactOf(f) };
    case 'read':
      return { op: 'read', conv: conv(f.conv), seq: nat(f.seq, 'seq') };
    case 'goaway': {
      const g: ServerFrame = { op: 'goaway', reason: str(f.reason, 'reason', 64) };
      if (f.nodes !== undefined) {
        const nodes = arr(f.nodes, 'nodes');
        if (nodes.length > MAX_GOAWAY_NODES) bad('too many nodes');
        g.nodes = nodes.map((n) => str(n, 'node', 512));
      }
      return g;
    }
    case 'typing':
      return { op: 'typing', from: id(f.from, 'from'), conv: conv(f.conv) };
    case 'receipt':
      return { op: 'receipt', conv: conv(f.conv), by: id(f.by, 'by'), mid: str(f.mid, 'mid', 64) };
  }
  return bad(`frame.op must be one of ${PUSH_OPS.join(', ')}`);
}

/** Validates a one-way peer message; throws PeerFrameError. */
export function parsePeerOneWay(v: unknown): PeerOneWay {
  const o = obj(v, 'message');
  switch (o.t) {
    case 'gossip':
      return { t: 'gossip', entries: arr(o.entries, 'entries') };
    case 'push':
      return { t: 'push', conn: id(o.conn, 'conn'), frame: pushFrame(o.frame) };
    case 'pushmsg': {
      const m = obj(o.msg, 'msg');
      const msg: Omit<MsgEvent, 'op' | 'seq'> = { mid: str(m.mid, 'mid', 64), conv: conv(m.conv), from: id(m.from, 'from'), body: str(m.body, 'body'), ts: nat(m.ts, 'ts') };
      if (m.to !== undefined) msg.to = id(m.to, 'to');
      if (m.group !== undefined) msg.group = id(m.group, 'group');
      const to = arr(o.to, 'to').map((x): [string, number] => {
        const pair = arr(x, 'to pair');
        return [id(pair[0], 'conn'), nat(pair[1], 'seq')];
      });
      return { t: 'pushmsg', msg, to };
    }
  }
  return bad(`unknown message '${String(o.t).slice(0, 40)}'`);
}

/** Validates a reply to one of our requests. */
export function parsePeerReply(v: unknown): PeerReply {
  const o = obj(v, 'reply');
  if (o.t === 'done') return { t: 'done', value: o.value };
  if (o.t === 'fail') {
    if (!FAIL_CODES.includes(o.code as FailCode)) bad('unknown fail code');
    return { t: 'fail', code: o.code as FailCode, message: str(o.message, 'message', 1000) };
  }
  return bad('reply must be done or fail');
}
