// Who watches whose presence: each watcher (a connection on a gateway) with the users it
// watches, and for each user its watchers.
import type { Watcher } from './index.ts';

type WatcherState = { readonly w: Readonly<Watcher>; readonly users: Set<string> };

export class WatchIndex {
  // A watcher state object is shared by both indexes, so identity stands in for (gateway, conn)
  // and no separator has to be reserved in either id.
  readonly #watcherIndex = new Map<string, Map<string, WatcherState>>(); // gateway -> conn -> state
  readonly #watchedBy = new Map<string, Set<WatcherState>>(); // watched user -> watchers

  #watcherState(w: Watcher, create: boolean): WatcherState | undefined {
    let conns = this.#watcherIndex.get(w.gateway);
    if (conns === undefined) {
      if (!create) return undefined;
      this.#watcherIndex.set(w.gateway, (conns = new Map()));
    }
    let state = conns.get(w.conn);
    if (state === undefined && create) {
      state = { w: Object.freeze({ gateway: w.gateway, conn: w.conn, ...(w.user !== undefined ? { user: w.user } : {}) }), users: new Set() };
      conns.set(w.conn, state);
    }
    return state;
  }

  #dropWatch(state: WatcherState, user: string): void {
    state.users.delete(user);
    const set = this.#watchedBy.get(user);
    if (set !== undefined && set.delete(state) && set.size === 0) this.#watchedBy.delete(user);
  }

  #forgetWatcherIfIdle(state: WatcherState): void {
    if (state.users.size > 0) return;
    const conns = this.#watcherIndex.get(state.w.gateway);
    if (conns === undefined || conns.get(state.w.conn) !== state) return;
    conns.delete(state.w.conn);
    if (conns.size === 0) this.#watcherIndex.delete(state.w.gateway);
  }

  watch(w: Watcher, users: string[]): void {
    if (users.length === 0) return;
    const state = this.#watcherState(w, true);
    if (state === undefined) return;
    for (const user of users) {
      if (state.users.has(user)) continue;
      state.users.add(user);
      let set = this.#watchedBy.get(user);
      if (set === undefined) this.#watchedBy.set(user, (set = new Set()));
      set.add(state);
    }
  }

  unwatch(w: Watcher, users: string[]): void {
    const state = this.#watcherState(w, false);
    if (state === undefined) return;
    for (const user of users) this.#dropWatch(state, user);
    this.#forgetWatcherIfIdle(state);
  }

  unwatchAll(w: Watcher): void {
    const state = this.#watcherState(w, false);
    if (state === undefined) return;
    for (const user of [...state.users]) this.#dropWatch(state, user);
    this.#forgetWatcherIfIdle(state);
  }

  /** The watches of the gateway's connections go with the gateway. */
  dropGateway(gateway: string): void {
    const conns = this.#watcherIndex.get(gateway);
    if (conns !== undefined) for (const state of [...conns.values()]) this.unwatchAll(state.w);
  }

  watchers(user: string): Watcher[] {
    const set = this.#watchedBy.get(user);
    return set === undefined ? [] : [...set].map((state) => state.w);
  }

  /** Drops the watches on the users `keep` refuses. */
  forget(keep: (user: string) => boolean): void {
    for (const [user, set] of [...this.#watchedBy]) {
      if (keep(user)) continue;
      for (const state of [...set]) {
        this.#dropWatch(state, user);
        this.#forgetWatcherIfIdle(state);
      }
    }
  }
}
