// The gateway's core: the table of open connections and what every other part does to one of
// them (send a frame, answer an error, close it, clean up after it). Private to the gateway.
import type { Logger } from 'pino';
import type { ErrorCode, ReqId, ServerFrame, ValidateLimits } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import type { Homes } from '../home/home.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { CLOSE } from './conn.ts';
import type { ClientConn, GatewayConfig, GatewayMetrics } from './conn.ts';
import type { GatewayComponents } from './gateway.ts';

const UNWATCH_PAGE = 1000;
const UNWATCH_TRIES = 5;

export class Connections {
  readonly conns = new Map<string, ClientConn>();
  readonly c: GatewayComponents;
  readonly config: GatewayConfig;
  readonly homes: Homes;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  readonly clock: Clock;
  readonly signal: AbortSignal | undefined;
  /** What parseRequest checks bodies, user lists and profiles against. */
  readonly limits: ValidateLimits;
  #nextId = 0;

  constructor(c: GatewayComponents) {
    this.c = c;
    this.config = c.config;
    this.homes = c.homes;
    this.metrics = c.metrics;
    this.log = c.log;
    // An older wiring passes only `now`: its time, with the system's sleeps.
    this.clock = c.clock ?? (c.now ? { ...systemClock, now: c.now } : systemClock);
    this.signal = c.signal;
    const config = c.config;
    this.limits = { maxBody: config.maxBody, maxUsers: config.maxUsers, maxMembers: config.maxMembers, maxProfileFields: config.maxProfileFields };
  }

  now(): number {
    return this.clock.now();
  }

  newId(): string {
    return `c${++this.#nextId}`;
  }

  send(cc: ClientConn, frame: ServerFrame, written?: () => void): void {
    if (cc.closed || cc.ws.readyState !== cc.ws.OPEN) return;
    if (cc.ws.bufferedAmount > this.config.maxBuffered) {
      this.metrics.slowClients.inc();
      this.log.warn({ conn: cc.id, user: cc.session?.user, buffered: cc.ws.bufferedAmount }, 'client too slow, closing');
      this.close(cc, CLOSE.slow, 'too slow');
      return;
    }
    // Frames sent in one synchronous stretch (a commit's pushes, a replay page) leave in one
    // write: without this, every frame is a writev syscall, the node's largest CPU cost.
    const sock = (cc.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (sock && !cc.corked) {
      cc.corked = true;
      sock.cork();
      process.nextTick(() => {
        cc.corked = false;
        sock.uncork();
      });
    }
    cc.ws.send(JSON.stringify(frame), written);
    this.metrics.framesOut.inc();
  }

  error(cc: ClientConn, id: ReqId | null | undefined, code: ErrorCode, message: string): void {
    this.metrics.errors.inc({ code });
    this.send(cc, { op: 'error', id: id ?? null, code, message });
  }

  ok(cc: ClientConn, id: ReqId | undefined): void {
    if (id !== undefined) this.send(cc, { op: 'ok', id });
  }

  close(cc: ClientConn, code: number, reason: string): void {
    if (cc.closed) return;
    try {
      cc.ws.close(code, reason);
    } catch {
      cc.ws.terminate();
    }
    this.closed(cc);
  }

  closed(cc: ClientConn): void {
    if (cc.closed) return;
    cc.closed = true;
    cc.lane.shut();
    this.conns.delete(cc.id);
    this.metrics.connections.dec();
    if (cc.session) {
      this.metrics.sessions.dec();
      this.homes.logout(cc.session).catch((e) => this.log.warn({ err: e, conn: cc.id }, 'logout not delivered; the home expires it'));
    }
    const watched = new Set([...(cc.watching ?? []), ...(cc.roster ?? [])]);
    if (watched.size) void this.#unwatchAll(cc.id, [...watched]);
  }

  /** A closed connection's watches end on every home: tried again a few times, since a watch
   * left on a remote home would push to a connection that is gone until that gateway dies.
   * Ends early once the gateway's signal aborts (the node stops: its watches go with it). */
  async #unwatchAll(conn: string, users: string[]): Promise<void> {
    for (let i = 0; i < users.length; i += UNWATCH_PAGE) {
      const part = users.slice(i, i + UNWATCH_PAGE);
      for (let attempt = 1; ; attempt++) {
        try {
          await this.homes.unwatch({ gateway: this.c.name, conn }, part);
          break;
        } catch (e) {
          if (attempt >= UNWATCH_TRIES) {
            this.log.warn({ conn, users: part.length, err: (e as Error).message }, 'watches of a closed connection not removed on every home');
            break;
          }
          try {
            await this.clock.sleep(1000 * attempt, this.signal);
          } catch {
            return;
          }
        }
      }
    }
  }

  watcherOf(cc: ClientConn): { gateway: string; conn: string; user: string } {
    return { gateway: this.c.name, conn: cc.id, user: cc.session!.user };
  }

  /** The logged-in sessions (for renewing and re-registering with homes). */
  sessions(): SessionRef[] {
    return [...this.conns.values()].flatMap((cc) => (cc.session && !cc.closed ? [cc.session] : []));
  }

  /** What each connection watches (to watch again at new homes after a ring change). */
  watches(): { conn: string; user: string; users: string[] }[] {
    return [...this.conns.values()].flatMap((cc) => {
      const users = new Set([...(cc.watching ?? []), ...(cc.roster ?? [])]);
      return users.size && !cc.closed && cc.session ? [{ conn: cc.id, user: cc.session.user, users: [...users] }] : [];
    });
  }
}
