// One client connection's state, shared by the gateway's parts (lifecycle, intake, ops, replay,
// roster), and the close codes the gateway ends connections with.
import type { Counter, Gauge } from 'prom-client';
import type { WebSocket } from 'ws';
import type { MsgEvent } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import { Lane } from './lane.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import { TYPING_BURST, TYPING_PER_S } from './rate.ts';

// WebSocket close codes this node uses (documented in docs/PROTOCOL.md, "Close codes").


/** The metrics the gateway counts (the node's prom-client registry has them, among others). */
export type GatewayMetrics = {
  connections: Gauge; sessions: Gauge; framesIn: Counter<'op'>; framesOut: Counter; errors: Counter<'code'>;
  messagesOut: Counter; slowClients: Counter; limits: Counter<'limit'>; catchUps: Counter<'reason'>;
};
/** The settings the gateway reads: limits and timeouts of docs/PROTOCOL.md, parsed and checked
 * once by the node's config (the gateway does not depend on how). */
export type GatewayConfig = {
  maxConnections: number; maxBody: number; maxMembers: number; maxUsers: number; maxProfileFields: number;
  loginTimeoutMs: number; idleTimeoutMs: number; rate: number; rateBurst: number; maxBuffered: number;
  maxInFlight: number; maxWatched: number;
};
export const CLOSE = {
  loginTimeout: 4001, idle: 4002, slow: 4003, replaced: 4004, shutdown: 1001,
} as const;

export type ClientConn = {
  id: string;
  ws: WebSocket;
  opened: number;
  last: number;
  session?: SessionRef;
  loggingIn: boolean;
  held: string[];
  replaying: boolean;
  overflow: boolean;
  buffer: MsgEvent[];
  pushed: number;
  /** Frames of any kind (docs/PROTOCOL.md, section 8). */
  frames: TokenBucket;
  closed: boolean;
  /** Users watched with `watch` (made on the first one: most connections never watch). */
  watching: Set<string> | undefined;
  /** Logged in with roster: the friends and followed users whose presence it receives. */
  roster: Set<string> | undefined;
  corked: boolean;
  /** Keeps this connection's sends in order across retries and ring changes. */
  lane: Lane;
  /** Typing notices (a bucket of its own, TYPING_PER_S per second; made full on the first one,
   * which is what a bucket made at login would be by then). */
  typing: TokenBucket | undefined;
  /** Requests being served now (bounded by config.maxInFlight). */
  inFlight: number;
  /** Since when this connection has been over its rate limit without a pause of a second. */
  overSince: number | undefined;
  lastRefused: number;
  /** When the last rate_limited error went out (at most one a second). */
  lastLimitError: number;
};

/** A new connection, opened at `t`: not logged in, full buckets. */
export function openConn(id: string, ws: WebSocket, t: number, config: Pick<GatewayConfig, 'rate' | 'rateBurst'>): ClientConn {
  return {
    id, ws, opened: t, last: t, loggingIn: false, held: [], replaying: false,
    overflow: false, buffer: [], pushed: 0, frames: new TokenBucket(config.rate, config.rateBurst, t), closed: false, watching: undefined, roster: undefined, corked: false,
    lane: new Lane(), typing: undefined,
    inFlight: 0, overSince: undefined, lastRefused: 0, lastLimitError: 0,
  };
}

/** The connection's typing bucket, made (full) on its first typing notice. */
export function typingBucket(cc: ClientConn, t: number): TokenBucket {
  return (cc.typing ??= new TokenBucket(TYPING_PER_S, TYPING_BURST, t));
}
