// The sessions of the users a home owns, indexed by user and device and by gateway and
// connection, and each user's last_seen: who is online, on which gateways.
import type { Clock, Lookup, SessionRef } from './index.ts';

type Session = { readonly ref: Readonly<SessionRef>; renewedAt: number };

export class SessionTable {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #byUser = new Map<string, Map<string, Session>>(); // user -> device -> session
  readonly #byGateway = new Map<string, Map<string, Set<Session>>>(); // gateway -> conn -> sessions
  readonly #lastSeen = new Map<string, number>();
  #total = 0;

  constructor(clock: Clock, ttlMs: number) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  get users(): number {
    return this.#byUser.size;
  }
  get total(): number {
    return this.#total;
  }

  // Never backwards: a late seed from storage must not hide a newer logout. Only read while
  // the user is offline, so recording it for a session that was not the last one is harmless.
  seen(user: string, ts: number): void {
    if (Number.isFinite(ts) && ts > (this.#lastSeen.get(user) ?? -Infinity)) this.#lastSeen.set(user, ts);
  }

  #attach(s: Session): void {
    let devices = this.#byUser.get(s.ref.user);
    if (devices === undefined) this.#byUser.set(s.ref.user, (devices = new Map()));
    devices.set(s.ref.device, s);
    let conns = this.#byGateway.get(s.ref.gateway);
    if (conns === undefined) this.#byGateway.set(s.ref.gateway, (conns = new Map()));
    let held = conns.get(s.ref.conn);
    if (held === undefined) conns.set(s.ref.conn, (held = new Set()));
    held.add(s);
    this.#total++;
  }

  // Returns whether the user has no session left.
  #detach(s: Session): boolean {
    const conns = this.#byGateway.get(s.ref.gateway);
    const held = conns?.get(s.ref.conn);
    if (held !== undefined && held.delete(s) && held.size === 0) {
      conns!.delete(s.ref.conn);
      if (conns!.size === 0) this.#byGateway.delete(s.ref.gateway);
    }
    this.#total--;
    const devices = this.#byUser.get(s.ref.user);
    if (devices === undefined) return true;
    if (devices.get(s.ref.device) === s) devices.delete(s.ref.device);
    if (devices.size > 0) return false;
    this.#byUser.delete(s.ref.user);
    return true;
  }

  sessionsOf(user: string): SessionRef[] {
    const devices = this.#byUser.get(user);
    return devices === undefined ? [] : [...devices.values()].map((s) => s.ref);
  }

  register(s: SessionRef): { replaced?: SessionRef; wentOnline: boolean } {
    const now = this.#clock.now();
    const current = this.#byUser.get(s.user)?.get(s.device);
    if (current !== undefined && current.ref.gateway === s.gateway && current.ref.conn === s.conn) {
      current.renewedAt = now;
      return { wentOnline: false };
    }
    const wentOnline = !this.#byUser.has(s.user);
    if (current !== undefined) this.#detach(current);
    this.#attach({ ref: Object.freeze({ user: s.user, device: s.device, gateway: s.gateway, conn: s.conn }), renewedAt: now });
    return current === undefined ? { wentOnline } : { replaced: current.ref, wentOnline };
  }

  unregister(s: SessionRef): { wentOffline: boolean } {
    const current = this.#byUser.get(s.user)?.get(s.device);
    if (current === undefined || current.ref.gateway !== s.gateway || current.ref.conn !== s.conn) {
      return { wentOffline: false };
    }
    const wentOffline = this.#detach(current);
    if (wentOffline) this.seen(s.user, this.#clock.now());
    return { wentOffline };
  }

  renew(gateway: string, conns: string[]): string[] {
    const held = this.#byGateway.get(gateway);
    const now = this.#clock.now();
    const missing: string[] = [];
    for (const conn of conns) {
      const ss = held?.get(conn);
      if (ss === undefined) missing.push(conn);
      else for (const s of ss) s.renewedAt = now;
    }
    return missing;
  }

  /** Drops every session of the gateway; returns the users left with none. */
  dropGateway(gateway: string): string[] {
    const held = this.#byGateway.get(gateway);
    if (held === undefined) return [];
    const offline: string[] = [];
    for (const s of [...held.values()].flatMap((ss) => [...ss])) {
      this.seen(s.ref.user, s.renewedAt);
      if (this.#detach(s)) offline.push(s.ref.user);
    }
    return offline;
  }

  expire(): { expired: SessionRef[]; wentOffline: string[] } {
    const now = this.#clock.now();
    const expired: SessionRef[] = [];
    const wentOffline: string[] = [];
    for (const [user, devices] of [...this.#byUser]) {
      // a session renewed at t is alive through t + ttl
      for (const s of [...devices.values()]) {
        if (now - s.renewedAt <= this.#ttlMs) continue;
        expired.push(s.ref);
        this.seen(user, s.renewedAt);
        if (this.#detach(s)) wentOffline.push(user);
      }
    }
    return { expired, wentOffline };
  }

  lookup(user: string): Lookup {
    const devices = this.#byUser.get(user);
    if (devices !== undefined) {
      return { online: true, devices: [...devices.keys()].sort(), sessions: this.sessionsOf(user) };
    }
    const ts = this.#lastSeen.get(user);
    return ts === undefined ? { online: false } : { online: false, lastSeen: ts };
  }

  /** Drops the sessions of the users `keep` refuses; returns how many users that was. */
  forget(keep: (user: string) => boolean): number {
    let n = 0;
    for (const [user, devices] of [...this.#byUser]) {
      if (keep(user)) continue;
      for (const sess of [...devices.values()]) this.#detach(sess);
      n++;
    }
    return n;
  }
}
