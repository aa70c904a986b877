// Presence at a user's home: which gateways hold which devices of the users this node owns,
// the watches on them, and last_seen. Soft state: each session lives as long as its gateway
// names its connection in a renewal, so a logout that never arrived expires on its own.

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

type Session = { readonly ref: Readonly<SessionRef>; renewedAt: number };
type WatcherState = { readonly w: Readonly<Watcher>; readonly users: Set<string> };

export function createPresence(init: PresenceInit, components: PresenceComponents): Presence {
  const ttlMs = init.ttlMs ?? PRESENCE_TTL_MS;
  if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
  const { clock } = components;

  const byUser = new Map<string, Map<string, Session>>(); // user -> device -> session
  const byGateway = new Map<string, Map<string, Set<Session>>>(); // gateway -> conn -> sessions
  const lastSeen = new Map<string, number>();
  // A watcher state object is shared by both indexes, so identity stands in for (gateway, conn)
  // and no separator has to be reserved in either id.
  const watcherIndex = new Map<string, Map<string, WatcherState>>(); // gateway -> conn -> state
  const watchedBy = new Map<string, Set<WatcherState>>(); // watched user -> watchers
  let sessionTotal = 0;

  // Never backwards: a late seed from storage must not hide a newer logout. Only read while
  // the user is offline, so recording it for a session that was not the last one is harmless.
  function seen(user: string, ts: number): void {
    if (Number.isFinite(ts) && ts > (lastSeen.get(user) ?? -Infinity)) lastSeen.set(user, ts);
  }

  function attach(s: Session): void {
    let devices = byUser.get(s.ref.user);
    if (devices === undefined) byUser.set(s.ref.user, (devices = new Map()));
    devices.set(s.ref.device, s);
    let conns = byGateway.get(s.ref.gateway);
    if (conns === undefined) byGateway.set(s.ref.gateway, (conns = new Map()));
    let held = conns.get(s.ref.conn);
    if (held === undefined) conns.set(s.ref.conn, (held = new Set()));
    held.add(s);
    sessionTotal++;
  }

  // Returns whether the user has no session left.
  function detach(s: Session): boolean {
    const conns = byGateway.get(s.ref.gateway);
    const held = conns?.get(s.ref.conn);
    if (held !== undefined && held.delete(s) && held.size === 0) {
      conns!.delete(s.ref.conn);
      if (conns!.size === 0) byGateway.delete(s.ref.gateway);
    }
    sessionTotal--;
    const devices = byUser.get(s.ref.user);
    if (devices === undefined) return true;
    if (devices.get(s.ref.device) === s) devices.delete(s.ref.device);
    if (devices.size > 0) return false;
    byUser.delete(s.ref.user);
    return true;
  }

  function sessionsOf(user: string): SessionRef[] {
    const devices = byUser.get(user);
    return devices === undefined ? [] : [...devices.values()].map((s) => s.ref);
  }

  function watcherState(w: Watcher, create: boolean): WatcherState | undefined {
    let conns = watcherIndex.get(w.gateway);
    if (conns === undefined) {
      if (!create) return undefined;
      watcherIndex.set(w.gateway, (conns = new Map()));
    }
    let state = conns.get(w.conn);
    if (state === undefined && create) {
      state = { w: Object.freeze({ gateway: w.gateway, conn: w.conn, ...(w.user !== undefined ? { user: w.user } : {}) }), users: new Set() };
      conns.set(w.conn, state);
    }
    return state;
  }

  function dropWatch(state: WatcherState, user: string): void {
    state.users.delete(user);
    const set = watchedBy.get(user);
    if (set !== undefined && set.delete(state) && set.size === 0) watchedBy.delete(user);
  }

  function forgetWatcherIfIdle(state: WatcherState): void {
    if (state.users.size > 0) return;
    const conns = watcherIndex.get(state.w.gateway);
    if (conns === undefined || conns.get(state.w.conn) !== state) return;
    conns.delete(state.w.conn);
    if (conns.size === 0) watcherIndex.delete(state.w.gateway);
  }

  function unwatchAll(w: Watcher): void {
    const state = watcherState(w, false);
    if (state === undefined) return;
    for (const user of [...state.users]) dropWatch(state, user);
    forgetWatcherIfIdle(state);
  }

  return {
    register(s) {
      const now = clock.now();
      const current = byUser.get(s.user)?.get(s.device);
      if (current !== undefined && current.ref.gateway === s.gateway && current.ref.conn === s.conn) {
        current.renewedAt = now;
        return { wentOnline: false };
      }
      const wentOnline = !byUser.has(s.user);
      if (current !== undefined) detach(current);
      attach({ ref: Object.freeze({ user: s.user, device: s.device, gateway: s.gateway, conn: s.conn }), renewedAt: now });
      return current === undefined ? { wentOnline } : { replaced: current.ref, wentOnline };
    },

    unregister(s) {
      const current = byUser.get(s.user)?.get(s.device);
      if (current === undefined || current.ref.gateway !== s.gateway || current.ref.conn !== s.conn) {
        return { wentOffline: false };
      }
      const wentOffline = detach(current);
      if (wentOffline) seen(s.user, clock.now());
      return { wentOffline };
    },

    renew(gateway, conns) {
      const held = byGateway.get(gateway);
      const now = clock.now();
      const missing: string[] = [];
      for (const conn of conns) {
        const ss = held?.get(conn);
        if (ss === undefined) missing.push(conn);
        else for (const s of ss) s.renewedAt = now;
      }
      return missing;
    },

    dropGateway(gateway) {
      const conns = watcherIndex.get(gateway);
      if (conns !== undefined) for (const state of [...conns.values()]) unwatchAll(state.w);
      const held = byGateway.get(gateway);
      if (held === undefined) return [];
      const offline: string[] = [];
      for (const s of [...held.values()].flatMap((ss) => [...ss])) {
        seen(s.ref.user, s.renewedAt);
        if (detach(s)) offline.push(s.ref.user);
      }
      return offline;
    },

    expire() {
      const now = clock.now();
      const expired: SessionRef[] = [];
      const wentOffline: string[] = [];
      for (const [user, devices] of [...byUser]) {
        // a session renewed at t is alive through t + ttl
        for (const s of [...devices.values()]) {
          if (now - s.renewedAt <= ttlMs) continue;
          expired.push(s.ref);
          seen(user, s.renewedAt);
          if (detach(s)) wentOffline.push(user);
        }
      }
      return { expired, wentOffline };
    },

    lookup(user) {
      const devices = byUser.get(user);
      if (devices !== undefined) {
        return { online: true, devices: [...devices.keys()].sort(), sessions: sessionsOf(user) };
      }
      const ts = lastSeen.get(user);
      return ts === undefined ? { online: false } : { online: false, lastSeen: ts };
    },

    sessions: sessionsOf,

    watch(w, users) {
      if (users.length === 0) return;
      const state = watcherState(w, true);
      if (state === undefined) return;
      for (const user of users) {
        if (state.users.has(user)) continue;
        state.users.add(user);
        let set = watchedBy.get(user);
        if (set === undefined) watchedBy.set(user, (set = new Set()));
        set.add(state);
      }
    },

    unwatch(w, users) {
      const state = watcherState(w, false);
      if (state === undefined) return;
      for (const user of users) dropWatch(state, user);
      forgetWatcherIfIdle(state);
    },

    unwatchAll,

    watchers(user) {
      const set = watchedBy.get(user);
      return set === undefined ? [] : [...set].map((state) => state.w);
    },

    setLastSeen(user, ts) {
      seen(user, ts);
    },

    forget(keep) {
      let n = 0;
      for (const [user, devices] of [...byUser]) {
        if (keep(user)) continue;
        for (const sess of [...devices.values()]) detach(sess);
        n++;
      }
      for (const [user, set] of [...watchedBy]) {
        if (keep(user)) continue;
        for (const state of [...set]) {
          dropWatch(state, user);
          forgetWatcherIfIdle(state);
        }
      }
      return n;
    },
    users: () => byUser.size,
    sessionCount: () => sessionTotal,
  };
}
