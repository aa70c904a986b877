// The inbound side of a peer stream, as one pipeline of small stages:
//   stream → length-prefixed decode → validate → dispatch
// Owns reading each stream until it ends, the bad-frame rule (count, warn, abort that stream only)
// and what an envelope does: a message goes to the handler, a request is served, an answer settles
// a pending request. Writing (queues, frames out) is the link's.
import type { Stream } from '@libp2p/interface';
import * as lp from 'it-length-prefixed';
import { pipe } from 'it-pipe';
import type { Logger } from 'pino';
import { encodeError, encodeResponse, fitsFrame, parseFrame, prefixBytes } from './envelope.ts';
import type { Envelope } from './envelope.ts';
import { PeerRemoteError } from './errors.ts';
import type { PeerMsg } from './index.ts';
import type { Link, LinkCounters } from './link.ts';
import type { Requests } from './requests.ts';

/** What a stream yields: bytes in pieces that need not match frames (Uint8Array or Uint8ArrayList,
 * taken from the libp2p types: several versions of uint8arraylist are installed). */
type Chunks = AsyncIterable<Stream extends AsyncIterable<infer C> ? C : never>;
/** One frame as lp decodes it (a Uint8ArrayList). */
type Frame = ReturnType<typeof lp.decode> extends AsyncIterable<infer F> ? F : never;

export type Handlers = {
  message?: (from: string, msg: unknown) => void;
  request?: (from: string, msg: unknown) => Promise<PeerMsg>;
  peer: Array<(ev: { peer: string; up: boolean }) => void>;
};

// What it-length-prefixed throws for a prefix past maxDataLength or a stream cut inside a frame.
const LP_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'UnexpectedEOFError']);
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Stage 1: whole frames; a length prefix over maxFrameBytes throws (before its bytes are buffered). */
export const lengthPrefixed = (maxFrameBytes: number) => (chunks: Chunks): AsyncIterable<Frame> =>
  lp.decode(chunks, { maxDataLength: maxFrameBytes });

/** Stage 2: each frame's envelopes, checked strictly and counted, one array per frame. An invalid
 * frame goes to `bad` and ends the pipeline: nothing after it on that stream is read.
 * A plain iterator rather than an async generator: a generator's yield costs several promise turns
 * per frame, which bench/peer-pipeline.ts measured as a third of a small frame's whole cost; this
 * adds one `then`. return() is passed on, so a throwing dispatch still releases the stream. */
export const validFrames = (c: LinkCounters, bad: (reason: string) => void) => (frames: AsyncIterable<Frame>): AsyncIterable<Envelope[]> => ({
  [Symbol.asyncIterator]() {
    const it = frames[Symbol.asyncIterator]();
    const end = async (): Promise<IteratorResult<Envelope[]>> => {
      await it.return?.();
      return { done: true, value: undefined };
    };
    const validate = (r: IteratorResult<Frame>): IteratorResult<Envelope[]> | Promise<IteratorResult<Envelope[]>> => {
      if (r.done) return { done: true, value: undefined };
      const data = r.value;
      c.framesIn++;
      c.bytesIn += data.byteLength + prefixBytes(data.byteLength);
      const envs = parseFrame(data.subarray());
      if (typeof envs === 'string') {
        bad(envs);
        return end();
      }
      c.msgsIn += envs.length;
      return { done: false, value: envs };
    };
    return { next: () => it.next().then(validate), return: end };
  },
});

/** Stage 3, the sink: every envelope of a frame is dispatched, in order, before the next frame is read. */
export const dispatchTo = (dispatch: (env: Envelope) => void) => async (frames: AsyncIterable<Envelope[]>): Promise<void> => {
  for await (const envs of frames) {
    for (const env of envs) dispatch(env);
  }
};

export type FramePipeline = {
  maxFrameBytes: number;
  counters: LinkCounters;
  bad(reason: string): void;
  dispatch(env: Envelope): void;
};

