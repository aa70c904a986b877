// The peer fuzzer's grammar: every request and one-way message of src/protocol/peer.ts with
// well-formed fields, then (mostly) mutated, in envelopes that are themselves sometimes wrong;
// plus raw frames: random bytes, length prefixes past the 4 MiB limit, truncated frames.
//
// Kept out on purpose (they are attacks on authorization, not on parsing, and the adversarial
// suite covers them): ids of real users (only the fuzzer's own users are named, so a valid
// absorb or deliver touches only them), alive membership entries (a valid join or gossip of an
// unknown alive node is a join), and handoff with freeze:true (it pauses the writes of every
// user the named ring would move).
import * as lp from 'it-length-prefixed';
import { mutate, objectText, PROTO_KEYS, randomJsonText, randomString } from '../helpers/fuzz.ts';
import type { Fields, Rng } from '../helpers/fuzz.ts';

export const REQUESTS = ['call', 'deliver', 'fanout', 'relay', 'readmarks', 'presence', 'watch', 'register', 'renew', 'join', 'probe', 'ping', 'members', 'handoff', 'absorb', 'holding', 'replicate'] as const;
export const ONE_WAYS = ['gossip', 'push', 'pushmsg'] as const;
const CALLS = ['send', 'gsend', 'group', 'gpost', 'gcast', 'login', 'logout', 'sync', 'history', 'ack', 'read', 'unread'] as const;

const USERS = ['fz0', 'fz1', 'fz2', 'fz3', 'a.b@c-d', ...PROTO_KEYS];
const GROUPS = ['fg0', 'fg1', '__proto__', 'constructor'];

export type PeerCtx = {
  /** The name the fuzzing host has (or claims) in the cluster. */
  self: string;
  /** Connection ids on the target that belong to the fuzzer's own victims (pushes go there). */
  conns: string[];
};

const q = (v: unknown): string => JSON.stringify(v);
const nat = (r: Rng): number => (r.chance(0.8) ? r.int(300) : r.pick([0, 2 ** 31, Number.MAX_SAFE_INTEGER]));
const user = (r: Rng): string => r.pick(USERS);
const group = (r: Rng): string => r.pick(GROUPS);
const users = (r: Rng, max = 5): string[] => Array.from({ length: r.int(max + 1) }, () => user(r));
function conv(r: Rng): string {
  if (r.chance(0.4)) return `g:${group(r)}`;
  const [a, b] = [user(r), user(r)].sort();
  return `dm:${a}:${b}`;
}
const mid = (r: Rng): string => `m${r.int(1e9).toString(36)}`;
const body = (r: Rng): string => randomString(r, 200);

function delivery(r: Rng): Record<string, unknown> {
  const c = conv(r);
  const d: Record<string, unknown> = { user: user(r), mid: mid(r), conv: c, from: user(r), body: body(r), ts: Date.now() };
  if (c.startsWith('g:')) d.group = c.slice(2);
  else d.to = c.split(':')[2];
  return d;
}

function session(r: Rng, ctx: PeerCtx): Record<string, unknown> {
  return { user: user(r), device: r.pick(['d1', 'default', '__proto__']), gateway: r.chance(0.8) ? ctx.self : 'n9', conn: r.pick([...ctx.conns, 'fzc0']) };
}

function page(r: Rng): Record<string, unknown> {
  const snaps = Array.from({ length: r.int(3) }, () => ({
    user: user(r), seq: nat(r), convs: Array.from({ length: r.int(3) }, () => ({ conv: conv(r), lastSeq: nat(r), ocum: nat(r), readSeq: nat(r), readCum: nat(r) })),
    cursors: [{ device: 'd1', acked: nat(r) }],
  }));
  const entries = Array.from({ length: r.int(4) }, () => ({ ...delivery(r), seq: 1 + r.int(50), dkey: `${r.pick(['c', 'm', 'e'])}:${r.int(1e6)}`, ocum: nat(r) }));
  const p: Record<string, unknown> = { users: snaps, entries };
  if (r.chance(0.2)) p.copies = [{ msg: { ...delivery(r), user: undefined }, rows: [[user(r), 1 + r.int(50), `m:${r.int(1e6)}`, nat(r)]] }];
  return p;
}

function homeCall(r: Rng, ctx: PeerCtx): Record<string, unknown> {
  const fn = r.pick(CALLS);
  switch (fn) {
    case 'send': return { fn, from: user(r), to: user(r), cid: `c${r.int(1000)}`, body: body(r) };
    case 'gsend': return { fn, from: user(r), group: group(r), cid: `c${r.int(1000)}`, body: body(r) };
    case 'group': return { fn, op: r.pick(['create', 'add', 'remove', 'leave', 'info', 'members']), group: group(r), actor: user(r), members: users(r) };
    case 'gpost': return { fn, group: group(r), posts: Array.from({ length: r.int(3) }, () => ({ from: user(r), cid: `c${r.int(1000)}`, mid: mid(r), body: body(r), ts: Date.now() })) };
    case 'gcast': return { fn, group: group(r), from: user(r), frame: r.chance(0.5) ? { kind: 'typing' } : { kind: 'receipt', mid: mid(r) } };
    case 'login': case 'logout': return { fn, session: session(r, ctx) };
    case 'sync': return { fn, user: user(r), after: nat(r), limit: 1 + r.int(1000) };
    case 'history': return { fn, user: user(r), conv: conv(r), limit: 1 + r.int(1000), ...(r.chance(0.5) ? { before: nat(r) } : {}) };
    case 'ack': return { fn, user: user(r), device: 'd1', seq: nat(r) };
    case 'read': return { fn, session: session(r, ctx), conv: conv(r), seq: nat(r) };
    default: return { fn: 'unread', user: user(r) };
  }
}

