// bench:churn's churn phase step by step: the nodes' CPU by kind of thread (read from /proc), the
// sends confirmed, and what each step cost beyond its sends at the steady phase's cost per send.
// The threads tell the work apart: the main thread runs our code, the peer path and the calls
// into SQLite; libuv's pool runs SQLite's own work (node-sqlite3 runs statements there); V8's
// workers collect garbage and compile.
import { threadCpu } from './stages.ts';

export const KINDS = ['main', 'sqlite', 'v8', 'other'] as const;
export type Kind = (typeof KINDS)[number];
/** Running totals since the bench began, at `at` (ms): sends confirmed, node CPU seconds by kind. */
export type Totals = { at: number; confirmed: number } & Record<Kind, number>;

const kindOf = (thread: string): Kind =>
  thread === 'MainThread' ? 'main' : thread === 'libuv-worker' ? 'sqlite' : thread === 'V8Worker' ? 'v8' : 'other';

export class ThreadTotals {
  #t: Totals = { at: 0, confirmed: 0, main: 0, sqlite: 0, v8: 0, other: 0 };
  #seen = new Map<number, Map<string, number>>(); // pid → thread name → CPU seconds at the last sample

  confirmed(): void {
    this.#t.confirmed++;
  }

  /** Adds what each process's threads used since its last sample (a process's first sample counts
   * from its start; what a killed process used after its last sample is not seen). */
  sample(pids: number[]): void {
    for (const pid of pids) {
      let now: Map<string, number>;
      try {
        now = threadCpu(pid);
      } catch {
        continue; // gone
      }
      const seen = this.#seen.get(pid);
      for (const [name, s] of now) this.#t[kindOf(name)] += Math.max(0, s - (seen?.get(name) ?? 0));
      this.#seen.set(pid, now);
    }
  }

  snapshot(at: number): Totals {
    return { ...this.#t, at };
  }
}

export type StepRow = {
  step: string; seconds: number; sends_per_s: number; cpu_s: number; extra_s: number; extra_share: number | null;
  /** The extra by kind of thread, CPU seconds. */
  extra: Record<Kind, number>;
};

const r1 = (x: number) => Math.round(x * 10) / 10 || 0; // never -0
const cpuOf = (a: Totals, b: Totals) => KINDS.reduce((s, k) => s + b[k] - a[k], 0);

/** Each window from one mark to the next (the last one to `end`): its node CPU, and the part of it
 * beyond its sends at the steady cost per send (per kind of thread), against `steady` (its start
 * and end totals). */
export function stepWork(steady: [Totals, Totals], marks: { step: string; totals: Totals }[], end: Totals): StepRow[] {
  const [s0, s1] = steady;
  const sends = s1.confirmed - s0.confirmed;
  if (sends <= 0) return [];
  return marks.map(({ step, totals: a }, i) => {
    const b = marks[i + 1]?.totals ?? end;
    const n = b.confirmed - a.confirmed;
    const seconds = (b.at - a.at) / 1000;
    const extra = Object.fromEntries(KINDS.map((k) => [k, r1(b[k] - a[k] - (n * (s1[k] - s0[k])) / sends)])) as Record<Kind, number>;
    const cpu = cpuOf(a, b);
    const extraS = cpu - (n * cpuOf(s0, s1)) / sends;
    return {
      step, seconds: r1(seconds), sends_per_s: seconds > 0 ? Math.round(n / seconds) : 0, cpu_s: r1(cpu), extra_s: r1(extraS),
      extra_share: cpu > 0 ? Math.round((extraS / cpu) * 100) / 100 || 0 : null, extra,
    };
  });
}

export function stepLines(rows: StepRow[]): string[] {
  if (!rows.length) return [];
  const lines = [
    '\n  churn by step (each step until the next begins; node CPU beyond its sends at the steady cost per send, by thread):',
    `  ${'step'.padEnd(16)} ${'seconds'.padStart(7)} ${'sends/s'.padStart(7)} ${'CPU s'.padStart(6)} ${'extra s'.padStart(7)} ${'share'.padStart(5)}   main / SQLite / V8 / other`,
  ];
  for (const r of rows) {
    const share = r.extra_share === null ? 'n/a' : `${Math.round(r.extra_share * 100)} %`;
    lines.push(`  ${r.step.padEnd(16)} ${r.seconds.toFixed(1).padStart(7)} ${String(r.sends_per_s).padStart(7)} ${r.cpu_s.toFixed(1).padStart(6)} ${r.extra_s.toFixed(1).padStart(7)} ${share.padStart(5)}   ${KINDS.map((k) => r.extra[k].toFixed(1)).join(' / ')}`);
  }
  return lines;
}
