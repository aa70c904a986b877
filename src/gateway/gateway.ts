// The gateway role: client WebSocket connections, login, limits and timeouts, frame validation,
// dispatch to the homes, and in-order delivery of pushed entries with replay on login.
// This file is its public surface (the factory and its types); the parts are private:
// connections.ts (the table and sending), lifecycle.ts (accept, push, sweep, goaway, shutdown),
// intake.ts (frames in, login), ops.ts (one handler per op), failures.ts (errors to frames),
// rate.ts (rate limits), timeline.ts (replay and pushes), roster.ts (the roster).
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import type { ServerFrame } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import type { Auth } from './auth.ts';
import type { GatewayConfig, GatewayMetrics } from './conn.ts';
import type { Homes } from '../home/home.ts';
import type { Router } from '../cluster/router.ts';
import type { Clock } from '../clock/index.ts';
import { Connections } from './connections.ts';
import { accept, goaway, push, shutdown, sweep } from './lifecycle.ts';
import { catchUp } from './timeline.ts';

export { CLOSE } from './conn.ts';

export type Gateway = {
  accept(ws: WebSocket): void;
  push(conn: string, frame: ServerFrame): void;
  /** The home of this connection's user holds entries up to `seq`: push what the client lacks. */
  catchUp(conn: string, seq: number): void;
  sweep(): void;
  /** goaway to every client, then close; resolves when all have closed or after `graceMs`. */
  shutdown(nodes: string[], graceMs: number): Promise<void>;
  /** goaway `reason` to every client (they should reconnect to one of `nodes`), then close 1013. */
  goaway(reason: string, nodes: string[]): number;
  size(): number;
  /** The logged-in sessions this gateway holds (for renewing and re-registering with homes). */
  sessions(): SessionRef[];
  /** What each connection watches (to watch again at new homes after a ring change). */
  watches(): { conn: string; user: string; users: string[] }[];
};

export type GatewayComponents = {
  name: string;
  config: GatewayConfig;
  homes: Homes;
  auth: Auth;
  metrics: GatewayMetrics;
  log: Logger;
  /** The time, when no `clock` is given (then sleeps are the system's). */
  now?: () => number;
  /** Time and sleeps (default: the system's, or `now`'s time). */
  clock?: Clock;
  /** Aborted when the node stops: retries of the gateway (a closed connection's unwatch) end. */
  signal?: AbortSignal;
  /** Client URLs of the other live nodes (for goaway full). */
  others?: () => string[];
  /** Set while the node must not take clients (cut off from the majority): the goaway to send. */
  turnAway?: () => { reason: string; nodes: string[] } | undefined;
  /** Profiles, contacts and status on the users' homes (section 13). */
  social: Pick<Router, 'socialOp' | 'contacts' | 'profiles'>;
};

export function createGateway(c: GatewayComponents): Gateway {
  const g = new Connections(c);
  return {
    accept: (ws) => accept(g, ws),
    push: (conn, frame) => push(g, conn, frame),
    catchUp: (conn, seq) => {
      const cc = g.conns.get(conn);
      if (cc) catchUp(g, cc, seq, 'registered');
    },
    sweep: () => sweep(g),
    shutdown: (nodes, graceMs) => shutdown(g, nodes, graceMs),
    goaway: (reason, nodes) => goaway(g, reason, nodes),
    size: () => g.conns.size,
    sessions: () => g.sessions(),
    watches: () => g.watches(),
  };
}