/** Membership entries the target must not take as a live node: dead or leaving fuzz names, or malformed. */
function entries(r: Rng): unknown[] {
  return Array.from({ length: r.int(4) }, () => {
    const e: Record<string, unknown> = { name: `fzn${r.int(5)}`, peer: '12D3KooWFakeFakeFake', addrs: ['/ip4/127.0.0.1/tcp/1'], url: 'ws://127.0.0.1:1/ws', incarnation: nat(r), heartbeat: nat(r), status: r.pick(['dead', 'leaving']) };
    if (r.chance(0.5)) e[r.pick(Object.keys(e))] = r.pick([null, -1, 1e308, '__proto__', [], {}]);
    return e;
  });
}

/** A well-formed request or one-way message of type t. */
export function peerMessage(r: Rng, t: string, ctx: PeerCtx): Record<string, unknown> {
  const rv = r.pick(['0', 'abc', '']);
  switch (t) {
    case 'call': {
      const call = homeCall(r, ctx);
      const key = call.fn === 'group' || call.fn === 'gpost' || call.fn === 'gcast' ? `g:${call.group}` : ((call.from ?? call.user ?? (call.session as { user?: string } | undefined)?.user) as string);
      return { t, key, rv, hops: r.pick([0, 0, 1, 2]), call };
    }
    case 'deliver': return { t, rv, items: Array.from({ length: r.int(4) }, () => delivery(r)) };
    case 'fanout': {
      const g = group(r);
      return { t, rv, items: [{ mid: mid(r), conv: `g:${g}`, from: user(r), group: g, body: body(r), ts: Date.now(), users: users(r), ...(r.chance(0.3) ? { cid: 'c1' } : {}) }] };
    }
    case 'relay': return { t, users: users(r), frame: r.chance(0.5) ? { op: 'typing', from: user(r), conv: conv(r) } : { op: 'receipt', conv: conv(r), by: user(r), mid: mid(r) } };
    case 'readmarks': return { t, conv: conv(r), users: users(r) };
    case 'presence': return { t, users: users(r) };
    case 'watch': return { t, watcher: { gateway: ctx.self, conn: r.pick(ctx.conns) }, users: users(r), on: r.chance(0.5) };
    case 'register': return { t, sessions: Array.from({ length: r.int(3) }, () => session(r, ctx)) };
    case 'renew': return { t, gateway: ctx.self, conns: ctx.conns.slice(0, r.int(3)) };
    case 'join': case 'gossip': return { t, entries: entries(r) };
    case 'probe': return { t, target: r.pick(['n1', 'n3', 'fzn0', ctx.self]) };
    case 'handoff': return { t, target: `fzn${r.int(3)}`, members: ['n1', `fzn${r.int(3)}`], from: '', to: null, after: Object.fromEntries(users(r, 2).map((u) => [u, nat(r)])), freeze: false, limit: 1 + r.int(100) };
    case 'absorb': case 'replicate': return { t, page: page(r) };
    case 'holding': return { t, users: users(r) };
    case 'push': return { t, conn: r.pick(ctx.conns), frame: r.chance(0.5) ? { op: 'msg', seq: nat(r), mid: mid(r), conv: conv(r), from: user(r), body: body(r), ts: Date.now() } : { op: r.pick(['typing', 'presence', 'receipt', 'ok', 'nonsense']), from: user(r) } };
    case 'pushmsg': return { t, msg: { mid: mid(r), conv: 'dm:fz0:fz1', from: 'fz0', to: 'fz1', body: body(r), ts: Date.now() }, to: [[r.pick(ctx.conns), nat(r)]] };
    default: return { t };
  }
}

/** Fields of a message in key order, for the mutators (undefined values dropped). */
const fieldsOf = (m: Record<string, unknown>): Fields => Object.entries(m).filter(([, v]) => v !== undefined).map(([k, v]) => [k, q(v)]);

/** A message text: valid 3 times in 10, else mutated (fields of its own, or of a nested object). */
function messageText(r: Rng, t: string, ctx: PeerCtx): { text: string; kind: string } {
  const m = peerMessage(r, t, ctx);
  if (r.chance(0.3)) return { text: q(m), kind: `valid:${t}` };
  // Mutate the top level, or one nested object (call, page, frame, session…).
  const nested = Object.entries(m).filter(([, v]) => v !== null && typeof v === 'object' && !Array.isArray(v));
  if (nested.length && r.chance(0.5)) {
    const [k, v] = r.pick(nested);
    const inner = mutate(r, fieldsOf(v as Record<string, unknown>)).text;
    return { text: objectText(fieldsOf(m).map(([key, val]) => [key, key === k ? inner : val])), kind: `mutated:${t}.${k}` };
  }
  return { text: mutate(r, fieldsOf(m)).text, kind: `mutated:${t}` };
}

