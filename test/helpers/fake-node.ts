// A node faked behind a WebSocket class, for SDK session tests that need no cluster: each socket
// the session opens is served by a handler the test writes. A handler's answers to one frame are
// delivered in one go, synchronously, as `ws` delivers the frames of one read: the frames that
// follow a `welcome` reach the session before its login promise has been handled, which is the
// case the session must get right.
import type { WebSocketCtor, WebSocketLike } from '../../src/client/connection.ts';

type Frame = Record<string, unknown> & { op: string; id?: number | string };
type Fn = (ev: any) => void;

export type FakeSocket = WebSocketLike & {
  url: string;
  /** Every frame the session sent on this socket, parsed. */
  sent: Frame[];
  /** Pushes frames to the session, all in one go. */
  push(...frames: object[]): void;
  /** Drops the connection as a network failure would (close code 1006). */
  drop(): void;
};

/** What the fake node does with a frame: the frames to answer with (in one go), or nothing. */
export type Handler = (f: Frame, sock: FakeSocket) => object[] | void;

export function fakeNode(handle: Handler): { WebSocket: WebSocketCtor; sockets: FakeSocket[]; sent(op: string): Frame[] } {
  const sockets: FakeSocket[] = [];
  class Fake implements FakeSocket {
    readyState = 0;
    bufferedAmount = 0;
    url: string;
    sent: Frame[] = [];
    #listeners = new Map<string, Set<Fn>>();
    constructor(url: string) {
      this.url = url;
      sockets.push(this);
      setTimeout(() => {
        if (this.readyState !== 0) return;
        this.readyState = 1;
        this.#fire('open', {});
      }, 0);
    }
    addEventListener(type: string, fn: Fn): void {
      let set = this.#listeners.get(type);
      if (!set) this.#listeners.set(type, (set = new Set()));
      set.add(fn);
    }
    removeEventListener(type: string, fn: Fn): void {
      this.#listeners.get(type)?.delete(fn);
    }
    #fire(type: string, ev: object): void {
      for (const fn of [...(this.#listeners.get(type) ?? [])]) fn(ev);
    }
    send(data: string): void {
      if (this.readyState !== 1) throw new Error('not open');
      const f = JSON.parse(data) as Frame;
      this.sent.push(f);
      const out = handle(f, this);
      if (out?.length) this.push(...out);
    }
    push(...frames: object[]): void {
      if (this.readyState !== 1) return;
      for (const f of frames) this.#fire('message', { data: JSON.stringify(f) });
    }
    close(code = 1000): void {
      if (this.readyState >= 2) return;
      this.readyState = 3;
      setTimeout(() => this.#fire('close', { code, reason: '' }), 0);
    }
    drop(): void {
      this.close(1006);
    }
  }
  return {
    WebSocket: Fake as unknown as WebSocketCtor,
    sockets,
    sent: (op) => sockets.flatMap((s) => s.sent.filter((f) => f.op === op)),
  };
}

/** Polls until cond() holds (or fails the wait after timeoutMs). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
