// The HTTP fuzzer's grammar: raw bytes for the client port. Requests with odd methods, paths,
// versions and headers; upgrades with wrong or missing WebSocket keys and versions, on right and
// wrong paths, followed by raw (often invalid) WebSocket frames; pipelined requests; garbage.
import { randomString } from '../helpers/fuzz.ts';
import type { Rng } from '../helpers/fuzz.ts';

/** How the bytes go out: at once, a few bytes every few ms, cut by a reset, or half-closed. */
export type Delivery = 'whole' | 'slow' | 'reset' | 'half-open' | 'left-open';

export type HttpCase = { kind: string; bytes: Buffer; delivery: Delivery; cutAt: number };

const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'PATCH', 'PROPFIND', 'get', 'G ET', '', 'X'.repeat(300), 'GET\u0000', 'ÄÖÜ'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/9.9', 'HTTP/1.1 ', 'http/1.1', 'FOO', ''];

function path(r: Rng): string {
  return r.pick([
    () => r.pick(['/healthz', '/cluster', '/metrics', '/ws', '/', '*', '/ws?x=1', '/ws/', '/WS', '//ws', '/ws#frag', '/healthz?', '/metrics?name[]=1']),
    () => r.pick(['/healthz/../ws', '/../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fws', '/%00', '/%ff%fe', '/%zz', '/%', '/%c0%ae%c0%ae/', '/healthz%00.html']),
    () => r.pick(['http://evil.example/ws', 'ws://127.0.0.1/ws', 'ws', '', ' ', '/ w s', '/\u00e9', '/\ud83d\ude00', '/\r', '/\t']),
    () => `/${'a'.repeat(r.pick([100, 4000, 9000, 70_000]))}`,
    () => `/healthz?${'q=1&'.repeat(r.pick([10, 1000, 5000]))}`,
    () => `/${encodeURIComponent(randomString(r, 40).toWellFormed())}`,
    () => `/${randomString(r, 40)}`,
  ])();
}

const validKey = (r: Rng): string => r.bytes(16).toString('base64');

type Header = [string, string];

function headers(r: Rng, upgrade: boolean): Header[] {
  const h: Header[] = [];
  if (r.chance(0.9)) h.push(['Host', r.pick(['127.0.0.1', 'localhost:7001', '', 'evil.example', '[::1]', 'a'.repeat(300)])]);
  if (upgrade) {
    if (r.chance(0.9)) h.push(['Connection', r.pick(['Upgrade', 'upgrade', 'keep-alive, Upgrade', 'close', 'Upgrade, Upgrade', ''])]);
    if (r.chance(0.9)) h.push(['Upgrade', r.pick(['websocket', 'websocket', 'WebSocket', 'h2c', 'websocket, h2c', 'foo', ''])]);
    if (r.chance(0.85)) h.push(['Sec-WebSocket-Key', r.chance(0.7) ? validKey(r) : r.pick(['', 'abc', '====', 'x'.repeat(1000), r.bytes(15).toString('base64'), r.bytes(17).toString('base64'), '\u00e9\u00e9'])]);
    if (r.chance(0.85)) h.push(['Sec-WebSocket-Version', r.chance(0.7) ? '13' : r.pick(['8', '', 'abc', '13, 8', '-1', '1e3', '13 ', '99999999999999999999'])]);
    if (r.chance(0.2)) h.push(['Sec-WebSocket-Extensions', r.pick(['permessage-deflate', 'permessage-deflate; client_max_window_bits', 'x-webkit-deflate-frame', 'permessage-deflate; server_max_window_bits=7', ';;;'])]);
    if (r.chance(0.2)) h.push(['Sec-WebSocket-Protocol', r.pick(['chat', '', ',', 'a, a', 'x'.repeat(2000), 'é'])]);
    if (r.chance(0.1)) h.push(['Sec-WebSocket-Key', validKey(r)]); // duplicated
    if (r.chance(0.1)) h.push(['Sec-WebSocket-Version', '13']);
  }
  if (r.chance(0.1)) h.push(['Origin', r.pick(['null', 'http://evil.example', '', 'x'.repeat(5000)])]);
  // Header oddities.
  const odd = r.int(16);
  if (odd === 0) h.push(['X-Huge', 'a'.repeat(r.pick([8000, 17_000, 70_000]))]);
  else if (odd === 1) for (let i = r.pick([100, 2100]); i > 0; i--) h.push([`X-${i}`, 'v']);
  else if (odd === 2) h.push(['Host', 'second.example']);
  else if (odd === 3) h.push(['Content-Length', r.pick(['5', '-1', 'abc', '99999999999999999999', '0', '1, 2', ' 3'])], ['Content-Length', '7']);
  else if (odd === 4) h.push(['Transfer-Encoding', r.pick(['chunked', 'gzip, chunked', 'chunked, chunked', 'identity', 'x'])]);
  else if (odd === 5) h.push([r.pick(['X Bad', 'X:Bad', 'X\u0000', 'Ä', '', '(', 'X\tY']), 'v']);
  else if (odd === 6) h.push(['X-Bad', r.pick(['a\u0000b', 'a\rb', 'a\u007fb', '\u00ff', 'é😀', ' lead', 'trail '])]);
  else if (odd === 7) h.push(['Expect', r.pick(['100-continue', 'nonsense'])]);
  else if (odd === 8) h.push(['Authorization', r.pick(['Bearer ', 'Bearer x', `Bearer ${'a'.repeat(5000)}`, 'Basic %%%'])]);
  else if (odd === 9) h.push(['Cookie', 'a=1; '.repeat(500)]);
  return h;
}

