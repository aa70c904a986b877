// The fuzzers' toolkit: a small seeded PRNG (one stream per case, so a case is the same whatever
// ran before it), the run's seed and time budget from the environment, and generators of hostile
// JSON text (weird numbers, lone surrogates, `__proto__` keys, deep nesting, long strings).
//
// npm test runs each fuzzer with a fixed seed for a short budget; `npm run fuzz` (test/fuzz/run.ts)
// sets IM_FUZZ_SEED=random and a longer IM_FUZZ_SECONDS. IM_FUZZ_SEED=<n> replays a run.
import { randomInt } from 'node:crypto';

/** sfc32: fast, tiny, good enough for test inputs; never for anything secret. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number, stream = 0) {
    this.#a = 0x9e3779b9;
    this.#b = seed >>> 0;
    this.#c = (Math.floor(seed / 2 ** 32) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
    this.#d = stream >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A float in [0, 1). */
  next(): number {
    let [a, b, c, d] = [this.#a, this.#b, this.#c, this.#d];
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
    return (t >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }

  /** An int with a bias towards small values (lengths, counts). */
  small(max: number): number {
    return Math.min(max, Math.floor(max ** this.next()));
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export type FuzzRun = {
  seed: number;
  /** Milliseconds this fuzzer may run. */
  budgetMs: number;
  /** True under `npm run fuzz` (random seed or IM_FUZZ_SEED given): longer, and logs more. */
  long: boolean;
  /** The case's own random stream: case i of a seed is the same whatever ran before it. */
  rng(caseNo: number): Rng;
  /** The command that replays this run of `file`. */
  replay(file: string): string;
};

/**
 * This fuzzer's seed and budget. `shortMs` is its share of npm test's fixed-seed budget (about
 * 20 s for all fuzzers); IM_FUZZ_SECONDS overrides it per fuzzer.
 */
export function fuzzRun(fixedSeed: number, shortMs: number): FuzzRun {
  const env = process.env.IM_FUZZ_SEED;
  const seed = env === undefined || env === '' ? fixedSeed : env === 'random' ? randomInt(1, 2 ** 31) : Number(env);
  if (!Number.isSafeInteger(seed)) throw new Error(`IM_FUZZ_SEED must be an integer or 'random', got ${env}`);
  const secs = Number(process.env.IM_FUZZ_SECONDS);
  const budgetMs = secs > 0 ? secs * 1000 : shortMs;
  return {
    seed,
    budgetMs,
    long: env !== undefined && env !== '',
    rng: (caseNo) => new Rng(seed, caseNo),
    replay: (file) => `IM_FUZZ_SEED=${seed}${secs > 0 ? ` IM_FUZZ_SECONDS=${secs}` : ''} npm run fuzz -- ${file}`,
  };
}

/** Counts per kind of case, for t.log and the closing notes. */
export class Counts {
  readonly by = new Map<string, number>();
  total = 0;

  add(kind: string, n = 1): void {
    this.by.set(kind, (this.by.get(kind) ?? 0) + n);
    this.total += n;
  }

  toString(): string {
    return `${this.total} cases (${[...this.by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')})`;
  }
}

/** A text shortened for a failure message. */
export const clip = (s: string, n = 300): string => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

/** Error and fatal lines (pino levels 50 and 60) a node wrote, and 'request failed' at any level. */
export function badLogLines(log: string[]): string[] {
  return log.filter((l) => /"level":(5|6)0\b/.test(l) || l.includes('request failed') || l.includes('uncaught') || l.includes('unhandled'));
}

// ---- hostile JSON ----

/** Keys that mean something to JavaScript objects. */
export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

/** Number texts that JSON allows (or nearly) and code often mishandles. */
export const WEIRD_NUMBERS = [
  '0', '-0', '1', '-1', '0.5', '1.5', '-1.5', '1e308', '-1e308', '1e309', '-1e309', '2e308', '5e-324', '1e-400',
  '9007199254740991', '9007199254740992', '9007199254740993', '-9007199254740993', '18446744073709551616',
  '1e21', '4294967296', '2147483648', '-2147483649', '0.1e1', '1E2', '123456789012345678901234567890',
];

/** Strings that are nearly numbers, nearly ids, or odd in UTF-16/UTF-8. */
export const WEIRD_STRINGS = [
  '', ' ', 'NaN', 'Infinity', '-Infinity', '-0', '1e308', '0x10', 'null', 'undefined', 'true', '[]', '{}',
  '\ud800', '\udfff', 'a\ud800b', '\ud83d\ude00', '\u0000', '\u202e', '\ufeff', 'é', '日本', '\n', '\\', '"', "'",
  '../../etc/passwd', '%00', '<script>', 'dm:a:b', 'g:', 'dm:', 'dm:b:a', 'g:__proto__', 'dm:__proto__:constructor',
  ...PROTO_KEYS,
];

/** A random string: ids, ASCII, unicode, controls, lone surrogates. */
export function randomString(r: Rng, max = 80): string {
  if (r.chance(0.25)) return r.pick(WEIRD_STRINGS);
  const n = r.small(max);
  let s = '';
  const alphabet = r.int(4);
  for (let i = 0; i < n; i++) {
    if (alphabet === 0) s += r.pick([...'abcXYZ019_.@-']);
    else if (alphabet === 1) s += String.fromCharCode(r.range(32, 126));
    else if (alphabet === 2) s += String.fromCharCode(r.int(0x10000)); // lone surrogates included
    else s += r.pick(['\ud800', '\udc00', '\u0000', '\u001f', '"', '\\', '\u2028', 'é', '😀', 'a']);
  }
  return s;
}

/** Arbitrary JSON text of bounded size. */
export function randomJsonText(r: Rng, depth = 3): string {
  const k = r.int(depth > 0 ? 9 : 6);
  switch (k) {
    case 0: return 'null';
    case 1: return r.chance(0.5) ? 'true' : 'false';
    case 2: return r.pick(WEIRD_NUMBERS);
    case 3: return String(r.range(-1000, 100000));
    case 4:
    case 5: return JSON.stringify(randomString(r));
    case 6:
    case 7: {
      const n = r.small(8);
      const fields: string[] = [];
      for (let i = 0; i < n; i++) fields.push(`${JSON.stringify(r.chance(0.3) ? r.pick(PROTO_KEYS) : randomString(r, 12))}:${randomJsonText(r, depth - 1)}`);
      return `{${fields.join(',')}}`;
    }
    default: {
      const n = r.small(8);
      return `[${Array.from({ length: n }, () => randomJsonText(r, depth - 1)).join(',')}]`;
    }
  }
}

/** `levels` nested arrays or objects around a value. */
export function deepText(r: Rng, levels: number): string {
  if (r.chance(0.5)) return '['.repeat(levels) + (r.chance(0.5) ? '1' : '') + ']'.repeat(levels);
  const key = JSON.stringify(r.chance(0.3) ? '__proto__' : 'a');
  return `{${key}:`.repeat(levels) + '1' + '}'.repeat(levels);
}

/** A JSON object as an ordered list of [key, value text]: duplicates and `__proto__` survive. */
export type Fields = [string, string][];

export const objectText = (f: Fields): string => `{${f.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;

/** A value of another JSON type than the one `text` has (or a hostile value of any type). */
export function otherValue(r: Rng, text: string): string {
  const kinds = [
    () => r.pick(WEIRD_NUMBERS),
    () => JSON.stringify(r.pick(WEIRD_STRINGS)),
    () => 'null',
    () => 'true',
    () => '[]',
    () => '{}',
    () => `[${JSON.stringify(r.pick(PROTO_KEYS))}]`,
    () => `{"__proto__":${randomJsonText(r, 1)}}`,
    () => `[${text}]`,
    () => `{"value":${text}}`,
    () => randomJsonText(r),
  ];
  for (;;) {
    const v = r.pick(kinds)();
    if (v !== text) return v;
  }
}

/** The mutations applied to a well-formed object; `name` is counted. */
export type Mutation = { name: string; apply(r: Rng, f: Fields): Fields | string };

export const MUTATIONS: Mutation[] = [
  { name: 'drop-field', apply: (r, f) => (f.length ? f.filter((_, i) => i !== r.int(f.length)) : f) },
  { name: 'wrong-type', apply: (r, f) => mapOne(r, f, ([k, v]) => [k, otherValue(r, v)]) },
  { name: 'null-field', apply: (r, f) => mapOne(r, f, ([k]) => [k, 'null']) },
  { name: 'weird-number', apply: (r, f) => mapOne(r, f, ([k]) => [k, r.pick(WEIRD_NUMBERS)]) },
  { name: 'weird-string', apply: (r, f) => mapOne(r, f, ([k]) => [k, JSON.stringify(r.pick(WEIRD_STRINGS))]) },
  { name: 'lone-surrogate', apply: (r, f) => mapOne(r, f, ([k, v]) => [k, v.startsWith('"') ? `"${r.pick(['\\ud800', '\\udfff', '\\udc00\\ud800'])}${v.slice(1)}` : '"\\ud800"']) },
  { name: 'extra-field', apply: (r, f) => [...f, [r.chance(0.5) ? r.pick(PROTO_KEYS) : randomString(r, 16), randomJsonText(r)]] },
  { name: 'proto-key', apply: (r, f) => insertAt(r, f, [r.pick(['__proto__', 'constructor', 'prototype']), r.chance(0.5) ? '{"op":"ping","isAdmin":true}' : randomJsonText(r, 2)]) },
  { name: 'duplicate-field', apply: (r, f) => (f.length ? insertAt(r, f, [f[r.int(f.length)]![0], otherValue(r, '')]) : f) },
  { name: 'proto-ids', apply: (r, f) => mapOne(r, f, ([k, v]) => [k, v.startsWith('[') ? JSON.stringify(r.pick([PROTO_KEYS, ['__proto__'], ['a', '__proto__', 'constructor']])) : JSON.stringify(r.pick(PROTO_KEYS))]) },
  { name: 'deep-nesting', apply: (r, f) => mapOne(r, f, ([k]) => [k, deepText(r, r.pick([100, 1000, 10_000]))]) },
  { name: 'long-string', apply: (r, f) => mapOne(r, f, ([k]) => [k, JSON.stringify(r.pick(['a', 'é', '😀', '\ud800', '\\']).repeat(r.pick([65, 200, 4000, 17_000, 33_000])))]) },
  { name: 'huge-array', apply: (r, f) => mapOne(r, f, ([k]) => [k, `[${Array.from({ length: r.pick([501, 2000, 10_001]) }, (_, i) => `"u${i}"`).join(',')}]`]) },
  { name: 'empty-object', apply: () => [] },
  { name: 'array-frame', apply: (_r, f) => `[${objectText(f)}]` },
  { name: 'truncated', apply: (r, f) => { const s = objectText(f); return s.slice(0, r.int(s.length)); } },
  { name: 'trailing-garbage', apply: (r, f) => objectText(f) + r.pick([' x', '}', ',', '\u0000', '{"op":"ping"}']) },
];

function mapOne(r: Rng, f: Fields, fn: (kv: [string, string]) => [string, string]): Fields {
  if (f.length === 0) return f;
  const i = r.int(f.length);
  return f.map((kv, j) => (j === i ? fn(kv) : kv));
}

function insertAt(r: Rng, f: Fields, kv: [string, string]): Fields {
  const i = r.int(f.length + 1);
  return [...f.slice(0, i), kv, ...f.slice(i)];
}

/** Applies 1 to 3 mutations; returns the text and the mutations' names. */
export function mutate(r: Rng, f: Fields): { text: string; names: string[] } {
  const names: string[] = [];
  let cur: Fields | string = f;
  const n = r.chance(0.7) ? 1 : r.range(2, 3);
  for (let i = 0; i < n && typeof cur !== 'string'; i++) {
    const m = r.pick(MUTATIONS);
    names.push(m.name);
    cur = m.apply(r, cur);
  }
  return { text: typeof cur === 'string' ? cur : objectText(cur), names };
}
