// Every client frame of docs/PROTOCOL.md as a discriminated union on `op`, and the one
// validator that turns untrusted JSON into them. The client SDK imports only this file.

export type ReqId = number | string;

export type ErrorCode =
  | 'bad_request' | 'unauthenticated' | 'forbidden' | 'not_found' | 'conflict'
  | 'too_large' | 'rate_limited' | 'unavailable' | 'internal';

// ---- requests (client -> node) ----
export type LoginReq = { op: 'login'; id?: ReqId; token?: string; user?: string; device?: string; since?: number; roster?: boolean };
export type PingReq = { op: 'ping'; id?: ReqId };
export type SendReq = { op: 'send'; id?: ReqId; to?: string; group?: string; cid: string; body: string };
export type AckReq = { op: 'ack'; id?: ReqId; seq: number };
export type SyncReq = { op: 'sync'; id?: ReqId; after: number; limit: number };
export type HistoryReq = { op: 'history'; id?: ReqId; conv: string; before?: number; limit: number };
export type ReadReq = { op: 'read'; id?: ReqId; conv: string; seq: number };
export type UnreadReq = { op: 'unread'; id?: ReqId };
export type PresenceReq = { op: 'presence'; id?: ReqId; users: string[] };
export type WatchReq = { op: 'watch'; id?: ReqId; users: string[] };
export type UnwatchReq = { op: 'unwatch'; id?: ReqId; users: string[] };
export type GroupCreateReq = { op: 'group_create'; id?: ReqId; group: string; members: string[] };
export type GroupAddReq = { op: 'group_add'; id?: ReqId; group: string; members: string[] };
export type GroupRemoveReq = { op: 'group_remove'; id?: ReqId; group: string; members: string[] };
export type GroupLeaveReq = { op: 'group_leave'; id?: ReqId; group: string };
export type GroupInfoReq = { op: 'group_info'; id?: ReqId; group: string };
export type TypingReq = { op: 'typing'; id?: ReqId; to?: string; group?: string };
export type ReceiptsReq = { op: 'receipts'; id?: ReqId; conv: string };
// ---- profiles, contacts, status (section 13 of docs/PROTOCOL.md) ----
/** A profile's fields as set: each replaces the stored one; `fields` replaces all custom fields. */
export type ProfileFields = { name?: string; avatar?: string; text?: string; fields?: Record<string, string | number | boolean> };
export type ProfileSetReq = { op: 'profile_set'; id?: ReqId; profile: ProfileFields };
export type ProfilesReq = { op: 'profiles'; id?: ReqId; users: string[] };
export type ContactOp = 'contact_request' | 'contact_accept' | 'contact_decline' | 'contact_remove' | 'follow' | 'unfollow' | 'block' | 'unblock';
export type ContactReq = { op: ContactOp; id?: ReqId; user: string; text?: string };
export type ContactListsReq = { op: 'contact_lists'; id?: ReqId; user: string; lists: string[] };
export type ContactsReq = { op: 'contacts'; id?: ReqId; after?: string; limit: number };
export type StatusValue = 'available' | 'away' | 'busy' | 'invisible';
export type StatusReq = { op: 'status'; id?: ReqId; status: StatusValue; text?: string };
export type Visibility = 'everyone' | 'contacts' | 'nobody';
export type PrivacySettings = { presence: Visibility; profile: Visibility; dm: 'everyone' | 'contacts' };
export type PrivacyReq = { op: 'privacy'; id?: ReqId } & Partial<PrivacySettings>;

export type Request =
  | LoginReq | PingReq | SendReq | AckReq | SyncReq | HistoryReq | ReadReq | UnreadReq
  | PresenceReq | WatchReq | UnwatchReq | GroupCreateReq | GroupAddReq | GroupRemoveReq
  | GroupLeaveReq | GroupInfoReq | TypingReq | ReceiptsReq
  | ProfileSetReq | ProfilesReq | ContactReq | ContactListsReq | ContactsReq | StatusReq | PrivacyReq;
export type Op = Request['op'];