function body(r: Rng, h: Header[]): string {
  const te = h.find(([k]) => k === 'Transfer-Encoding');
  if (te) {
    return r.pick([
      '5\r\nhello\r\n0\r\n\r\n', 'zz\r\nx\r\n0\r\n\r\n', 'ffffffffffffffff\r\n', '-1\r\n\r\n', '5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n', '3\r\nabcdef\r\n',
    ]);
  }
  if (h.some(([k]) => k === 'Content-Length')) return r.pick(['', 'hello', 'x'.repeat(100)]);
  return r.chance(0.1) ? r.pick(['{"op":"ping"}', 'GET / HTTP/1.1\r\n\r\n']) : '';
}

function request(r: Rng, upgrade: boolean): string {
  const h = headers(r, upgrade);
  const eol = r.chance(0.9) ? '\r\n' : r.pick(['\n', '\r', '\n\r']);
  let line = `${r.pick(METHODS)} ${upgrade && r.chance(0.6) ? r.pick(['/ws', '/ws', '/ws?token=x', '/WS', '/healthz', '/nope', '/ws/../ws']) : path(r)} ${r.pick(VERSIONS)}`;
  if (r.chance(0.05)) line = r.pick(['GET /healthz', 'GET', '', ' GET / HTTP/1.1', 'GET  /healthz  HTTP/1.1']);
  let text = line + eol;
  for (const [k, v] of h) text += (r.chance(0.02) ? `${k}${v}` : `${k}: ${v}`) + eol;
  if (r.chance(0.03)) text += ' folded continuation' + eol;
  return text + eol + body(r, h);
}

/** A raw WebSocket frame: usually masked as a client must, with odd opcodes, lengths and bits. */
function wsFrame(r: Rng): Buffer {
  const first = r.chance(0.7) ? r.pick([0x81, 0x82, 0x88, 0x89, 0x8a, 0x01, 0x80, 0x00]) : r.int(256);
  const masked = r.chance(0.9);
  const payload = r.chance(0.3) ? Buffer.from(r.pick(['{"op":"ping","id":1}', '{"op":"login","user":"fz0"}', '\u0003\u00e8', '\u0003\u00ec', '\u0000\u0000', 'x'.repeat(200)])) : r.bytes(r.small(300));
  const lenKind = r.int(10);
  const head: number[] = [first];
  let declared = payload.length;
  if (lenKind === 0) declared = r.pick([70_000, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]);
  if (declared < 126 && lenKind !== 1) head.push((masked ? 0x80 : 0) | declared);
  else if (declared < 65_536 && lenKind !== 2) head.push((masked ? 0x80 : 0) | 126, declared >> 8, declared & 255);
  else {
    head.push((masked ? 0x80 : 0) | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(lenKind === 2 && r.chance(0.5) ? 2n ** 63n + 1n : BigInt(declared));
    head.push(...big);
  }
  const key = r.bytes(4);
  const body = Buffer.from(payload);
  if (masked) for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), masked ? key : Buffer.alloc(0), body]);
}

export function httpCase(r: Rng): HttpCase {
  const k = r.int(100);
  let kind: string;
  let text: Buffer;
  if (k < 40) {
    kind = 'request';
    text = Buffer.from(request(r, false), 'latin1');
  } else if (k < 75) {
    kind = 'upgrade';
    text = Buffer.from(request(r, true), 'latin1');
    if (r.chance(0.5)) text = Buffer.concat([text, ...Array.from({ length: r.range(1, 6) }, () => wsFrame(r))]);
  } else if (k < 87) {
    kind = 'pipelined';
    text = Buffer.from(Array.from({ length: r.range(2, 6) }, () => request(r, r.chance(0.2))).join(''), 'latin1');
  } else if (k < 92) {
    kind = 'http2-or-tls';
    text = r.pick([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), r.bytes(200)]),
      Buffer.from('SSH-2.0-OpenSSH_9.0\r\n'),
    ]);
  } else {
    kind = 'garbage';
    text = r.bytes(r.small(5000));
  }
  const d = r.int(10);
  const delivery: Delivery = d < 4 ? 'whole' : d < 6 ? 'slow' : d < 8 ? 'reset' : d < 9 ? 'half-open' : 'left-open';
  return { kind, bytes: text, delivery, cutAt: r.int(text.length + 1) };
}
