// What the client validator, the peer validator and the SDK share: ids, conversation ids, the
// fixed limits of client frames, UTF-8 sizes and FrameError. No Node APIs: browsers load it too.
import type { ContactOp, ErrorCode, ReqId, StatusValue, ValidateLimits } from './frames.ts';

export const ID_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;

export const DEFAULT_VALIDATE_LIMITS: ValidateLimits = { maxBody: 16384, maxUsers: 500, maxMembers: 10000, maxProfileFields: 2048 };
/** Section 13's fixed sizes (characters): profile name, avatar URL, profile and status text,
 * a contact request's text, list labels per contact and a label's length. */
export const PROFILE_LIMITS = { name: 64, avatar: 512, text: 140, requestText: 280, lists: 32, label: 64 } as const;
export const STATUSES: readonly StatusValue[] = ['available', 'away', 'busy', 'invisible'];
export const VISIBILITY: readonly string[] = ['everyone', 'contacts', 'nobody'];
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