// ---- replies and events (node -> client) ----
export type Entry = {
  seq: number; mid: string; conv: string; from: string; to?: string; group?: string; body: string; ts: number;
};
export type MsgEvent = { op: 'msg' } & Entry;
export type WelcomeReply = { op: 'welcome'; id?: ReqId; user: string; device: string; node: string; seq: number; acked: number };
export type PongReply = { op: 'pong'; id?: ReqId; ts: number };
export type OkReply = { op: 'ok'; id?: ReqId };
export type ErrorReply = { op: 'error'; id: ReqId | null; code: ErrorCode; message: string };
export type SentReply = { op: 'sent'; id?: ReqId; mid: string; seq: number; ts: number; dup?: true };
export type MsgsReply = { op: 'msgs'; id?: ReqId; msgs: Entry[]; more: boolean };
export type UnreadReply = { op: 'unread'; id?: ReqId; total: number; convs: Record<string, number> };
/** `status` and `text` (v1.1) for an online user who set a status. */
export type UserPresence = { online: true; devices: string[]; status?: StatusValue; text?: string } | { online: false; last_seen?: number };
export type PresenceReply = { op: 'presence'; id?: ReqId; users: Record<string, UserPresence> };
export type PresenceEvent = { op: 'presence'; user: string; online: boolean; status?: StatusValue; text?: string };
/** A profile as others see it; `version` grows with every change. */
export type Profile = { name: string; avatar: string; text: string; fields: Record<string, string | number | boolean>; version: number };
export type ProfilesReply = { op: 'profiles'; id?: ReqId; users: Record<string, Profile | null> };
export type ProfileEvent = { op: 'profile'; user: string; profile: Profile; version: number };
export type ContactState = 'friend' | 'requested' | 'pending' | 'none';
/** One contact as its owner sees it. `text`: the pending request's text (an extension);
 * `profile_version` and `presence` are left out when the contact hides them from the viewer. */
export type Contact = {
  user: string; state: ContactState; following: boolean; follows_me: boolean; blocked: boolean; lists: string[];
  text?: string; profile_version?: number; presence?: { online: boolean; status?: StatusValue; text?: string };
};
export type ContactEvent = { op: 'contact' } & Contact;
export type ContactsReply = { op: 'contacts'; id?: ReqId; contacts: Contact[]; more: boolean; next?: string };
export type RosterEvent = { op: 'roster'; contacts: Contact[]; more: boolean };
export type ReadEvent = { op: 'read'; conv: string; seq: number };
export type GoawayEvent = { op: 'goaway'; reason: 'replaced' | 'shutdown' | string; nodes?: string[] };
export type TypingEvent = { op: 'typing'; from: string; conv: string };
export type ReceiptEvent = { op: 'receipt'; conv: string; by: string; mid: string };
export type ReceiptsReply = { op: 'receipts'; id?: ReqId; conv: string; read: Record<string, string> };
/** `joined` (an extension): when each member joined, in ms. */
export type GroupReply = { op: 'group'; id?: ReqId; group: string; owner: string; members: string[]; joined?: Record<string, number> };

export type ServerFrame =
  | MsgEvent | WelcomeReply | PongReply | OkReply | ErrorReply | SentReply | MsgsReply | UnreadReply
  | PresenceReply | PresenceEvent | ReadEvent | GoawayEvent | TypingEvent | ReceiptEvent | ReceiptsReply
  | GroupReply | ProfilesReply | ProfileEvent | ContactEvent | ContactsReply | RosterEvent;

// ---- validation ----
export const ID_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;

export type ValidateLimits = { maxBody: number; maxUsers: number; maxMembers: number; maxProfileFields?: number };
export const DEFAULT_VALIDATE_LIMITS: ValidateLimits = { maxBody: 16384, maxUsers: 500, maxMembers: 10000, maxProfileFields: 2048 };
/** Section 13's fixed sizes (characters): profile name, avatar URL, profile and status text,
 * a contact request's text, list labels per contact and a label's length. */
export const PROFILE_LIMITS = { name: 64, avatar: 512, text: 140, requestText: 280, lists: 32, label: 64 } as const;
export const STATUSES: readonly StatusValue[] = ['available', 'away', 'busy', 'invisible'];
const VISIBILITY: readonly string[] = ['everyone', 'contacts', 'nobody'];
export const CONTACT_OPS: readonly ContactOp[] = ['contact_request', 'contact_accept', 'contact_decline', 'contact_remove', 'follow', 'unfollow', 'block', 'unblock'];

