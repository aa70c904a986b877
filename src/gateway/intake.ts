// Frames in from a client: counted against the connection's rate, held while its login is under
// way, parsed and checked, bounded in flight, and dispatched: login and ping here (they need no
// session), every other op through the table of ops.ts.
import type { RawData } from 'ws';
import { FrameError, parseRequest } from '../protocol/frames.ts';
import type { Request } from '../protocol/frames.ts';
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';
import { answerFailure } from './failures.ts';
import { login } from './login.ts';
import { OPS } from './ops.ts';
import type { OpContext } from './ops.ts';
import { refuse } from './rate.ts';

const MAX_HELD = 256;

/** A WebSocket message from the client. */
export function onMessage(g: Connections, cc: ClientConn, data: RawData, isBinary: boolean): void {
  cc.last = g.now();
  if (cc.closed) return;
  // Every frame counts, valid or not (docs/PROTOCOL.md, section 8).
  const wait = cc.frames.take(1, g.now());
  if (wait > 0) return refuse(g, cc, wait);
  if (isBinary) return g.error(cc, null, 'bad_request', 'binary frames are not supported; send JSON text');
  onText(g, cc, data.toString());
}

function onText(g: Connections, cc: ClientConn, text: string): void {
  if (cc.loggingIn) {
    if (cc.held.length >= MAX_HELD) return g.error(cc, null, 'rate_limited', 'too many frames before login completed');
    cc.held.push(text);
    return;
  }
  let req: Request;
  try {
    req = parseRequest(text, g.limits);
  } catch (e) {
    if (e instanceof FrameError) return g.error(cc, e.id, e.code, e.message);
    g.log.error({ err: e, conn: cc.id }, 'frame validation failed');
    return g.error(cc, null, 'internal', 'internal error; it is logged on the node');
  }
  g.metrics.framesIn.inc({ op: req.op });
  if (cc.inFlight >= g.config.maxInFlight) {
    g.metrics.limits.inc({ limit: 'in_flight' });
    return g.error(cc, req.id, 'rate_limited', `${g.config.maxInFlight} requests of this connection are still being served; retry once one is answered`);
  }
  cc.inFlight++;
  dispatch(g, cc, req).finally(() => cc.inFlight--).catch((e: unknown) => answerFailure(g, cc, req, e));
}

// No await before a handler runs: a send reaches its lane in the order the frames came.
async function dispatch(g: Connections, cc: ClientConn, req: Request): Promise<void> {
  const id = req.id;
  if (req.op === 'ping') return g.send(cc, { op: 'pong', ...(id !== undefined ? { id } : {}), ts: g.now() });
  if (req.op === 'login') return loginOnce(g, cc, req);
  const s = cc.session;
  if (!s) return g.error(cc, id, 'unauthenticated', 'log in first');
  const table = OPS as unknown as Record<string, (x: OpContext, req: Request) => Promise<void> | void>;
  const handler = Object.hasOwn(table, req.op) ? table[req.op] : undefined;
  if (!handler) return g.error(cc, id, 'bad_request', `op '${req.op}' is not supported by this version`);
  return handler({ g, cc, s, id, withId: id !== undefined ? { id } : {} }, req);
}

/** Frames that come while the login is under way are held, then handled in order after it. */
async function loginOnce(g: Connections, cc: ClientConn, req: Extract<Request, { op: 'login' }>): Promise<void> {
  if (cc.session) return g.error(cc, req.id, 'bad_request', 'already logged in on this connection');
  cc.loggingIn = true;
  try {
    await login(g, cc, req);
  } finally {
    cc.loggingIn = false;
    const held = cc.held;
    cc.held = [];
    for (const text of held) onText(g, cc, text);
  }
}
