// Fuzzes the HTTP and upgrade boundary of a real node with raw TCP: odd requests, upgrades and
// WebSocket frames, sent whole, a few bytes at a time, cut by resets or half-closed. The node must
// never exit, never answer 5xx but 503, and keep answering /healthz and serving a bystander.
import test from 'ava';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { underAttack } from '../helpers/attack.ts';
import { badLogLines, clip, Counts, fuzzRun } from '../helpers/fuzz.ts';
import { cleanup, startNode } from '../helpers/node.ts';
import { httpCase } from './http-requests.ts';
import type { HttpCase } from './http-requests.ts';

test.after.always(cleanup);

const FILE = 'test/fuzz/http.test.ts';
const WORKERS = 16;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves when the socket closes, shortly after the node answers something, or after ms. */
function closedOr(s: Socket, ms: number): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return new Promise((ok) => {
    let t = setTimeout(ok, ms);
    s.once('data', () => {
      clearTimeout(t);
      t = setTimeout(ok, 5);
    });
    s.once('close', () => {
      clearTimeout(t);
      ok();
    });
  });
}

/** Runs one case; returns what the node answered (up to 64 KiB). */
async function play(port: number, c: HttpCase, r: () => number): Promise<string> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => undefined);
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    if (got.length < 65_536) got = Buffer.concat([got, d]);
  });
  await new Promise<void>((ok) => {
    s.once('connect', ok);
    s.once('close', ok);
  });
  if (s.destroyed) return '';
  const b = c.bytes;
  switch (c.delivery) {
    case 'whole':
      s.write(b);
      await closedOr(s, 200);
      break;
    case 'slow': {
      // Slow headers: a few bytes every few ms for up to ~150 ms, then the rest.
      let i = 0;
      const until = Date.now() + 150;
      while (i < b.length && Date.now() < until && !s.destroyed) {
        const n = 1 + Math.floor(r() * 16);
        s.write(b.subarray(i, i + n));
        i += n;
        await sleep(1 + Math.floor(r() * 5));
      }
      if (!s.destroyed) s.write(b.subarray(i));
      await closedOr(s, 200);
      break;
    }
    case 'reset':
      s.write(b.subarray(0, c.cutAt));
      if (r() < 0.5) await sleep(Math.floor(r() * 20));
      s.resetAndDestroy();
      break;
    case 'half-open':
      s.end(r() < 0.5 ? b : b.subarray(0, c.cutAt));
      await closedOr(s, 300);
      break;
    case 'left-open':
      s.write(b.subarray(0, c.cutAt));
      await closedOr(s, 100);
      break;
  }
  if (!s.destroyed) s.destroy();
  return got.toString('latin1');
}

test('raw HTTP and upgrades: odd methods, paths and headers, resets, slow and half-open sockets never crash the node', async (t) => {
  const run = fuzzRun(20252, 4000);
  const node = await startNode();
  let exit: string | undefined;
  node.proc!.once('exit', (code, signal) => (exit = `node exited (code ${code}, signal ${signal})`));
  const alice = (await node.login('by-alice')).c;
  const bob = (await node.login('by-bob')).c;
  const counts = new Counts();
  const failures: string[] = [];
  let healthChecks = 0;
  const deadline = Date.now() + run.budgetMs;

  async function healthy(): Promise<void> {
    healthChecks++;
    const status = await fetch(`${node.http}/healthz`, { signal: AbortSignal.timeout(5000) }).then((res) => res.status, (e: Error) => e.message);
    if (status !== 200) failures.push(`/healthz answered ${status}`);
  }

  async function worker(w: number): Promise<void> {
    for (let n = w; Date.now() < deadline && failures.length === 0 && !exit; n += WORKERS) {
      const r = run.rng(n);
      const c = httpCase(r);
      counts.add(`${c.kind}/${c.delivery}`);
      const answer = await play(node.port, c, () => r.next());
      // Every status line the node wrote: a 5xx other than 503 is a handler that failed.
      for (const m of answer.matchAll(/HTTP\/1\.[01] (\d{3})/g)) {
        const status = Number(m[1]);
        if (status >= 500 && status !== 503) failures.push(`case #${n} (${c.kind}/${c.delivery}) was answered ${status}: ${clip(c.bytes.toString('latin1'))}\n→ ${clip(answer)}`);
      }
      if (n % 97 === w) await healthy();
    }
  }

  const figures = await underAttack(t, 'fuzz: raw HTTP and upgrades', { target: node, from: alice, to: 'by-bob', reader: bob }, async () => {
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  });
  await healthy();
  const replay = run.replay(FILE);
  t.log(`seed ${run.seed}: ${counts}; ${healthChecks} /healthz checks; bystander p99 ${figures.bystanderP99} ms`);
  t.is(exit, undefined, `the node must not exit. Replay: ${replay}`);
  t.deepEqual(failures.slice(0, 10), [], `replay: ${replay}`);
  t.deepEqual(badLogLines(node.log).slice(0, 10), [], `the node logged errors. Replay: ${replay}`);
  t.true(counts.total > 50, `only ${counts.total} cases ran`);
});