/** Reads one stream to its end. Resolves when the peer closes its side (or after a bad frame);
 * rejects with it-length-prefixed's error for a bad prefix or a cut frame, or the stream's error. */
export function readFrames(stream: Chunks, p: FramePipeline): Promise<void> {
  return pipe(stream, lengthPrefixed(p.maxFrameBytes), validFrames(p.counters, p.bad), dispatchTo(p.dispatch));
}

export type InboundInit = {
  maxFrameBytes: number;
  log: Logger;
  requests: Requests;
  /** Filled in by onMessage/onRequest, possibly after streams are open. */
  handlers: Handlers;
  /** Aborted on stop: no more replies, and a stream's end is not worth a log line. */
  signal: AbortSignal;
};

export class Inbound {
  #init: InboundInit;

  constructor(init: InboundInit) {
    this.#init = init;
  }

  /** Runs the pipeline over a stream of `link`'s peer until it ends; never rejects. */
  async read(link: Link, stream: Stream): Promise<void> {
    const { log, requests, signal } = this.#init;
    try {
      await readFrames(stream, {
        maxFrameBytes: this.#init.maxFrameBytes,
        counters: link.counters,
        bad: (reason) => this.#badFrame(link, stream, reason),
        dispatch: (env) => this.#dispatch(link, stream, env),
      });
      // The peer closed its side: close ours too, so the stream is not kept half-open.
      if (stream.status === 'open') void stream.close().catch(() => undefined);
    } catch (e) {
      if (e instanceof Error && LP_ERRORS.has(e.name)) this.#badFrame(link, stream, e.message);
      else if (!signal.aborted) log.debug({ peer: link.peer, err: errText(e) }, 'peer stream ended');
    } finally {
      link.detach(stream);
      requests.streamClosed(link.peer, stream);
    }
  }

  #badFrame(link: Link, stream: Stream, reason: string): void {
    link.counters.badFrames++;
    this.#init.log.warn({ peer: link.peer, reason }, 'invalid frame from peer; aborting its stream');
    stream.abort(new Error(`invalid frame: ${reason}`));
  }

  #dispatch(link: Link, stream: Stream, env: Envelope): void {
    const from = link.peer;
    const { handlers, log, requests } = this.#init;
    switch (env.k) {
      case 'm': {
        const h = handlers.message;
        if (!h) return;
        try {
          h(from, env.m);
        } catch (e) {
          log.error({ peer: from, err: errText(e) }, 'peer message handler threw');
        }
        return;
      }
      case 'q':
        this.#serve(link, stream, env.id, env.m);
        return;
      case 'r':
      case 'e': {
        const settle = env.k === 'r' ? { ok: env.m as PeerMsg } : { err: new PeerRemoteError(from, env.message) };
        if (!requests.answer(from, env.id, settle)) {
          log.debug({ peer: from, id: env.id }, 'answer to no pending request (timed out?)');
        }
      }
    }
  }

  #serve(link: Link, stream: Stream, id: number, m: unknown): void {
    const { handlers, maxFrameBytes, signal } = this.#init;
    const h = handlers.request;
    let answer: Promise<PeerMsg>;
    try {
      answer = h ? Promise.resolve(h(link.peer, m)) : Promise.reject(new Error('no request handler'));
    } catch (e) {
      answer = Promise.reject(e);
    }
    const reply = (env: string): void => {
      if (!signal.aborted) link.enqueue({ env, stream });
    };
    answer.then(
      (res) => {
        let env: string;
        try {
          env = encodeResponse(id, res);
        } catch (e) {
          env = encodeError(id, `response not serialisable: ${errText(e)}`);
        }
        if (!fitsFrame(env, maxFrameBytes)) env = encodeError(id, 'response larger than maxFrameBytes');
        reply(env);
      },
      (e: unknown) => reply(encodeError(id, errText(e))),
    );
  }
}
