// The adversarial suite's yardstick: while an attack runs, a bystander keeps sending and is
// timed; the attacked node's memory is sampled; afterwards every send the bystander got `sent`
// for must be in its recipient's timeline. Each attack's figures are logged and appended to the
// report file (IM_ATTACK_REPORT, default $TMPDIR/im-attack-report.jsonl) for the closing notes.
import { appendFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { ImError } from '../../src/client/client.ts';
import type { ImClient } from '../../src/client/client.ts';
import { readAll, until } from './node.ts';
import type { TestNode } from './node.ts';

export const REPORT = process.env.IM_ATTACK_REPORT ?? join(tmpdir(), 'im-attack-report.jsonl');

/** Resident memory of a process in bytes (Linux /proc), or 0 when it is gone. */
export async function rss(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export type Bystander = {
  /** Stops sending; resolves with the latency figures of the sends made meanwhile. */
  stop(): Promise<{ sent: number; p50: number; p99: number; max: number; unavailable: number }>;
  /** Every cid that got `sent`, in order. */
  confirmed: string[];
};

/** `from` sends to `to` one message at a time (a resend with the same cid after `unavailable`,
 * as a client does) until stopped; each send → sent is timed. */
export function bystander(from: ImClient, to: string, prefix = 'by'): Bystander {
  const lat: number[] = [];
  const confirmed: string[] = [];
  let unavailable = 0;
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const cid = `${prefix}${i}`;
      const t0 = performance.now();
      for (;;) {
        try {
          await from.send(to, cid, `bystander ${i}`);
          break;
        } catch (e) {
          if (e instanceof ImError && e.code === 'unavailable') {
            unavailable++;
            continue;
          }
          throw e;
        }
      }
      lat.push(performance.now() - t0);
      confirmed.push(cid);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    confirmed,
    async stop() {
      running = false;
      await loop;
      const s = [...lat].sort((a, b) => a - b);
      const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : 0);
      return { sent: s.length, p50: Math.round(q(0.5)), p99: Math.round(q(0.99)), max: Math.round(s.at(-1) ?? 0), unavailable };
    },
  };
}

export type AttackFigures = { attack: string; rssBeforeMiB: number; rssPeakMiB: number; rssGrowthMiB: number; bystanderSent: number; bystanderP50: number; bystanderP99: number; bystanderMax: number } & Record<string, unknown>;

/**
 * Runs `attack` against `target` while a bystander (`from` → `to`, read back through `reader`)
 * sends. Afterwards: the target still serves /healthz, the bystander's sends kept getting
 * `sent`, everything confirmed is in the recipient's timeline, and the figures are reported.
 * Returns the figures so a test can assert bounds of its own (RSS growth, p99).
 */
export async function underAttack(
  t: ExecutionContext,
  name: string,
  o: { target: TestNode; from: ImClient; to: string; reader: ImClient; extra?: () => Record<string, unknown> },
  attack: () => Promise<void>,
): Promise<AttackFigures> {
  const pid = o.target.proc?.pid;
  const before = await rss(pid);
  let peak = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rss(pid));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const by = bystander(o.from, o.to, `by-${name.replace(/[^A-Za-z0-9]/g, '').slice(0, 20)}-`);
  try {
    await attack();
  } finally {
    sampling = false;
    await sampler;
  }
  const figures = await by.stop();
  t.true(figures.sent > 0, 'the bystander got sent for its messages during the attack');
  const health = await fetch(`${o.target.http}/healthz`).then((r) => r.status, () => 0);
  t.is(health, 200, 'the attacked node still serves');
  // Nothing confirmed is lost.
  const want = new Set(by.confirmed);
  await until(async () => {
    const have = new Set((await readAll(o.reader)).map((e) => e.body));
    return [...want].every((cid) => have.has(`bystander ${cid.slice(cid.lastIndexOf('-') + 1)}`));
  }, `every confirmed bystander message (${want.size}) in the recipient's timeline`, 15_000, 100);
  const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
  const out: AttackFigures = {
    attack: name, rssBeforeMiB: mib(before), rssPeakMiB: mib(peak), rssGrowthMiB: mib(peak - before),
    bystanderSent: figures.sent, bystanderP50: figures.p50, bystanderP99: figures.p99, bystanderMax: figures.max,
    ...(o.extra?.() ?? {}),
  };
  t.log(JSON.stringify(out));
  await appendFile(REPORT, JSON.stringify({ ...out, at: new Date().toISOString() }) + '\n').catch(() => undefined);
  return out;
}
