// What a client is told when its request failed: the error's wire code and message (codeOf in
// src/protocol/errors.ts), nothing when the connection is gone, and `internal` for a bug, which
// is logged here with the request's op.
import type { Request } from '../protocol/frames.ts';
import { codeOf } from '../protocol/errors.ts';
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';

export function answerFailure(g: Connections, cc: ClientConn, req: Request, e: unknown): void {
  if ((e as Error)?.name === 'LaneClosedError') return; // the connection is gone: nobody to answer
  const known = codeOf(e);
  // not_owner is for peers (a node retries it itself): reaching a client, it is a bug.
  if (known && known.code !== 'not_owner') {
    const message = known.code === 'unavailable' ? `${known.message}; retrying (with the same cid) is safe` : known.message;
    return g.error(cc, req.id, known.code, message);
  }
  g.log.error({ err: e, conn: cc.id, op: req.op }, 'request failed');
  g.error(cc, req.id, 'internal', 'internal error; it is logged on the node');
}
