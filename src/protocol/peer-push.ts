// The frames a home pushes to a connection on another node's gateway, and the one-way peer
// messages that carry them: rebuilt from their typed fields only.
import { PROFILE_LIMITS, profileFields, STATUSES } from './frames.ts';
import type { Contact, ContactState, MsgEvent, Profile, ProfileEvent, ServerFrame, StatusValue } from './frames.ts';
import { arr, bad, bool, conv, EVENT_BODY_MAX, id, nat, obj, str } from './peer-fields.ts';
import type { O } from './peer-fields.ts';
import type { PeerOneWay } from './peer.ts';

/** The events a home pushes to a connection on another node's gateway (replies never cross):
 * rebuilt from their typed fields only, so a peer cannot hand a client anything else. */
export const PUSH_OPS = ['msg', 'presence', 'read', 'goaway', 'typing', 'receipt', 'profile', 'contact'] as const;
const MAX_GOAWAY_NODES = 64;

export function profileFrame(f: O): ProfileEvent {
  const p = obj(f.profile, 'profile');
  const fields = profileFields({ name: p.name, avatar: p.avatar, text: p.text, fields: p.fields }, 64 * 1024, bad, bad);
  const version = nat(f.version, 'version');
  const profile: Profile = { name: fields.name ?? '', avatar: fields.avatar ?? '', text: fields.text ?? '', fields: fields.fields ?? {}, version };
  return { op: 'profile', user: id(f.user, 'user'), profile, version };
}

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
