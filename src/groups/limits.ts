// What a group may cost its home: a token bucket (posts per second, typing frames per second)
// and the fan-out backlog (log entries not yet handed to every member, and the bytes of member
// copies they still make). Pure: time is passed in.

import { TokenBucket } from '../limits/token-bucket.ts';

export { TokenBucket };

/** Estimated bytes the fan-out writes for a message with this body, per member copy. */
export const copyBytes = (bodyBytes: number): number => bodyBytes + 256;

/**
 * The fan-out backlog of one group at its home: the entries appended here (with the bytes of the
 * member copies each still makes) that the fan-out cursor has not passed. Entries appended by a
 * previous home are not listed; they count at the smallest size (`copyBytes(0)` per member).
 */
export class Backlog {
  #q: { seq: number; bytes: number }[] = [];
  #head = 0;
  #bytes = 0;
  /** Entries and bytes the fan-out handed out per ms, as last measured (0: not yet). */
  #perMs = { entries: 0, bytes: 0 };

  /** An entry appended at `seq` that makes `bytes` of member copies (0 for an event). */
  add(seq: number, bytes: number): void {
    this.#q.push({ seq, bytes });
    this.#bytes += bytes;
  }

  /** The fan-out cursor reached `cursor` after `ms` of work on `entries` entries of `bytes`. */
  advance(cursor: number, work?: { ms: number; entries: number; bytes: number }): void {
    while (this.#head < this.#q.length && this.#q[this.#head]!.seq <= cursor) this.#bytes -= this.#q[this.#head++]!.bytes;
    if (this.#head > 1024 && this.#head * 2 > this.#q.length) {
      this.#q = this.#q.slice(this.#head);
      this.#head = 0;
    }
    if (work && work.ms > 0 && work.entries > 0) this.#perMs = { entries: work.entries / work.ms, bytes: work.bytes / work.ms };
  }

  /** Entries between the cursor and the log's end, and the bytes of copies they still make. */
  measure(lastSeq: number, cursor: number, members: number): { entries: number; bytes: number } {
    this.advance(cursor);
    const entries = Math.max(0, lastSeq - cursor);
    const listed = this.#q.length - this.#head;
    return { entries, bytes: this.#bytes + Math.max(0, entries - listed) * copyBytes(0) * members };
  }

  /** Whether nothing is listed (nothing to remember). */
  get empty(): boolean {
    return this.#head >= this.#q.length;
  }

  /** How long the fan-out should take to bring the backlog down by these amounts (ms), from
   * its last measured pace; `fallback` when it has not been measured. */
  eta(entries: number, bytes: number, fallback = 1000): number {
    const { entries: e, bytes: b } = this.#perMs;
    if (e <= 0) return fallback;
    return Math.ceil(Math.max(entries / e, b > 0 ? bytes / b : 0));
  }
}

export type GroupLimits = {
  /** Posts per second into one group's log, and the burst. */
  rate: number;
  burst: number;
  /** Log entries not yet fanned out, and bytes of member copies they still make, past which
   * posts are refused. */
  backlog: number;
  backlogBytes: number;
  /** Typing frames per second one group may push to its members (a notice costs one per other
   * member); twice that in a burst. */
  typingFrames: number;
};

export type Refusal = { reason: 'rate' | 'backlog' | 'typing'; retryMs: number; message: string };

/** Whether a post may go into the log now; takes a token when it may. */
export function admitPost(group: string, l: GroupLimits, bucket: TokenBucket, backlog: { entries: number; bytes: number }, eta: (entries: number, bytes: number) => number, now: number): Refusal | undefined {
  if (backlog.entries >= l.backlog || backlog.bytes >= l.backlogBytes) {
    const over = { entries: backlog.entries - l.backlog + 1, bytes: backlog.bytes - l.backlogBytes + 1 };
    const retryMs = clampRetry(eta(Math.max(0, over.entries), Math.max(0, over.bytes)));
    const what = backlog.entries >= l.backlog ? `${backlog.entries} messages` : `${Math.round(backlog.bytes / 1024)} KiB of member copies`;
    return { reason: 'backlog', retryMs, message: `group ${group} has ${what} not yet handed to its members; retry in ${retryMs} ms` };
  }
  const wait = bucket.take(1, now);
  if (wait > 0) return { reason: 'rate', retryMs: wait, message: `group ${group} is over ${l.rate} messages/s; retry in ${wait} ms` };
  return undefined;
}

/** Whether a typing notice to `others` members may be relayed now; takes its frames when it may. */
export function admitTyping(group: string, l: GroupLimits, bucket: TokenBucket, others: number, now: number): Refusal | undefined {
  const wait = bucket.take(others, now);
  if (wait === 0) return undefined;
  return { reason: 'typing', retryMs: wait, message: `group ${group} is over its typing budget of ${l.typingFrames} frames/s (${others} members to notify); retry in ${wait} ms` };
}

const clampRetry = (ms: number): number => Math.min(30_000, Math.max(100, Math.round(ms)));
