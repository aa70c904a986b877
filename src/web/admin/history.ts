// The charts' data: a rolling window of the polls (about two minutes), turned from counters into
// rates. /cluster gives counters since each node started (messages accepted, peer bytes), so a
// rate is the difference between two polls over the time between them; a counter that went down
// means the node restarted, and that point is left empty rather than drawn as a negative spike.

export type Point = { name: string; messages?: number; peerIn?: number; peerOut?: number; connections?: number };

/** Per node and poll: msgs/s, peer KiB/s in, out and both, connections. */
export type Metric = 'msgs' | 'kibIn' | 'kibOut' | 'kib' | 'conns';
type Column = Record<Metric, (number | null)[]>;
const METRICS: Metric[] = ['msgs', 'kibIn', 'kibOut', 'kib', 'conns'];

export class History {
  readonly windowMs: number;
  /** Poll times, in seconds (uPlot's time unit). */
  private t: number[] = [];
  private cols = new Map<string, Column>();
  private last = new Map<string, Point & { at: number }>();

  constructor(windowMs = 120_000) {
    this.windowMs = windowMs;
  }

  /** One poll: its time (ms) and the counters of each node it reached. */
  add(at: number, points: Point[]): void {
    if (this.t.length > 0 && at / 1000 <= this.t[this.t.length - 1]!) return; // clock went back: skip
    const n = this.t.length;
    this.t.push(at / 1000);
    const seen = new Set<string>();
    for (const p of points) {
      seen.add(p.name);
      let col = this.cols.get(p.name);
      if (!col) {
        col = Object.fromEntries(METRICS.map((m) => [m, Array<number | null>(n).fill(null)])) as Column;
        this.cols.set(p.name, col);
      }
      const prev = this.last.get(p.name);
      const dt = prev ? (at - prev.at) / 1000 : 0;
      const kibIn = kib(rate(prev?.peerIn, p.peerIn, dt));
      const kibOut = kib(rate(prev?.peerOut, p.peerOut, dt));
      col.msgs.push(rate(prev?.messages, p.messages, dt));
      col.kibIn.push(kibIn);
      col.kibOut.push(kibOut);
      col.kib.push(kibIn === null || kibOut === null ? null : kibIn + kibOut);
      col.conns.push(p.connections ?? null);
      this.last.set(p.name, { ...p, at });
    }
    for (const [name, col] of this.cols) if (!seen.has(name)) for (const m of METRICS) col[m].push(null);
    // A node missing from a poll: its next rate starts afresh when it is back.
    for (const name of this.last.keys()) if (!seen.has(name)) this.last.delete(name);
    this.trim(at);
  }

  private trim(now: number): void {
    let drop = 0;
    while (drop < this.t.length && this.t[drop]! < (now - this.windowMs) / 1000) drop++;
    if (drop > 0) {
      this.t.splice(0, drop);
      for (const col of this.cols.values()) for (const m of METRICS) col[m].splice(0, drop);
    }
    // A node gone for the whole window is forgotten.
    for (const [name, col] of this.cols) {
      if (!this.last.has(name) && METRICS.every((m) => col[m].every((v) => v === null))) this.cols.delete(name);
    }
  }

  /** uPlot's data for one metric: [times, one array per name] (names without data: all empty). */
  data(metric: Metric, names: readonly string[]): [number[], ...(number | null)[][]] {
    const empty = () => Array<number | null>(this.t.length).fill(null);
    return [this.t.slice(), ...names.map((n) => this.cols.get(n)?.[metric].slice() ?? empty())];
  }

  /** The latest value of a metric for a node, if the last poll reached it. */
  latest(metric: Metric, name: string): number | null {
    return this.cols.get(name)?.[metric].at(-1) ?? null;
  }
}

const kib = (bytesPerSecond: number | null) => (bytesPerSecond === null ? null : bytesPerSecond / 1024);

function rate(prev: number | undefined, now: number | undefined, dt: number): number | null {
  if (prev === undefined || now === undefined || !(dt > 0) || now < prev) return null;
  return (now - prev) / dt;
}

/**
 * Progress of work that only says how much is left (replication "behind" has no total): the share
 * done since the amount left was highest; a key that reaches 0 or is no longer reported is done,
 * and starts afresh next time.
 */
export class Peaks {
  private peak = new Map<string, number>();
  private done = new Map<string, number>();

  /** One poll's amounts left, by key. */
  update(left: Map<string, number>): void {
    for (const k of this.peak.keys()) if (!((left.get(k) ?? 0) > 0)) this.peak.delete(k);
    this.done.clear();
    for (const [k, v] of left) {
      if (!(v > 0)) continue;
      const p = Math.max(this.peak.get(k) ?? 0, v);
      this.peak.set(k, p);
      this.done.set(k, 1 - v / p);
    }
  }

  /** 0..1, or null when nothing is left. */
  get(key: string): number | null {
    return this.done.get(key) ?? null;
  }
}