/** A string's length in UTF-8 bytes, as Buffer.byteLength counts it (a lone surrogate is 3), without
 * Node's Buffer: this file is part of the browser SDK too. */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export class FrameError extends Error {
  override name = 'FrameError';
  code: ErrorCode;
  id: ReqId | null;
  constructor(code: ErrorCode, message: string, id: ReqId | null) {
    super(message);
    this.code = code;
    this.id = id;
  }
}

export function isId(v: unknown): v is string {
  return typeof v === 'string' && ID_RE.test(v);
}

/** `dm:<a>:<b>` with a <= b, both ids, for a 1:1 conversation. */
export function dmConv(a: string, b: string): string {
  return a <= b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

/** Parses a conversation id; undefined when it is not one. */
export function parseConv(conv: unknown): { kind: 'dm'; a: string; b: string } | { kind: 'group'; group: string } | undefined {
  if (typeof conv !== 'string' || conv.length > 140) return undefined;
  if (conv.startsWith('g:')) {
    const group = conv.slice(2);
    return isId(group) ? { kind: 'group', group } : undefined;
  }
  const parts = conv.split(':');
  if (parts.length !== 3 || parts[0] !== 'dm') return undefined;
  const [, a, b] = parts as [string, string, string];
  return isId(a) && isId(b) && a <= b ? { kind: 'dm', a, b } : undefined;
}

const OPS = new Set<string>([
  'login', 'ping', 'send', 'ack', 'sync', 'history', 'read', 'unread', 'presence', 'watch', 'unwatch',
  'group_create', 'group_add', 'group_remove', 'group_leave', 'group_info', 'typing', 'receipts',
  'profile_set', 'profiles', 'contact_lists', 'contacts', 'status', 'privacy', ...CONTACT_OPS,
]);

function reqIdOf(o: Record<string, unknown>): ReqId | null {
  const id = o.id;
  if (typeof id === 'number' && Number.isFinite(id)) return id;
  if (typeof id === 'string' && id.length <= 64) return id;
  return null;
}

/**
 * Parses one text frame into a typed request. Throws FrameError (with the request's id when it
 * had a valid one) for anything docs/PROTOCOL.md calls bad_request or too_large.
 */
export function parseRequest(text: string, limits: ValidateLimits = DEFAULT_VALIDATE_LIMITS): Request {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FrameError('bad_request', 'frame is not valid JSON', null);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new FrameError('bad_request', 'frame must be a JSON object', null);
  }
  return validateRequest(raw as Record<string, unknown>, limits);
}

