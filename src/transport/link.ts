// One remote peer as this node sees it: its open streams, the outgoing queue, the flush loop that
// turns a tick's worth of envelopes into one frame and waits for `drain`, and the counters.
import type { Stream } from '@libp2p/interface';
import * as lp from 'it-length-prefixed';
import type { Logger } from 'pino';
import type { Clock } from '../clock/index.ts';
import { frameOf } from './envelope.ts';
import { PeerBusyError, PeerGoneError } from './errors.ts';

/** One encoded envelope waiting to go out. */
export type Out = {
  env: string;
  /** UTF-8 bytes of env (set by enqueue). */
  bytes?: number;
  /** Set on responses: they go back on the stream their request came in on. */
  stream?: Stream;
  /** Set on requests: skipped if the request was settled (timed out) before it was written. */
  req?: number;
};

export type LinkHooks = {
  /** Opens a new stream to the peer (dialing if needed) and attaches it before resolving. */
  open(peer: string): Promise<Stream>;
  isPending(id: number): boolean;
  /** A request was handed to this stream: if the stream closes, the request is gone. */
  written(id: number, stream: Stream): void;
  /** A request that cannot be sent: reject it. */
  failed(id: number, err: Error): void;
};

export type LinkInit = {
  peer: string;
  /** JSON characters per frame before the queue is split into several frames. */
  maxChunkChars: number;
  /** The queue takes new requests and one-way messages while it holds fewer than this many
   * envelopes and bytes (so it may pass the byte bound by one envelope); responses always go in. */
  maxQueueMsgs: number;
  maxQueueBytes: number;
  log: Logger;
  /** Times the waits for room and the rate limit of the unreachable warning. */
  clock: Clock;
  /** Aborted on stop: ends every wait. */
  signal: AbortSignal;
  hooks: LinkHooks;
};

export type LinkCounters = {
  framesOut: number;
  framesIn: number;
  bytesOut: number;
  bytesIn: number;
  msgsOut: number;
  msgsIn: number;
  dropped: number;
  badFrames: number;
  /** Largest libp2p stream write buffer seen right after a write (what backpressure bounds). */
  peakBuffered: number;
  /** Times a write found the stream full and waited for it to drain. */
  stalls: number;
  /** Requests that found the send queue full and waited for room; of those, failed after waiting. */
  queueWaits: number;
  queueTimeouts: number;
  /** One-way messages dropped because the send queue was full. */
  queueDrops: number;
};

// A drain that never comes would stall the peer forever; re-check the stream this often.
const DRAIN_POLL_MS = 1000;
// Ends a wait for room that was settled otherwise (one reason: an abort without one builds a DOMException).
const SETTLED = new Error('settled');
const ignore = (): void => undefined;

const writable = (s: Stream): boolean => s.status === 'open' && s.writeStatus === 'writable';

/** Resolves once the stream may take more data, or is closed, or the signal aborts. */
function drained(stream: Stream, signal: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain || stream.status !== 'open' || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearInterval(poll);
      stream.removeEventListener('drain', done);
      stream.removeEventListener('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    // Not stream.onDrain(): in @libp2p/utils 7.4 it resolves at once after the first drain.
    stream.addEventListener('drain', done);
    stream.addEventListener('close', done);
    signal.addEventListener('abort', done);
    const poll = setInterval(() => {
      if (!stream.writableNeedsDrain || stream.status !== 'open') done();
    }, DRAIN_POLL_MS);
  });
}

export class Link {
  readonly peer: string;
  readonly streams: Stream[] = [];
  readonly counters: LinkCounters = {
    framesOut: 0, framesIn: 0, bytesOut: 0, bytesIn: 0, msgsOut: 0, msgsIn: 0, dropped: 0, badFrames: 0, peakBuffered: 0, stalls: 0,
    queueWaits: 0, queueTimeouts: 0, queueDrops: 0,
  };
  /** When the link last warned that its queue was full (rate limit). */
  lastFullWarn = 0;
  #init: LinkInit;
  #lastDropLog = 0;
  #droppedSinceLog = 0;
  #queue: Out[] = [];
  #head = 0;
  #queuedChars = 0;
  #queuedBytes = 0;
  /** Producers waiting for room, in arrival order: `go` enqueues synchronously when woken. */
  #waiters: { go(): void; done(e?: Error): void }[] = [];
  #flushing = false;
  #scheduled = false;
  #current: Stream | undefined;

