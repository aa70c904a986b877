// Fuzzes the client boundary of a real node: raw WebSocket connections (logged in or not) send
// random bytes, random JSON and mutated frames of every op, while a bystander keeps sending.
// The node must never exit; every request with an id gets exactly one reply, an error only with a
// code of docs/PROTOCOL.md (never `internal`); a connection closes only for a documented reason.
import test from 'ava';
import { isUtf8 } from 'node:buffer';
import WebSocket from 'ws';
import { underAttack } from '../helpers/attack.ts';
import { badLogLines, clip, Counts, fuzzRun } from '../helpers/fuzz.ts';
import { cleanup, startNode } from '../helpers/node.ts';
import { clientCase } from './client-frames.ts';

test.after.always(cleanup);

const FILE = 'test/fuzz/client.test.ts';
const MAX_FRAME = 65_536;
const WORKERS = 4;
const WINDOW = 32;
const REPLY_TIMEOUT_MS = 15_000;
// Codes of the error table of docs/PROTOCOL.md, but `internal` (a bug).
const CODES = new Set(['bad_request', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'too_large', 'rate_limited', 'unavailable']);

type Sent = { n: number; kind: string; text: string };
type Failure = { what: string; recent: string[] };

/** The reply id a request text should get back (frames.ts: a finite number or a string of at
 * most 64 characters), as the JSON it comes back as; undefined if none is expected. */
function replyKey(text: string): string | undefined {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return undefined;
  const id = (o as { id?: unknown }).id;
  if ((typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && id.length <= 64)) return JSON.stringify(id);
  return undefined;
}

class FuzzConn {
  ws: WebSocket;
  name: string;
  /** Per reply id: requests sent with it not answered yet (an id may repeat: a mutation made it so). */
  pending = new Map<string, { open: number; last: Sent }>();
  used = new Set<string>();
  open = 0;
  recent: Sent[] = [];
  allowedClose = new Set<number>([1008, 4001]);
  closed: { code: number; reason: string } | undefined;
  closing = false;
  replies = 0;
  #wake: (() => void)[] = [];
  fail: (f: Failure) => void;

  constructor(url: string, name: string, fail: (f: Failure) => void) {
    this.name = name;
    this.fail = fail;
    this.ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data) => this.#onFrame(data.toString()));
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      if (!this.closing && !this.allowedClose.has(code)) this.#failed(`closed with ${code} '${this.closed.reason}' (not a documented close)`);
      this.#notify();
    });
  }

  opened(): Promise<void> {
    return new Promise((ok, ko) => {
      this.ws.once('open', () => ok());
      this.ws.once('close', (code) => ko(new Error(`connection refused (${code})`)));
    });
  }

  #failed(what: string): void {
    this.fail({ what: `${this.name}: ${what}`, recent: this.recent.slice(-8).map((s) => `#${s.n} ${s.kind}: ${clip(s.text)}`) });
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  #onFrame(text: string): void {
    let f: { op?: string; id?: unknown; code?: string; reason?: string; message?: string };
    try {
      f = JSON.parse(text);
    } catch {
      return this.#failed(`the node sent a frame that is not JSON: ${clip(text)}`);
    }
    if (f.op === 'goaway') {
      if (f.reason === 'replaced') this.allowedClose.add(4004);
      if (f.reason === 'full') this.allowedClose.add(1013);
    }
    if (f.op === 'error' && !CODES.has(f.code!)) this.#failed(`error code '${f.code}': ${f.message} (id ${JSON.stringify(f.id)})`);
    if (f.id !== undefined && f.id !== null) {
      this.replies++;
      const key = JSON.stringify(f.id);
      const p = this.pending.get(key);
      if (p) {
        this.open--;
        if (--p.open === 0) this.pending.delete(key);
        this.#notify();
      } else if (this.used.has(key)) this.#failed(`a second reply for id ${key}: ${clip(text)}`);
      else this.#failed(`a reply for id ${key}, which was never sent: ${clip(text)}`);
    }
  }

  send(s: Sent, data: string | Buffer, binary: boolean): void {
    this.recent.push(s);
    if (this.recent.length > 32) this.recent.shift();
    const key = binary ? undefined : replyKey(typeof data === 'string' ? data : data.toString());
    if (key !== undefined) {
      this.used.add(key);
      const p = this.pending.get(key);
      if (p) {
        p.open++;
        p.last = s;
      } else this.pending.set(key, { open: 1, last: s });
      this.open++;
    }
    this.ws.send(data, { binary });
  }

  /** Waits until at most `max` requests are unanswered, or the connection closed; false on timeout. */
  async drain(max: number, timeoutMs = REPLY_TIMEOUT_MS): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.open > max && !this.closed) {
      const left = end - Date.now();
      if (left <= 0) {
        const missing = [...this.pending].slice(0, 5).map(([k, p]) => `${k} (#${p.last.n} ${p.last.kind}: ${clip(p.last.text, 120)})`);
        this.#failed(`no reply within ${timeoutMs} ms for ${this.open} requests, e.g. ${missing.join('; ')}`);
        return false;
      }
      await new Promise<void>((ok) => {
        const t = setTimeout(ok, Math.min(left, 1000));
        this.#wake.push(() => {
          clearTimeout(t);
          ok();
        });
      });
    }
    return true;
  }

  async expectClose(codes: number[]): Promise<void> {
    for (const c of codes) this.allowedClose.add(c);
    const end = Date.now() + 5000;
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    if (!this.closed) this.#failed(`expected a close (${codes.join(' or ')}) that never came`);
  }

  end(abrupt: boolean): void {
    this.closing = true;
    if (abrupt) this.ws.terminate();
    else this.ws.close(1000);
  }
}

