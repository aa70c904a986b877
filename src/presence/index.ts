// Presence at a user's home: which gateways hold which devices of the users this node owns,
// the watches on them, and last_seen. Soft state: each session lives as long as its gateway
// names its connection in a renewal, so a logout that never arrived expires on its own.
// sessions.ts keeps the sessions and last_seen, watches.ts the watches; this file keeps the
// module's types and its factory.
import { SessionTable } from './sessions.ts';
import { WatchIndex } from './watches.ts';

export const PRESENCE_TTL_MS = 15_000;

export type Clock = { now(): number };

// conn: the connection id, unique only within its gateway
export type SessionRef = { user: string; device: string; gateway: string; conn: string };
/** `user`: who watches (presence shown to them follows the watched user's privacy rules). */
export type Watcher = { gateway: string; conn: string; user?: string };

export type PresenceInit = {
  ttlMs?: number; // how long a session lives without a renew
};
export type PresenceComponents = { clock: Clock };

export type Lookup =
  | { online: true; devices: string[]; sessions: SessionRef[] }
  | { online: false; lastSeen?: number };

export type Presence = {
  // Adds or replaces the session of (user, device). `replaced` is the previous session of that
  // device when it was on another conn or gateway; the same session again only renews it.
  register(s: SessionRef): { replaced?: SessionRef; wentOnline: boolean };
  // Removes the session only if (user, device, gateway, conn) all still match, so a replaced
  // session closing late cannot remove its successor. Going offline records lastSeen = now.
  // Expiry and dropGateway record instead the last renew, the last time the user was known there.
  unregister(s: SessionRef): { wentOffline: boolean };
  // A gateway's heartbeat for the connections it still holds: renews exactly the sessions of
  // those connections (a session of a connection it no longer names is left to expire) and
  // returns the connections it has no session for here, which the gateway registers again.
  renew(gateway: string, conns: string[]): string[];
  // The gateway is dead or gone: its sessions and its connections' watches go with it.
  dropGateway(gateway: string): string[];
  expire(): { expired: SessionRef[]; wentOffline: string[] };
  lookup(user: string): Lookup;
  sessions(user: string): SessionRef[];
  watch(w: Watcher, users: string[]): void;
  unwatch(w: Watcher, users: string[]): void;
  unwatchAll(w: Watcher): void;
  watchers(user: string): Watcher[];
  setLastSeen(user: string, ts: number): void;
  // The ring moved some users to another home: drop their sessions and watches here without
  // any offline event (they live on at the new home). Returns how many users were dropped.
  forget(keep: (user: string) => boolean): number;
  users(): number;
  sessionCount(): number;
};

export function createPresence(init: PresenceInit, components: PresenceComponents): Presence {
  const ttlMs = init.ttlMs ?? PRESENCE_TTL_MS;
  if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
  const sessions = new SessionTable(components.clock, ttlMs);
  const watches = new WatchIndex();

  // Plain functions over the two tables, so that callers may pass them around unbound.
  return {
    register: (s) => sessions.register(s),
    unregister: (s) => sessions.unregister(s),
    renew: (gateway, conns) => sessions.renew(gateway, conns),
    dropGateway(gateway) {
      watches.dropGateway(gateway);
      return sessions.dropGateway(gateway);
    },
    expire: () => sessions.expire(),
    lookup: (user) => sessions.lookup(user),
    sessions: (user) => sessions.sessionsOf(user),
    watch: (w, users) => watches.watch(w, users),
    unwatch: (w, users) => watches.unwatch(w, users),
    unwatchAll: (w) => watches.unwatchAll(w),
    watchers: (user) => watches.watchers(user),
    setLastSeen: (user, ts) => sessions.seen(user, ts),
    forget(keep) {
      const n = sessions.forget(keep);
      watches.forget(keep);
      return n;
    },
    users: () => sessions.users,
    sessionCount: () => sessions.total,
  };
}
