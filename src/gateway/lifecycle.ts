// A connection's life from the gateway's side: accepted (or turned away with goaway when the node
// is full or cut off), pushed to, swept for login and idle timeouts, and closed with goaway when
// the node drains, stops or leaves the majority.
import type { WebSocket, RawData } from 'ws';
import type { ServerFrame } from '../protocol/frames.ts';
import { CLOSE, openConn } from './conn.ts';
import type { Connections } from './connections.ts';
import { onMessage } from './intake.ts';
import { rosterChange } from './roster.ts';
import { deliverMsg } from './timeline.ts';

export function accept(g: Connections, ws: WebSocket): void {
  const t = g.now();
  const away = g.c.turnAway?.();
  const full = g.conns.size >= g.config.maxConnections;
  if (away || full) {
    if (full) g.metrics.limits.inc({ limit: 'connections' });
    ws.on('error', () => undefined);
    try {
      ws.send(JSON.stringify(away ? { op: 'goaway', ...away } : { op: 'goaway', reason: 'full', nodes: g.c.others?.() ?? [] }));
      ws.close(1013, away ? away.reason : 'full');
    } catch {
      ws.terminate();
    }
    return;
  }
  const cc = openConn(g.newId(), ws, t, g.config);
  g.conns.set(cc.id, cc);
  g.metrics.connections.inc();
  ws.on('message', (data: RawData, isBinary: boolean) => onMessage(g, cc, data, isBinary));
  ws.on('close', () => g.closed(cc));
  ws.on('error', (e) => {
    g.log.debug({ err: e, conn: cc.id }, 'client socket error');
    g.closed(cc);
  });
}

export function push(g: Connections, conn: string, frame: ServerFrame): void {
  const cc = g.conns.get(conn);
  if (!cc) return;
  if (frame.op === 'msg') return deliverMsg(g, cc, frame);
  if (frame.op === 'contact') rosterChange(g, cc, frame);
  g.send(cc, frame);
  if (frame.op === 'goaway') g.close(cc, frame.reason === 'replaced' ? CLOSE.replaced : CLOSE.shutdown, frame.reason);
}

export function sweep(g: Connections): void {
  const t = g.now();
  for (const cc of g.conns.values()) {
    if (!cc.session && !cc.loggingIn && t - cc.opened > g.config.loginTimeoutMs) g.close(cc, CLOSE.loginTimeout, 'login timeout');
    else if (t - cc.last > g.config.idleTimeoutMs) g.close(cc, CLOSE.idle, 'idle timeout');
  }
}

export async function shutdown(g: Connections, nodes: string[], graceMs: number): Promise<void> {
  const gone: Promise<unknown>[] = [];
  for (const cc of [...g.conns.values()]) {
    if (cc.ws.readyState === cc.ws.OPEN) gone.push(new Promise((ok) => cc.ws.once('close', ok)));
    g.send(cc, { op: 'goaway', reason: 'shutdown', nodes });
    g.close(cc, CLOSE.shutdown, 'shutdown');
  }
  // The grace ends early when every client has gone; its timer is cleared then.
  const grace = new AbortController();
  await Promise.race([Promise.all(gone), g.clock.sleep(graceMs, grace.signal).catch(() => undefined)]);
  grace.abort();
}

export function goaway(g: Connections, reason: string, nodes: string[]): number {
  let n = 0;
  for (const cc of [...g.conns.values()]) {
    g.send(cc, { op: 'goaway', reason, nodes });
    g.close(cc, 1013, reason);
    n++;
  }
  return n;
}