export function validateRequest(o: Record<string, unknown>, limits: ValidateLimits = DEFAULT_VALIDATE_LIMITS): Request {
  const id = reqIdOf(o);
  const bad = (message: string): never => {
    throw new FrameError('bad_request', message, id);
  };
  if ('id' in o && o.id !== undefined && id === null) bad('id must be a number or a string of at most 64 characters');
  if (typeof o.op !== 'string') bad('missing op');
  const op = o.op as string;
  if (!OPS.has(op)) bad(`unknown op '${op.slice(0, 40)}'`);

  const withId = <T extends object>(r: T): T => (id === null ? r : { ...r, id });
  const ident = (field: string, required: boolean): string | undefined => {
    const v = o[field];
    if (v === undefined) {
      if (required) bad(`missing ${field}`);
      return undefined;
    }
    if (!isId(v)) bad(`${field} must be 1 to 64 characters from A-Z a-z 0-9 _ . @ -`);
    return v as string;
  };
  const seqField = (field: string, required: boolean): number | undefined => {
    const v = o[field];
    if (v === undefined) {
      if (required) bad(`missing ${field}`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${field} must be a non-negative integer`);
    return v as number;
  };
  const limit = (): number => {
    const v = o.limit;
    if (v === undefined) return DEFAULT_LIMIT;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) bad('limit must be a positive integer');
    return Math.min(v as number, MAX_LIMIT);
  };
  const conv = (): string => {
    if (o.conv === undefined) bad('missing conv');
    if (!parseConv(o.conv)) bad('conv must be dm:<a>:<b> (a sorted before b) or g:<group>');
    return o.conv as string;
  };
  const idList = (field: string, max: number, allowEmpty: boolean): string[] => {
    const v = o[field];
    if (v === undefined) bad(`missing ${field}`);
    if (!Array.isArray(v)) bad(`${field} must be an array of ids`);
    const arr = v as unknown[];
    if (arr.length > max) throw new FrameError('too_large', `${field} may name at most ${max} ids`, id);
    if (!allowEmpty && arr.length === 0) bad(`${field} must not be empty`);
    for (const u of arr) if (!isId(u)) bad(`${field} must contain only ids (1 to 64 characters from A-Z a-z 0-9 _ . @ -)`);
    return arr as string[];
  };
  const target = (): { to?: string; group?: string } => {
    const to = ident('to', false);
    const group = ident('group', false);
    if ((to === undefined) === (group === undefined)) bad('exactly one of to and group is required');
    return to !== undefined ? { to } : { group: group as string };
  };

  switch (op) {
    case 'login': {
      const token = o.token;
      if (token !== undefined && (typeof token !== 'string' || token.length === 0 || token.length > 8192)) {
        bad('token must be a non-empty string');
      }
      const user = ident('user', false);
      if (token === undefined && user === undefined) bad('login needs token (or user in insecure mode)');
      const device = ident('device', false);
      const since = seqField('since', false);
      if (o.roster !== undefined && typeof o.roster !== 'boolean') bad('roster must be true or false');
      const r: LoginReq = { op: 'login' };
      if (o.roster === true) r.roster = true;
      if (token !== undefined) r.token = token as string;
      if (user !== undefined) r.user = user;
      if (device !== undefined) r.device = device;
      if (since !== undefined) r.since = since;
      return withId(r);
    }
    case 'ping':
      return withId({ op: 'ping' });
    case 'send': {
      const t = target();
      const cid = ident('cid', true) as string;
      if (typeof o.body !== 'string') bad('body must be a string');
      const body = o.body as string;
      if (body.length * 3 > limits.maxBody && utf8Bytes(body) > limits.maxBody) {
        throw new FrameError('too_large', `body is over ${limits.maxBody} bytes`, id);
      }
      return withId({ op: 'send', ...t, cid, body });
    }
    case 'ack':
      return withId({ op: 'ack', seq: seqField('seq', true) as number });
    case 'sync':
      return withId({ op: 'sync', after: seqField('after', false) ?? 0, limit: limit() });
    case 'history': {
      const c = conv();
      const before = seqField('before', false);
      const r: HistoryReq = { op: 'history', conv: c, limit: limit() };
      if (before !== undefined) r.before = before;
      return withId(r);
    }
    case 'read':
      return withId({ op: 'read', conv: conv(), seq: seqField('seq', true) as number });
    case 'unread':
      return withId({ op: 'unread' });
    case 'presence':
    case 'watch':
    case 'unwatch':
      return withId({ op, users: idList('users', limits.maxUsers, true) } as PresenceReq | WatchReq | UnwatchReq);
    case 'group_create':
    case 'group_add':
    case 'group_remove': {
      const group = ident('group', true) as string;
      const members = idList('members', limits.maxMembers, op === 'group_create'); // create alone is allowed
      return withId({ op, group, members } as GroupCreateReq | GroupAddReq | GroupRemoveReq);
    }
    case 'group_leave':
    case 'group_info':
      return withId({ op, group: ident('group', true) as string } as GroupLeaveReq | GroupInfoReq);
    case 'typing':
      return withId({ op: 'typing', ...target() });
    case 'receipts':
      return withId({ op: 'receipts', conv: conv() });
    case 'profile_set':
      return withId({ op: 'profile_set', profile: profileFields(o.profile, limits.maxProfileFields ?? 2048, bad, (m) => {
        throw new FrameError('too_large', m, id);
      }) });
    case 'profiles':
      return withId({ op: 'profiles', users: idList('users', limits.maxUsers, true) });
    case 'contact_lists': {
      const user = ident('user', true) as string;
      const v = o.lists;
      if (!Array.isArray(v) || !v.every((l) => typeof l === 'string' && l.length > 0 && l.length <= PROFILE_LIMITS.label)) {
        bad(`lists must be an array of labels of 1 to ${PROFILE_LIMITS.label} characters`);
      }
      const lists = [...new Set(v as string[])];
      if (lists.length > PROFILE_LIMITS.lists) throw new FrameError('too_large', `a contact is in at most ${PROFILE_LIMITS.lists} lists`, id);
      return withId({ op: 'contact_lists', user, lists });
    }
    case 'contacts': {
      const r: ContactsReq = { op: 'contacts', limit: o.limit === undefined ? 500 : limit() };
      if (o.after !== undefined) {
        if (typeof o.after !== 'string' || (o.after !== '' && !isId(o.after))) bad('after must be the next cursor of a contacts reply');
        if (o.after !== '') r.after = o.after as string;
      }
      return withId(r);
    }
    case 'status': {
      if (!STATUSES.includes(o.status as StatusValue)) bad(`status must be one of ${STATUSES.join(', ')}`);
      const r: StatusReq = { op: 'status', status: o.status as StatusValue };
      if (o.text !== undefined) r.text = shortText(o.text, 'text', PROFILE_LIMITS.text, bad);
      return withId(r);
    }
    case 'privacy': {
      const r: PrivacyReq = { op: 'privacy' };
      for (const f of ['presence', 'profile'] as const) {
        if (o[f] === undefined) continue;
        if (!VISIBILITY.includes(o[f] as string)) bad(`${f} must be everyone, contacts or nobody`);
        r[f] = o[f] as Visibility;
      }
      if (o.dm !== undefined) {
        if (o.dm !== 'everyone' && o.dm !== 'contacts') bad('dm must be everyone or contacts');
        r.dm = o.dm as 'everyone' | 'contacts';
      }
      return withId(r);
    }
  }
  if ((CONTACT_OPS as readonly string[]).includes(op)) {
    const r: ContactReq = { op: op as ContactOp, user: ident('user', true) as string };
    if (op === 'contact_request' && o.text !== undefined) r.text = shortText(o.text, 'text', PROFILE_LIMITS.requestText, bad);
    return withId(r);
  }
  return bad(`unknown op '${op}'`);
}

function shortText(v: unknown, field: string, max: number, bad: (m: string) => never): string {
  if (typeof v !== 'string') bad(`${field} must be a string`);
  if ((v as string).length > max) bad(`${field} is at most ${max} characters`);
  return v as string;
}

/** The fields of a profile_set: each named one checked against PROFILE_LIMITS; `fields` a flat
 * object of strings, numbers and booleans of at most `maxFields` bytes as JSON. */
export function profileFields(v: unknown, maxFields: number, bad: (m: string) => never, tooLarge: (m: string) => never): ProfileFields {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad('profile must be an object');
  const o = v as Record<string, unknown>;
  const p: ProfileFields = {};
  if (o.name !== undefined) p.name = shortText(o.name, 'profile.name', PROFILE_LIMITS.name, bad);
  if (o.avatar !== undefined) {
    const a = shortText(o.avatar, 'profile.avatar', PROFILE_LIMITS.avatar, bad);
    if (a !== '' && !/^(https?:\/\/|data:image\/)[^\s]+$/.test(a)) bad('profile.avatar must be an http(s) URL (or empty)');
    p.avatar = a;
  }
  if (o.text !== undefined) p.text = shortText(o.text, 'profile.text', PROFILE_LIMITS.text, bad);
  if (o.fields !== undefined) {
    const f = o.fields;
    if (f === null || typeof f !== 'object' || Array.isArray(f)) bad('profile.fields must be an object');
    const out: Record<string, string | number | boolean> = {};
    for (const [k, x] of Object.entries(f as Record<string, unknown>)) {
      if (k.length === 0 || k.length > 64) bad('profile.fields names are 1 to 64 characters');
      if (!(typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)))) bad('profile.fields values are strings, numbers or booleans');
      Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
    }
    if (utf8Bytes(JSON.stringify(out)) > maxFields) tooLarge(`profile.fields is over ${maxFields} bytes as JSON`);
    p.fields = out;
  }
  return p;
}
