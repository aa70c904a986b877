// What the churn benchmark's parts share (bench/churn.ts runs it): the schedule's steps, the
// options, the clock, and the measurements of one phase.

import type { Totals } from './churn-steps.ts';

export const STEPS = ['join', 'leave', 'kill', 'restart'] as const;
export type Step = (typeof STEPS)[number];
export const NODE_ARGS = ['--rate', '100000', '--rate-burst', '100000'];
export const CPU_SAMPLE_MS = 500;

export type Opts = {
  nodes: number; users: number; window: number; seconds: number; recovery: number; warmup: number;
  drain: number; schedule: Step[]; settle: boolean; replicas: number; body: number; keep: boolean; json: boolean;
  /** Run the nodes under V8's CPU profiler and print where the churn phase's extra CPU went. */
  profile: boolean;
};

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The monotonic clock V8's profiles are stamped with, in µs. */
export const monoUs = () => Number(process.hrtime.bigint() / 1000n);
export const round1 = (x: number) => Math.round(x * 10) / 10;
export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, ko) => {
    timer = setTimeout(() => ko(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export function latencySummary(xs: number[]): { p50: number; p99: number; max: number } | null {
  if (!xs.length) return null;
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => round1(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { p50: at(0.5), p99: at(0.99), max: round1(s[s.length - 1]!) };
}

// ---- phases ----

export type PhaseName = 'warmup' | 'steady' | 'churn' | 'recovery' | 'drain';

export class Phase {
  name: PhaseName;
  start: number;
  end: number | undefined;
  /** start and end on the monotonic clock (µs), to cut CPU profiles by phase. */
  startUs = monoUs();
  endUs: number | undefined;
  confirmed = 0;
  delivered = 0;
  latencies: number[] = [];
  unavailable = 0;
  errors: Record<string, number> = {};
  reconnects = 0;
  connectFailures = 0;
  goaways = 0;
  /** CPU seconds used in this phase by our nodes and by this process (sampled every CPU_SAMPLE_MS). */
  cpuNodes = 0;
  cpuBench = 0;
  /** CPU seconds the whole machine was busy in this phase (all processes). */
  cpuAll = 0;
  /** Timeline entries our nodes moved in this phase, from their /metrics (sampled every
   * CPU_SAMPLE_MS): copied by handoffs (join copies, leave pushes) and sent to replicas (live
   * replication and the backfill of new replicas alike). */
  handoffEntries = 0;
  replicatedEntries = 0;
  /** The running totals of bench/churn-steps.ts at the phase's start and end. */
  totalsStart: Totals | undefined;
  totalsEnd: Totals | undefined;
  stall = { ms: 0, user: '', at: 0 };
  stallByUser = new Map<string, number>();

  constructor(name: PhaseName, start: number) {
    this.name = name;
    this.start = start;
  }

  /** A stretch [a, b] in which `user` waited for a 'sent', clipped to this phase. */
  noteStall(user: string, a: number, b: number): void {
    const from = Math.max(a, this.start);
    const ms = Math.min(b, this.end ?? b) - from;
    if (ms <= 0) return;
    if (ms > this.stall.ms) this.stall = { ms, user, at: from };
    if (ms > (this.stallByUser.get(user) ?? 0)) this.stallByUser.set(user, ms);
  }
}
