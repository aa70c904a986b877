// The peer wire format: one length-prefixed frame is a UTF-8 JSON array of envelopes. Encoding
// happens once per envelope at enqueue time; decoding checks every envelope strictly.

export const PEER_PROTOCOL = '/imring/peer/1.0.0';

export type Envelope =
  | { k: 'm'; m: unknown }
  | { k: 'q'; id: number; m: unknown }
  | { k: 'r'; id: number; m: unknown }
  | { k: 'e'; id: number; message: string };

// Caps the remote error text we carry: a reply is not a place for a stack dump.
const MAX_ERROR_CHARS = 4096;

function json(v: unknown): string {
  const s = JSON.stringify(v);
  // JSON.stringify answers undefined (not a throw) for undefined, functions and symbols.
  if (typeof s !== 'string') throw new TypeError('message is not JSON-serialisable');
  return s;
}

/** The JSON of a whole envelope in one pass, the same text as splicing the message's JSON into
 * it: one flat string where splicing makes a second (a handoff page is 400 KB, and strings over
 * 128 KiB cost page faults on these machines; docs/BENCHMARKS.md, "Strings over 128 KiB"). Inside
 * an object JSON.stringify would drop what it cannot write, so that is refused first. */
function envJson<E extends { m: unknown }>(e: E): string {
  const t = typeof e.m;
  if (t === 'undefined' || t === 'function' || t === 'symbol') throw new TypeError('message is not JSON-serialisable');
  return JSON.stringify(e);
}

export const encodeMessage = (m: unknown): string => envJson({ k: 'm', m });
/** The JSON of a message, once: a request waiting for room gets its id only when it goes in. */
export const toJson = json;
export const requestEnv = (id: number, mJson: string): string => `{"k":"q","id":${id},"m":${mJson}}`;
export const encodeResponse = (id: number, m: unknown): string => envJson({ k: 'r', id, m });
export const encodeError = (id: number, message: string): string =>
  `{"k":"e","id":${id},"message":${JSON.stringify(message.slice(0, MAX_ERROR_CHARS))}}`;

/** Whether an envelope, alone in a frame, stays within maxFrameBytes. */
export function fitsFrame(env: string, maxFrameBytes: number): boolean {
  return env.length * 3 + 2 <= maxFrameBytes || Buffer.byteLength(env) + 2 <= maxFrameBytes;
}

/** The frame of `envs`, whose UTF-8 size is `bytes`: each is written straight into a buffer of the
 * frame's size rather than joined into one more string first. */
export function frameOf(envs: string[], bytes: number): Uint8Array {
  const buf = Buffer.allocUnsafe(bytes + Math.max(envs.length - 1, 0) + 2);
  buf[0] = 0x5b; // [
  let at = 1;
  for (let i = 0; i < envs.length; i++) {
    if (i > 0) buf[at++] = 0x2c; // ,
    at += buf.write(envs[i]!, at, 'utf8');
  }
  buf[at++] = 0x5d; // ]
  if (at !== buf.length) throw new Error(`frame of ${at} bytes, ${buf.length} expected`);
  return buf;
}

/** Bytes of the unsigned-varint length prefix lp puts before a frame of n bytes. */
export function prefixBytes(n: number): number {
  let b = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    b++;
  }
  return b;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const own = (o: object, k: string): boolean => Object.hasOwn(o, k);
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function isEnvelope(v: unknown): v is Envelope {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const n = Object.keys(o).length;
  switch (o.k) {
    case 'm':
      return n === 2 && own(o, 'm');
    case 'q':
    case 'r':
      return n === 3 && isId(o.id) && own(o, 'm');
    case 'e':
      return n === 3 && isId(o.id) && typeof o.message === 'string';
    default:
      return false;
  }
}

/** The envelopes of one frame, or the reason the frame is invalid. */
export function parseFrame(bytes: Uint8Array): Envelope[] | string {
  let v: unknown;
  try {
    v = JSON.parse(utf8.decode(bytes));
  } catch (e) {
    return `not UTF-8 JSON: ${(e as Error).message}`;
  }
  if (!Array.isArray(v)) return 'not an array of envelopes';
  for (let i = 0; i < v.length; i++) {
    if (!isEnvelope(v[i])) return `envelope ${i} is invalid`;
  }
  return v as Envelope[];
}