  constructor(init: LinkInit) {
    this.peer = init.peer;
    this.#init = init;
  }

  /** Characters of encoded envelopes waiting in this link's queue. */
  get queuedChars(): number {
    return this.#queuedChars;
  }

  /** Bytes sitting in the write buffers of this peer's libp2p streams. */
  get buffered(): number {
    let n = 0;
    for (const s of this.streams) n += s.writeBufferLength;
    return n;
  }

  /** Bytes of encoded envelopes waiting in this link's queue. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Whether a new request or message may go in now (nobody waits before it, and under both bounds). */
  hasRoom(): boolean {
    return this.#waiters.length === 0 && this.#under();
  }

  #under(): boolean {
    return this.#size() < this.#init.maxQueueMsgs && this.#queuedBytes < this.#init.maxQueueBytes;
  }

  /** Runs `go` (which enqueues) once there is room, in arrival order; rejects with PeerBusyError
   * after `ms`, with the signal's reason on abort, with PeerGoneError on stop. */
  whenRoom(go: () => void, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.hasRoom()) {
      go();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = new AbortController();
      const w = {
        go,
        done: (e?: Error) => {
          timer.abort(SETTLED);
          signal?.removeEventListener('abort', onAbort);
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          if (e) reject(e);
          else resolve();
        },
      };
      const onAbort = (): void => w.done(signal!.reason as Error);
      this.#init.clock.sleep(ms, timer.signal).then(() => {
        if (timer.signal.aborted) return;
        w.done(new PeerBusyError(this.peer,
          `the send queue to ${this.peer} stayed full for ${ms} ms (${this.#size()} envelopes, ${this.#queuedBytes} bytes)`));
      }, ignore);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(w);
    });
  }

  /** Wakes waiting producers while there is room; each enqueues before the next is considered. */
  #wake(): void {
    while (this.#waiters.length && this.#under()) {
      const w = this.#waiters[0]!;
      w.done();
      try {
        w.go();
      } catch (e) {
        this.#init.log.error({ peer: this.peer, err: (e as Error).message }, 'queued producer threw');
      }
    }
  }

  enqueue(out: Out): void {
    out.bytes ??= Buffer.byteLength(out.env);
    this.#queue.push(out);
    this.#queuedChars += out.env.length;
    this.#queuedBytes += out.bytes;
    this.#kick();
  }

  attach(stream: Stream): void {
    this.streams.push(stream);
    if (this.#size() > 0) this.#kick();
  }

  detach(stream: Stream): void {
    const i = this.streams.indexOf(stream);
    if (i >= 0) this.streams.splice(i, 1);
    if (this.#current === stream) this.#current = undefined;
  }

  /**
   * Where messages and requests go: the stream used last while it stays writable, else the newest.
   * Sticking to one stream keeps them in order when both sides opened one at once (two streams,
   * read independently, possibly on two connections).
   */
  target(): Stream | undefined {
    if (this.#current && writable(this.#current)) return this.#current;
    this.#current = undefined;
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const s = this.streams[i]!;
      if (writable(s)) return (this.#current = s);
    }
    return undefined;
  }

  /** Drops everything queued (on stop); requests are rejected with err. */
  clear(err: Error): void {
    for (const w of [...this.#waiters]) w.done(err instanceof PeerGoneError ? err : new PeerGoneError(this.peer, err.message));
    this.#dropWhere(() => true, err);
  }

  // Flushing on setImmediate, not at once, is what coalesces one tick's sends into one frame.
  #kick(): void {
    if (this.#flushing || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush().catch((e: unknown) => this.#init.log.error({ peer: this.peer, err: (e as Error).message }, 'peer flush failed'));
    });
  }

  #size(): number {
    return this.#queue.length - this.#head;
  }

  #peek(): Out {
    return this.#queue[this.#head]!;
  }

  #take(): Out {
    const out = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as Out;
    this.#queuedChars -= out.env.length;
    this.#queuedBytes -= out.bytes ?? 0;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#waiters.length) this.#wake();
    return out;
  }

  #dropWhere(pred: (o: Out) => boolean, err: Error): number {
    const kept: Out[] = [];
    let n = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const o = this.#queue[i]!;
      if (!pred(o)) {
        kept.push(o);
        continue;
      }
      n++;
      this.#queuedChars -= o.env.length;
      this.#queuedBytes -= o.bytes ?? 0;
      this.#undeliverable(o, err);
    }
    this.#queue = kept;
    this.#head = 0;
    if (n > 0) this.#wake();
    return n;
  }

  #undeliverable(o: Out, err: Error): void {
    if (o.req !== undefined) {
      if (!this.#init.hooks.isPending(o.req)) return;
      this.#init.hooks.failed(o.req, err);
    }
    this.counters.dropped++;
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    const { signal, hooks, log, maxChunkChars } = this.#init;
    try {
      while (this.#size() > 0 && !signal.aborted) {
        const head = this.#peek();
        let stream = head.stream;
        if (stream && !writable(stream)) {
          // Its request came in on a stream that has closed since: the caller will time out or see the peer gone.
          this.#take();
          this.#undeliverable(head, new Error('stream closed'));
          continue;
        }
        if (!stream) {
          stream = this.target();
          if (!stream) {
            try {
              stream = await hooks.open(this.peer);
            } catch (e) {
              this.#unreachable(e as Error);
              continue;
            }
            if (!writable(stream)) {
              this.#unreachable(new Error('new stream closed at once'));
              continue;
            }
            continue; // attached: target() now picks it (or a stream the peer opened meanwhile)
          }
        }
        const unpinned = this.target();
        const envs: string[] = [];
        const reqs: number[] = [];
        let chars = 0;
        let bytes = 0;
        while (this.#size() > 0) {
          const o = this.#peek();
          if ((o.stream ?? unpinned) !== stream) break;
          if (envs.length > 0 && chars + o.env.length > maxChunkChars) break;
          this.#take();
          if (o.req !== undefined) {
            if (!hooks.isPending(o.req)) continue;
            reqs.push(o.req);
          }
          envs.push(o.env);
          chars += o.env.length + 1;
          bytes += o.bytes!;
        }
        if (envs.length === 0) continue;
        const frame = lp.encode.single(frameOf(envs, bytes));
        let more: boolean;
        try {
          more = stream.send(frame);
        } catch (e) {
          log.debug({ peer: this.peer, err: (e as Error).message, envelopes: envs.length }, 'peer stream write failed');
          this.counters.dropped += envs.length - reqs.length;
          for (const id of reqs) hooks.failed(id, e as Error);
          continue;
        }
        const c = this.counters;
        c.framesOut++;
        c.bytesOut += frame.byteLength;
        c.msgsOut += envs.length;
        if (stream.writeBufferLength > c.peakBuffered) c.peakBuffered = stream.writeBufferLength;
        for (const id of reqs) hooks.written(id, stream);
        // Backpressure: the rest stays in our queue (and keeps coalescing) until the stream drains.
        if (!more) {
          c.stalls++;
          await drained(stream, signal);
        }
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#size() > 0 && !signal.aborted) this.#kick();
  }

  /** No stream could be opened: drop what waits for one (responses keep their own stream). */
  #unreachable(err: Error): void {
    const n = this.#dropWhere((o) => o.stream === undefined, err);
    if (n === 0 || this.#init.signal.aborted) return;
    // Gossip keeps trying a dead or leaving member a few times a second until it is declared
    // dead: say so once per 10 s, with the count, rather than on every attempt.
    this.#droppedSinceLog += n;
    const now = this.#init.clock.now();
    if (now - this.#lastDropLog < 10_000) return;
    this.#init.log.warn({ peer: this.peer, dropped: this.#droppedSinceLog, err: err.message }, 'peer unreachable; dropped queued envelopes');
    this.#lastDropLog = now;
    this.#droppedSinceLog = 0;
  }
}
