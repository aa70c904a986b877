// What the orchestrator and its load workers share: the systems' names, the load's shape, the
// message body (it carries what the receiver measures), and the frames between the processes.

export const SYSTEM_NAMES = ['im', 'sio-redis', 'nats-js', 'nats-core'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** The load every system gets: U users in pairs (i with i ^ 1), M messages of B bytes each,
 * at most W sends per user awaiting the system's own ack, after `warmup` unmeasured ones; a
 * reader acknowledges its deliveries every `ackEvery` (where the system keeps a read cursor). */
export type Load = { users: number; msgs: number; body: number; window: number; warmup: number; ackEvery: number };

/** Microseconds on CLOCK_MONOTONIC, which is system-wide on Linux: send times written by one
 * process can be subtracted from receive times read in another. */
export const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** "<phase>,<from>,<seq>,<send µs>," padded with x to `size` bytes (never cut). */
export function bodyOf(phase: number, from: number, seq: number, us: number, size: number): string {
  const head = `${phase},${from},${seq},${us},`;
  return head.length >= size ? head : head + 'x'.repeat(size - head.length);
}

export type Stamp = { phase: number; from: number; seq: number; us: number };

export function parseBody(body: string): Stamp | undefined {
  const f = body.split(',', 4);
  if (f.length < 4) return undefined;
  const [phase, from, seq, us] = f.map(Number) as [number, number, number, number];
  return Number.isInteger(phase) && Number.isInteger(from) && Number.isInteger(seq) && Number.isFinite(us) ? { phase, from, seq, us } : undefined;
}

/** What one worker counted during one phase. Latencies are in µs. */
export type Stats = {
  firstSendUs: number;
  lastRecvUs: number;
  expected: number;
  unique: number;
  dups: number;
  outOfOrder: number;
  /** Bodies of another phase (a warm-up message arriving late) or from someone not the partner. */
  stray: number;
  acked: number;
  sendErrors: number;
  /** Errors that ended nothing (a subscription's). */
  errors: number;
  firstError?: string;
  closed: number;
  lat: number[];
};

/** Everything a worker needs to connect its users. */
export type WorkerInit = {
  system: SystemName;
  /** Client endpoints, one per node: user u connects to endpoints[u % n]. */
  endpoints: string[];
  users: number[];
  /** Tells this run's users, ids and durable names apart from any other run's. */
  run: string;
  window: number;
  body: number;
  ackEvery: number;
};

export type ToWorker =
  | { type: 'init'; init: WorkerInit }
  | { type: 'go'; phase: number; msgs: number }
  | { type: 'collect' }
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'done' }
  | { type: 'stats'; stats: Stats }
  | { type: 'error'; error: string };
