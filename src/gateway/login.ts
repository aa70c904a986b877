// Login on a connection: the token is checked, the session registered with the user's home,
// `welcome` sent, then the roster (when asked for) and the replay from the client's cursor.
import type { Request } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import { AuthError } from './auth.ts';
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';
import { sendRoster } from './roster.ts';
import { replay } from './timeline.ts';

export async function login(g: Connections, cc: ClientConn, req: Extract<Request, { op: 'login' }>): Promise<void> {
  let user: string;
  try {
    user = await g.c.auth.verify(req);
  } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    g.error(cc, req.id, 'unauthenticated', e.message);
    return;
  }
  if (cc.closed) return;
  const device = req.device ?? 'default';
  const session: SessionRef = { user, device, gateway: g.c.name, conn: cc.id };
  // Pushes may arrive before the home's answer: from here on they are buffered for the replay.
  cc.session = session;
  cc.replaying = true;
  g.metrics.sessions.inc();
  let seq: number;
  let acked: number;
  try {
    ({ seq, acked } = await g.homes.login(session));
  } catch (e) {
    cc.session = undefined;
    cc.replaying = false;
    cc.buffer = [];
    g.metrics.sessions.dec();
    throw e;
  }
  if (cc.closed) return;
  g.log.debug({ conn: cc.id, user, device }, 'login');
  g.send(cc, { op: 'welcome', ...(req.id !== undefined ? { id: req.id } : {}), user, device, node: g.c.name, seq, acked });
  // A since or cursor past the newest entry would make live pushes up to it look old: clamp.
  const since = Math.min(req.since ?? acked, seq);
  void (req.roster ? sendRoster(g, cc) : Promise.resolve()).then(() => replay(g, cc, since)).catch((e) => {
    g.log.error({ err: e, conn: cc.id }, 'replay failed');
    g.close(cc, 1011, 'replay failed');
  });
}