export type PeerCase =
  /** `ids`: the requests in a frame the target must accept (valid JSON, valid envelopes), each
   * to be answered exactly once; empty for a frame that aborts the stream. */
  | { kind: string; frame: Uint8Array; ids: number[]; valid: boolean }
  /** Raw bytes on the stream (no length prefix of ours), then what to do with the stream. */
  | { kind: string; raw: Uint8Array; then: 'reset' | 'close' | 'keep' }
  | { kind: 'open-reset'; streams: number };

const lpFrame = (text: string): Uint8Array => lp.encode.single(Buffer.from(text, 'utf8')).subarray();

/** Varint of n (unsigned LEB128), as lp writes lengths. */
function varint(n: bigint): number[] {
  const out: number[] = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) b |= 0x80;
    out.push(b);
  } while (n > 0n);
  return out;
}

/** One case. `nextId` numbers the requests (so answers to them can be told apart). */
export function peerCase(r: Rng, ctx: PeerCtx, nextId: () => number): PeerCase {
  const k = r.int(100);
  if (k < 62) {
    // One frame of 1-4 envelopes, mostly requests.
    const envs: string[] = [];
    const kinds: string[] = [];
    const ids: number[] = [];
    for (let i = r.chance(0.8) ? 1 : r.range(2, 4); i > 0; i--) {
      const oneWay = r.chance(0.25);
      const { text, kind } = messageText(r, oneWay ? r.pick(ONE_WAYS) : r.pick(REQUESTS), ctx);
      kinds.push(kind);
      if (oneWay) envs.push(`{"k":"m","m":${text}}`);
      else {
        ids.push(nextId());
        envs.push(`{"k":"q","id":${ids.at(-1)},"m":${text}}`);
      }
    }
    const text = `[${envs.join(',')}]`;
    let parses = true;
    try {
      JSON.parse(text);
    } catch {
      parses = false; // a mutation broke the JSON: the whole frame is invalid
    }
    return { kind: kinds.join('+'), frame: lpFrame(text), ids: parses ? ids : [], valid: parses };
  }
  if (k < 80) {
    // A wrong envelope (the stream is aborted: a fresh one follows).
    const m = q(peerMessage(r, r.pick(REQUESTS), ctx));
    const env = r.pick([
      () => `{"k":"q","id":${r.pick(['-1', '1.5', '9007199254740993', '"1"', 'null', '1e308'])},"m":${m}}`,
      () => `{"k":"q","id":${nextId()}}`,
      () => `{"k":"q","id":${nextId()},"m":${m},"x":1}`,
      () => `{"k":"${r.pick(['x', 'Q', '', '__proto__'])}","id":1,"m":${m}}`,
      () => `{"k":"r","id":${r.int(1000)},"m":{"t":"done","value":${randomJsonText(r, 2)}}}`,
      () => `{"k":"e","id":${r.int(1000)},"message":${q(randomString(r, 100))}}`,
      () => `{"k":"e","id":1,"message":7}`,
      () => `{"__proto__":{"k":"m"},"k":"m","m":${m}}`,
      () => randomJsonText(r, 3),
      () => m,
    ])();
    const frame = r.chance(0.8) ? `[${env}]` : r.pick([env, `[${env}`, '[]', '{}', 'null', '"x"', `[${'['.repeat(10_000)}${']'.repeat(10_000)}]`]);
    return { kind: 'bad-envelope', frame: lpFrame(frame), ids: [], valid: false };
  }
  if (k < 87) return { kind: 'random-frame', frame: lp.encode.single(r.bytes(r.small(5000))).subarray(), ids: [], valid: false };
  if (k < 90) return { kind: 'invalid-utf8-frame', frame: Uint8Array.from([...varint(4n), 0x5b, 0xff, 0xfe, 0x5d]), ids: [], valid: false };
  if (k < 95) {
    // A length prefix past the limit, or one that never ends, then a few bytes.
    const prefix = r.pick([
      () => varint(BigInt(4 * 1024 * 1024 + 1)), () => varint(2n ** 32n), () => varint(2n ** 62n), () => varint(2n ** 70n),
      () => Array.from({ length: 12 }, () => 0xff), () => [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ])();
    return { kind: 'oversize-prefix', raw: Uint8Array.from([...prefix, ...r.bytes(r.small(100))]), then: r.pick(['reset', 'close', 'keep']) };
  }
  if (k < 98) {
    // A frame cut short, then the stream ends.
    const whole = lpFrame(q([{ k: 'q', id: nextId(), m: peerMessage(r, r.pick(REQUESTS), ctx) }]));
    return { kind: 'truncated', raw: whole.subarray(0, 1 + r.int(whole.length - 1)), then: r.pick(['reset', 'close']) };
  }
  return { kind: 'open-reset', streams: r.pick([1, 5, 50, 300]) };
}
