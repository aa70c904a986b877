// Every client frame of docs/PROTOCOL.md as a discriminated union on `op`, and the one
// validator that turns untrusted JSON into them (written in validate.ts, re-exported here with
// the ids and limits of common.ts). The client SDK imports only this file.

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

// ---- validation (common.ts: ids and limits; validate.ts: the validator, one function per op) ----
export type ValidateLimits = { maxBody: number; maxUsers: number; maxMembers: number; maxProfileFields?: number };
export {
  CONTACT_OPS, DEFAULT_LIMIT, DEFAULT_VALIDATE_LIMITS, dmConv, FrameError, ID_RE, isId, MAX_LIMIT, parseConv, PROFILE_LIMITS, STATUSES, utf8Bytes,
} from './common.ts';
export { profileFields, validateRequest } from './validate.ts';
import { DEFAULT_VALIDATE_LIMITS, FrameError } from './common.ts';
import { validateRequest } from './validate.ts';

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