test('client frames: random bytes, random JSON and every op mutated, logged in and not, never crash the node', async (t) => {
  const run = fuzzRun(20251, 9000);
  const node = await startNode({ args: ['--insecure', '--rate', '1000000', '--rate-burst', '1000000'] });
  let exit: string | undefined;
  node.proc!.once('exit', (code, signal) => (exit = `node exited (code ${code}, signal ${signal})`));
  const alice = (await node.login('by-alice')).c;
  const bob = (await node.login('by-bob')).c;

  const counts = new Counts();
  const byOp = new Counts();
  const failures: Failure[] = [];
  const fail = (f: Failure) => {
    if (failures.length < 20) failures.push(f);
  };
  let conns = 0;
  let replies = 0;
  const deadline = Date.now() + run.budgetMs;

  async function worker(w: number): Promise<void> {
    // Worker w takes cases w, w + WORKERS, …: each worker's sequence is fixed by the seed.
    let caseNo = w;
    const next = () => {
      const n = caseNo;
      caseNo += WORKERS;
      return n;
    };
    while (Date.now() < deadline && failures.length === 0 && !exit) {
      const setup = run.rng(next());
      const c = new FuzzConn(node.url, `conn ${w}.${++conns}`, fail);
      try {
        await c.opened();
      } catch (e) {
        fail({ what: `could not connect: ${(e as Error).message}`, recent: [] });
        return;
      }
      const device = `w${w}c${conns}`;
      if (setup.chance(0.7)) {
        const text = JSON.stringify({ op: 'login', id: 'login', user: setup.pick(['fz0', 'fz1', 'fz2', 'fz3', '__proto__', 'constructor']), device });
        c.send({ n: -1, kind: 'login', text }, text, false);
        await c.drain(0);
        counts.add('login');
      }
      const many = setup.range(10, 400);
      for (let i = 0; i < many && !c.closed && Date.now() < deadline && failures.length === 0 && !exit; i++) {
        const n = next();
        const k = clientCase(run.rng(n), i, device, MAX_FRAME);
        counts.add(k.kind.split(':')[0]!);
        byOp.add(k.kind);
        const text = typeof k.data === 'string' ? k.data : k.data.toString('latin1');
        c.send({ n, kind: k.kind, text }, k.data, k.binary);
        const bytes = typeof k.data === 'string' ? Buffer.byteLength(k.data) : k.data.length;
        if (bytes > MAX_FRAME) {
          await c.expectClose([1009]);
          break;
        }
        if (!k.binary && typeof k.data !== 'string' && !isUtf8(k.data)) {
          // RFC 6455: a text frame that is not UTF-8 fails the connection (1007).
          await c.expectClose([1007]);
          break;
        }
        if (!(await c.drain(WINDOW))) break;
      }
      if (!c.closed) await c.drain(0);
      replies += c.replies;
      c.end(setup.chance(0.3));
    }
  }

  const figures = await underAttack(t, 'fuzz: client frames', { target: node, from: alice, to: 'by-bob', reader: bob }, async () => {
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  });

  const replay = run.replay(FILE);
  t.log(`seed ${run.seed}: ${counts} on ${conns} connections; ${replies} replies; bystander p99 ${figures.bystanderP99} ms`);
  if (run.long) t.log(`by op: ${byOp}`);
  t.is(exit, undefined, `the node must not exit. Replay: ${replay}`);
  t.deepEqual(failures, [], `replay: ${replay}`);
  const bad = badLogLines(node.log);
  t.deepEqual(bad.slice(0, 10), [], `the node logged errors. Replay: ${replay}`);
  t.true(counts.total > 100, `only ${counts.total} cases ran`);
});
