// Validators of peer requests (calls on a key's home and the other node-to-node requests) and of
// their replies; throw PeerFrameError.
import { CONTACT_OPS, validateRequest } from './frames.ts';
import type { Request, ServerFrame } from './frames.ts';
import { arr, bad, conv, id, ids, key, nat, obj, session, str, validateDelivery, watcher } from './peer-fields.ts';
import type { O } from './peer-fields.ts';
import { validatePage } from './peer-pages.ts';
import { profileFrame } from './peer-push.ts';
import type { AdmitItem, CastFrame, FailCode, FanItem, GroupOp, HomeCall, LaneMark, PeerReply, PeerRequest, SocialCall } from './peer.ts';

const FAIL_CODES: FailCode[] = ['not_owner', 'unavailable', 'forbidden', 'bad_request', 'internal', 'not_found', 'conflict', 'too_large', 'rate_limited'];

/** A handoff's `prove`: at most MAX_PROOFS [user, seq, digest] triples; a `holding` request asks
 * for at most as many users. */
export const MAX_PROOFS = 10_000;
function proofs(v: unknown): Array<[string, number, string]> {
  const a = arr(v, 'prove');
  if (a.length > MAX_PROOFS) bad(`prove holds more than ${MAX_PROOFS} users`);
  return a.map((x) => {
    const t = arr(x, 'proof');
    if (t.length !== 3) bad('a proof is [user, seq, digest]');
    return [key(t[0], 'proof user'), nat(t[1], 'proof seq'), str(t[2], 'proof digest', 64)];
  });
}

function laneMark(v: unknown): LaneMark {
  const o = obj(v, 'at');
  const m: LaneMark = { lane: str(o.lane, 'at.lane', 64), epoch: nat(o.epoch, 'at.epoch') };
  if (o.n !== undefined) m.n = nat(o.n, 'at.n');
  if (o.after !== undefined) {
    if (m.n === undefined) bad('at.after needs at.n');
    m.after = nat(o.after, 'at.after');
    if (m.after >= m.n!) bad('at.after must come before at.n');
  }
  return m;
}

function homeCall(v: unknown, maxBody: number): HomeCall {
  const o = obj(v, 'call');
  switch (o.fn) {
    case 'send':
    case 'gsend': {
      const body = str(o.body, 'body');
      if (Buffer.byteLength(body, 'utf8') > maxBody) bad('body over the limit');
      const at = o.at === undefined ? {} : { at: laneMark(o.at) };
      if (o.fn === 'gsend') return { fn: 'gsend', from: id(o.from, 'from'), group: id(o.group, 'group'), cid: id(o.cid, 'cid'), body, ...at };
      return { fn: 'send', from: id(o.from, 'from'), to: id(o.to, 'to'), cid: id(o.cid, 'cid'), body, ...at };
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
      return { fn: 'admit', user: id(o.user, 'user'), from: id(o.from, 'from'), kind: o.kind as AdmitItem['kind'], ...(o.epoch === undefined ? {} : { epoch: nat(o.epoch, 'epoch') }) };
    case 'contacts': {
      const c: HomeCall = { fn: 'contacts', user: id(o.user, 'user'), limit: Math.min(Math.max(nat(o.limit, 'limit'), 1), 1000) };
      if (o.after !== undefined) c.after = id(o.after, 'after');
      return c;
    }
  }
  return bad(`unknown call '${String(o.fn).slice(0, 40)}'`);
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
    case 'holding': {
      const users = arr(o.users, 'users');
      if (users.length > MAX_PROOFS) bad(`holding asks for more than ${MAX_PROOFS} users`);
      return { t: 'holding', users: users.map((u) => key(u, 'user')) };
    }
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
        ...(o.prove !== undefined ? { prove: proofs(o.prove) } : {}),
      };
    }
  }
  return bad(`unknown request '${String(o.t).slice(0, 40)}'`);
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
