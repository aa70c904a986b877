// validateRequest: the one validator that turns an untrusted client frame into a typed request,
// as a table of one validator per op over a shared reader of the frame's fields.
import { CONTACT_OPS, DEFAULT_LIMIT, DEFAULT_VALIDATE_LIMITS, FrameError, isId, MAX_LIMIT, parseConv, PROFILE_LIMITS, STATUSES, utf8Bytes, VISIBILITY } from './common.ts';
import type {
  ContactOp, ContactReq, ContactsReq, GroupAddReq, GroupCreateReq, GroupInfoReq, GroupLeaveReq, GroupRemoveReq, HistoryReq, LoginReq,
  PresenceReq, PrivacyReq, ProfileFields, ReqId, Request, StatusReq, StatusValue, UnwatchReq, ValidateLimits, Visibility, WatchReq,
} from './frames.ts';

function reqIdOf(o: Record<string, unknown>): ReqId | null {
  const id = o.id;
  if (typeof id === 'number' && Number.isFinite(id)) return id;
  if (typeof id === 'string' && id.length <= 64) return id;
  return null;
}

/** One frame's fields as the op validators read them; every refusal carries the frame's id. */
type Fields = {
  o: Record<string, unknown>;
  limits: ValidateLimits;
  bad(message: string): never;
  tooLarge(message: string): never;
  ident(field: string, required: boolean): string | undefined;
  seqField(field: string, required: boolean): number | undefined;
  limit(): number;
  conv(): string;
  idList(field: string, max: number, allowEmpty: boolean): string[];
  target(): { to?: string; group?: string };
};

function fieldsOf(o: Record<string, unknown>, id: ReqId | null, limits: ValidateLimits): Fields {
  const bad = (message: string): never => {
    throw new FrameError('bad_request', message, id);
  };
  const tooLarge = (message: string): never => {
    throw new FrameError('too_large', message, id);
  };
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
    if (arr.length > max) tooLarge(`${field} may name at most ${max} ids`);
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
  return { o, limits, bad, tooLarge, ident, seqField, limit, conv, idList, target };
}

/** Validates the fields of one op (the frame's id is added by validateRequest). */
type OpValidator = (f: Fields, op: string) => Request;

function login({ o, bad, ident, seqField }: Fields): Request {
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
  return r;
}

function send({ o, limits, bad, tooLarge, ident, target }: Fields): Request {
  const t = target();
  const cid = ident('cid', true) as string;
  if (typeof o.body !== 'string') bad('body must be a string');
  const body = o.body as string;
  if (body.length * 3 > limits.maxBody && utf8Bytes(body) > limits.maxBody) tooLarge(`body is over ${limits.maxBody} bytes`);
  return { op: 'send', ...t, cid, body };
}

function history({ seqField, limit, conv }: Fields): Request {
  const c = conv();
  const before = seqField('before', false);
  const r: HistoryReq = { op: 'history', conv: c, limit: limit() };
  if (before !== undefined) r.before = before;
  return r;
}

function groupMembers({ ident, idList, limits }: Fields, op: string): Request {
  const group = ident('group', true) as string;
  const members = idList('members', limits.maxMembers, op === 'group_create'); // create alone is allowed
  return { op, group, members } as GroupCreateReq | GroupAddReq | GroupRemoveReq;
}

function contactLists({ o, bad, tooLarge, ident }: Fields): Request {
  const user = ident('user', true) as string;
  const v = o.lists;
  if (!Array.isArray(v) || !v.every((l) => typeof l === 'string' && l.length > 0 && l.length <= PROFILE_LIMITS.label)) {
    bad(`lists must be an array of labels of 1 to ${PROFILE_LIMITS.label} characters`);
  }
  const lists = [...new Set(v as string[])];
  if (lists.length > PROFILE_LIMITS.lists) tooLarge(`a contact is in at most ${PROFILE_LIMITS.lists} lists`);
  return { op: 'contact_lists', user, lists };
}

function contacts({ o, bad, limit }: Fields): Request {
  const r: ContactsReq = { op: 'contacts', limit: o.limit === undefined ? 500 : limit() };
  if (o.after !== undefined) {
    if (typeof o.after !== 'string' || (o.after !== '' && !isId(o.after))) bad('after must be the next cursor of a contacts reply');
    if (o.after !== '') r.after = o.after as string;
  }
  return r;
}

function status({ o, bad }: Fields): Request {
  if (!STATUSES.includes(o.status as StatusValue)) bad(`status must be one of ${STATUSES.join(', ')}`);
  const r: StatusReq = { op: 'status', status: o.status as StatusValue };
  if (o.text !== undefined) r.text = shortText(o.text, 'text', PROFILE_LIMITS.text, bad);
  return r;
}

function privacy({ o, bad }: Fields): Request {
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
  return r;
}

function contactOp({ o, bad, ident }: Fields, op: string): Request {
  const r: ContactReq = { op: op as ContactOp, user: ident('user', true) as string };
  if (op === 'contact_request' && o.text !== undefined) r.text = shortText(o.text, 'text', PROFILE_LIMITS.requestText, bad);
  return r;
}

const users = ({ idList, limits }: Fields, op: string): Request => ({ op, users: idList('users', limits.maxUsers, true) } as PresenceReq | WatchReq | UnwatchReq);
const group = ({ ident }: Fields, op: string): Request => ({ op, group: ident('group', true) as string } as GroupLeaveReq | GroupInfoReq);

/** Every op a client may send; an op missing here is refused as unknown. */
const VALIDATORS = new Map<string, OpValidator>([
  ['login', login],
  ['ping', () => ({ op: 'ping' })],
  ['send', send],
  ['ack', ({ seqField }) => ({ op: 'ack', seq: seqField('seq', true) as number })],
  ['sync', ({ seqField, limit }) => ({ op: 'sync', after: seqField('after', false) ?? 0, limit: limit() })],
  ['history', history],
  ['read', ({ conv, seqField }) => ({ op: 'read', conv: conv(), seq: seqField('seq', true) as number })],
  ['unread', () => ({ op: 'unread' })],
  ['presence', users],
  ['watch', users],
  ['unwatch', users],
  ['group_create', groupMembers],
  ['group_add', groupMembers],
  ['group_remove', groupMembers],
  ['group_leave', group],
  ['group_info', group],
  ['typing', ({ target }) => ({ op: 'typing', ...target() })],
  ['receipts', ({ conv }) => ({ op: 'receipts', conv: conv() })],
  ['profile_set', ({ o, limits, bad, tooLarge }) => ({ op: 'profile_set', profile: profileFields(o.profile, limits.maxProfileFields ?? 2048, bad, tooLarge) })],
  ['profiles', ({ idList, limits }) => ({ op: 'profiles', users: idList('users', limits.maxUsers, true) })],
  ['contact_lists', contactLists],
  ['contacts', contacts],
  ['status', status],
  ['privacy', privacy],
  ...CONTACT_OPS.map((op): [string, OpValidator] => [op, contactOp]),
]);

export function validateRequest(o: Record<string, unknown>, limits: ValidateLimits = DEFAULT_VALIDATE_LIMITS): Request {
  const id = reqIdOf(o);
  const f = fieldsOf(o, id, limits);
  if ('id' in o && o.id !== undefined && id === null) f.bad('id must be a number or a string of at most 64 characters');
  if (typeof o.op !== 'string') f.bad('missing op');
  const op = o.op as string;
  const validator = VALIDATORS.get(op);
  if (validator === undefined) return f.bad(`unknown op '${op.slice(0, 40)}'`);
  const r = validator(f, op);
  return id === null ? r : { ...r, id };
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
