// The client fuzzer's grammar: for every client op (docs/PROTOCOL.md, src/protocol/frames.ts), a
// frame with well-formed fields, then (mostly) mutated; plus random bytes, random JSON and whole-frame oddities.
import { deepText, mutate, objectText, PROTO_KEYS, randomJsonText, randomString } from '../helpers/fuzz.ts';
import type { Fields, Rng } from '../helpers/fuzz.ts';

export const OPS = [
  'login', 'ping', 'send', 'ack', 'sync', 'history', 'read', 'unread', 'presence', 'watch', 'unwatch',
  'group_create', 'group_add', 'group_remove', 'group_leave', 'group_info', 'typing', 'receipts',
] as const;

// Ids the fuzzer uses: its own users (never the bystanders'), and valid ids that are also
// property names of every JavaScript object.
const USERS = ['fz0', 'fz1', 'fz2', 'fz3', 'fz4', 'fz5', 'a.b@c-d', 'x'.repeat(64), ...PROTO_KEYS];
const GROUPS = ['fg0', 'fg1', 'fg2', '__proto__', 'constructor', 'prototype'];

export type ClientCase = {
  kind: string;
  /** A text frame, or bytes sent as a binary frame (or as a text frame that may not be UTF-8). */
  data: string | Buffer;
  binary: boolean;
};

const q = (v: unknown): string => JSON.stringify(v);
const user = (r: Rng): string => r.pick(USERS);
const group = (r: Rng): string => r.pick(GROUPS);
const nat = (r: Rng): string => String(r.chance(0.8) ? r.int(200) : r.pick([0, 2 ** 31, Number.MAX_SAFE_INTEGER]));
function conv(r: Rng): string {
  if (r.chance(0.4)) return `g:${group(r)}`;
  const [a, b] = [user(r), user(r)].sort();
  return `dm:${a}:${b}`;
}
const ids = (r: Rng, max: number): string => q(Array.from({ length: r.int(max + 1) }, () => user(r)));
const target = (r: Rng): Fields => (r.chance(0.6) ? [['to', q(user(r))]] : [['group', q(group(r))]]);

/** Well-formed fields of `op` (no op, no id). */
export function opFields(r: Rng, op: string, device: string): Fields {
  switch (op) {
    case 'login': {
      const f: Fields = r.chance(0.7) ? [['user', q(user(r))]] : [['token', q(r.chance(0.5) ? 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmejAifQ.AAAA' : randomString(r, 200))]];
      f.push(['device', q(device)]);
      if (r.chance(0.3)) f.push(['since', nat(r)]);
      return f;
    }
    case 'send':
      return [...target(r), ['cid', q(`c${r.int(1000)}`)], ['body', q(randomString(r, 300))]];
    case 'ack':
      return [['seq', nat(r)]];
    case 'sync':
      return [['after', nat(r)], ...(r.chance(0.5) ? ([['limit', String(r.range(1, 1000))]] as Fields) : [])];
    case 'history': {
      const f: Fields = [['conv', q(conv(r))]];
      if (r.chance(0.5)) f.push(['before', nat(r)]);
      if (r.chance(0.5)) f.push(['limit', String(r.range(1, 1000))]);
      return f;
    }
    case 'read':
      return [['conv', q(conv(r))], ['seq', nat(r)]];
    case 'presence':
    case 'watch':
    case 'unwatch':
      return [['users', ids(r, 6)]];
    case 'group_create':
    case 'group_add':
    case 'group_remove':
      return [['group', q(group(r))], ['members', ids(r, 4)]];
    case 'group_leave':
    case 'group_info':
      return [['group', q(group(r))]];
    case 'typing':
      return target(r);
    case 'receipts':
      return [['conv', q(conv(r))]];
    default:
      return [];
  }
}

/** An id for case `n` of a connection: unique on it, so that its one reply can be counted. */
function idText(r: Rng, n: number): string | undefined {
  const k = r.int(20);
  if (k < 8) return String(n);
  if (k < 14) return q(`q${n}`);
  if (k === 14) return q(`${r.pick(PROTO_KEYS)}#${n}`);
  if (k === 15) return q(`\ud800${n}`);
  if (k === 16) return String(n + 0.5);
  if (k === 17) return r.pick(['{"a":1}', '[1]', 'null', 'true', '1e999', q('x'.repeat(65))]); // invalid: answered with id null
  return undefined; // no id: no reply unless it is an error
}

/** One case: mostly a frame of the grammar, mutated 6 times in 10. */
export function clientCase(r: Rng, n: number, device: string, maxFrame: number): ClientCase {
  const k = r.int(100);
  if (k < 4) return { kind: 'random-bytes-binary', data: r.bytes(r.small(4000)), binary: true };
  if (k < 6) return { kind: 'random-bytes-text', data: r.bytes(r.small(2000)), binary: false };
  if (k < 12) return { kind: 'random-json', data: randomJsonText(r, 4), binary: false };
  if (k < 14) return { kind: 'deep-nesting', data: deepText(r, r.pick([1000, 10_000, 30_000])), binary: false };
  if (k < 15) return { kind: 'oversize', data: `{"op":"send","to":"fz1","cid":"big","body":"${'a'.repeat(maxFrame)}"}`, binary: false };
  if (k < 18) {
    // An op of the grammar with random fields.
    const f: Fields = [['op', q(r.pick(OPS))]];
    const id = idText(r, n);
    if (id !== undefined) f.push(['id', id]);
    for (let i = r.small(6); i > 0; i--) f.push([randomString(r, 10), randomJsonText(r, 2)]);
    return { kind: 'random-fields', data: objectText(f), binary: false };
  }
  const op = r.chance(0.03) ? r.pick(['Send', 'send ', 'login\u0000', '__proto__', 'constructor', 'toString', '', 'error', 'welcome']) : r.pick(OPS);
  const f: Fields = [['op', q(op)]];
  const id = idText(r, n);
  if (id !== undefined) f.push(['id', id]);
  f.push(...opFields(r, op, device));
  if (r.chance(0.4)) return { kind: `valid:${op}`, data: objectText(f), binary: false };
  const m = mutate(r, f);
  return { kind: `mutated:${op}`, data: m.text, binary: false };
}
