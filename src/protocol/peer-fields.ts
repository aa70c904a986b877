// Readers for untrusted peer input, shared by the peer validators: each checks one field and
// throws PeerFrameError naming it. Peer input is checked like client input, never trusted.
import { isId, parseConv } from './frames.ts';
import type { Delivery, Session, Watcher } from './peer.ts';

export class PeerFrameError extends Error {
  override name = 'PeerFrameError';
}

export const MAX_ITEMS = 100_000;
/** The body limit of a group log's events (dkey e: or s:): a membership event lists up to
 * GROUP_EVENT_MEMBERS ids, so its body may exceed the message body limit. */
export const EVENT_BODY_MAX = 256 * 1024;

export type O = Record<string, unknown>;
export const bad = (m: string): never => {
  throw new PeerFrameError(m);
};
export const obj = (v: unknown, what: string): O => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as O) : bad(`${what} must be an object`));
export const id = (v: unknown, what: string): string => (isId(v) ? v : bad(`${what} must be an id`));
export const str = (v: unknown, what: string, max = 1 << 20): string => (typeof v === 'string' && v.length <= max ? v : bad(`${what} must be a string`));
export const nat = (v: unknown, what: string): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${what} must be a non-negative integer`));
export const arr = (v: unknown, what: string): unknown[] => (Array.isArray(v) && v.length <= MAX_ITEMS ? v : bad(`${what} must be an array`));
export const conv = (v: unknown): string => (parseConv(v) ? (v as string) : bad('conv must be a conversation id'));
/** A store key: a user id, or `g:<group>` for a group's log. */
export const isKey = (v: unknown): v is string => isId(v) || (typeof v === 'string' && (v.startsWith('g:') || v.startsWith('s:')) && isId(v.slice(2)));
export const key = (v: unknown, what: string): string => (isKey(v) ? v : bad(`${what} must be a user, g:<group> or s:<user>`));
export const ids = (v: unknown, what: string): string[] => arr(v, what).map((u) => id(u, what));
// Node names and connection ids are ids too (config restricts names to a subset of id characters).
export const session = (v: unknown): Session => {
  const o = obj(v, 'session');
  return { user: id(o.user, 'user'), device: id(o.device, 'device'), gateway: id(o.gateway, 'gateway'), conn: id(o.conn, 'conn') };
};
export const watcher = (v: unknown): Watcher => {
  const o = obj(v, 'watcher');
  return { gateway: id(o.gateway, 'gateway'), conn: id(o.conn, 'conn'), ...(o.user !== undefined ? { user: id(o.user, 'user') } : {}) };
};
export const bool = (v: unknown, what: string): boolean => (typeof v === 'boolean' ? v : bad(`${what} must be a boolean`));

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
