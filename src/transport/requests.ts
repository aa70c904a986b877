// Requests this node is waiting on: ids, timeouts, the caller's signal, and rejecting the ones a
// closed stream, a disconnected peer or stop() will never answer.
import type { Stream } from '@libp2p/interface';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { PeerGoneError, PeerTimeoutError } from './errors.ts';
import type { PeerMsg } from './index.ts';

type Pending = {
  peer: string;
  resolve(m: PeerMsg): void;
  reject(e: Error): void;
  /** The stream the request was written to, once it was. */
  stream?: Stream;
};

const ignore = (): void => undefined;

export class Requests {
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #clock: Clock;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Registers a request; `what` names it in the timeout message. */
  add(peer: string, what: string, timeoutMs: number, signal?: AbortSignal): { id: number; answer: Promise<PeerMsg> } {
    const id = this.#nextId++;
    const answer = new Promise<PeerMsg>((resolve, reject) => {
      let cancel = ignore;
      const settle = (): void => {
        cancel();
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      const onAbort = (): void => {
        settle();
        reject(signal?.reason);
      };
      cancel = this.#clock.after(timeoutMs, () => {
        settle();
        reject(new PeerTimeoutError(peer, `request ${what} to ${peer} timed out after ${timeoutMs} ms`));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        peer,
        resolve: (m) => {
          settle();
          resolve(m);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
    });
    return { id, answer };
  }

  has(id: number): boolean {
    return this.#pending.has(id);
  }

  written(id: number, stream: Stream): void {
    const p = this.#pending.get(id);
    if (p) p.stream = stream;
  }

  /** Settles a request from `peer`'s answer; false if none is pending (it timed out, or a peer lies). */
  answer(peer: string, id: number, settle: { ok: PeerMsg } | { err: Error }): boolean {
    const p = this.#pending.get(id);
    if (!p || p.peer !== peer) return false;
    if ('ok' in settle) p.resolve(settle.ok);
    else p.reject(settle.err);
    return true;
  }

  fail(id: number, err: Error): void {
    this.#pending.get(id)?.reject(err);
  }

  /** The stream closed: requests written to it will get no answer. */
  streamClosed(peer: string, stream: Stream): void {
    for (const p of [...this.#pending.values()]) {
      if (p.stream === stream) p.reject(new PeerGoneError(peer, `stream to ${peer} closed before the answer`));
    }
  }

  peerGone(peer: string, message = `peer ${peer} disconnected`): void {
    for (const p of [...this.#pending.values()]) {
      if (p.peer === peer) p.reject(new PeerGoneError(peer, message));
    }
  }

  rejectAll(message: string): void {
    for (const p of [...this.#pending.values()]) p.reject(new PeerGoneError(p.peer, message));
  }
}
