// The SDK's connection class for Node programs and tests, on the `ws` package: the same class as
// the browser's (Connection), plus what only `ws` can do (terminate, raw frames through `.ws`).
// Apps that should survive node failures use ImSession (session.ts) instead.
import WebSocket from 'ws';
import { Connection, opened } from './connection.ts';
import type { WebSocketLike } from './connection.ts';

export { ImError, ConnectionClosedError } from './connection.ts';

export class ImClient extends Connection {
  declare readonly ws: WebSocket & WebSocketLike;

  static override connect(url: string, opts: { timeoutMs?: number } = {}): Promise<ImClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    return opened(new ImClient(ws as WebSocket & WebSocketLike, url), opts.timeoutMs ?? 5000);
  }
}
