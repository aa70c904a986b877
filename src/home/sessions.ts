// Sessions and presence at the home: logins (with the device limit), the sessions gateways keep
// renewing, who is online and who watches, read cursors and the receipts they send.
import type { Logger } from 'pino';
import type { Presence, SessionRef, Watcher } from '../presence/index.ts';
import type { Store } from '../store/index.ts';
import { parseConv } from '../protocol/frames.ts';
import type { ServerFrame, UserPresence } from '../protocol/frames.ts';
import type { CastFrame } from '../protocol/peer.ts';
import { ClientError } from '../protocol/errors.ts';
import type { Ownership } from './ownership.ts';
import { checkConv } from './reads.ts';
import type { HomeComponents, Push } from './types.ts';

export type SessionsDeps = {
  store: Store;
  presence: Presence;
  own: Ownership;
  push: Push;
  now: () => number;
  replicated: (user: string) => Promise<void>;
  /** Durable here and on the user's replicas. */
  everywhere: (durable: Promise<void>, user: string) => Promise<void>;
  readable: (user: string) => number;
  maxDevices: number | undefined;
  onLimit: HomeComponents['onLimit'];
  social: HomeComponents['social'];
  relayRemote: ((users: string[], frame: ServerFrame) => Promise<void>) | undefined;
  castGroup: ((group: string, from: string, frame: CastFrame) => Promise<void>) | undefined;
  log: Logger;
};

export class Sessions {
  #c: SessionsDeps;

  constructor(c: SessionsDeps) {
    this.#c = c;
  }

  async login(s: SessionRef): Promise<{ seq: number; acked: number }> {
    const { presence, store } = this.#c;
    this.#c.own.refuseUnserved(s.user);
    const devices = new Set(presence.sessions(s.user).map((o) => o.device));
    if (this.#c.maxDevices !== undefined && !devices.has(s.device) && devices.size >= this.#c.maxDevices) {
      this.#c.onLimit?.('devices');
      throw new ClientError('too_large', `${s.user} is online on ${devices.size} devices, the most this cluster allows; log out of one first`);
    }
    // Its status and privacy in memory before it shows online, so presence events need no read.
    await this.#c.social?.load(s.user).catch((e: Error) => this.#c.log.warn({ user: s.user, err: e.message }, 'social state not loaded at login'));
    this.#registered(s);
    return { seq: this.#seq(s.user), acked: store.acked(s.user, s.device) };
  }

  /** The newest seq a session of `user` may be told of: committed here and readable. */
  #seq(user: string): number {
    return Math.min(this.#c.store.committedSeq(user), this.#c.readable(user));
  }

  async logout(s: SessionRef): Promise<void> {
    if (this.#c.presence.unregister(s).wentOffline) this.#wentOffline(s.user);
  }

  /**
   * Re-registers sessions (after a ring change, or when renewing found them missing); never
   * replaces a newer session of the device. Answers [conn, newest seq] for each session held:
   * entries committed here before the session arrived were pushed to nobody, so the gateway
   * compares that seq with what it pushed and catches the connection up.
   */
  register(sessions: SessionRef[]): Array<[string, number]> {
    const held: Array<[string, number]> = [];
    for (const s of sessions) {
      const current = this.#c.presence.sessions(s.user).find((o) => o.device === s.device);
      if (current && (current.gateway !== s.gateway || current.conn !== s.conn)) continue;
      this.#registered(s);
      held.push([s.conn, this.#seq(s.user)]);
    }
    return held;
  }

  renew(gateway: string, conns: string[]): string[] {
    return this.#c.presence.renew(gateway, conns);
  }

  dropGateway(gateway: string): void {
    for (const u of this.#c.presence.dropGateway(gateway)) this.#wentOffline(u);
  }

  tick(): void {
    for (const u of this.#c.presence.expire().wentOffline) this.#wentOffline(u);
  }

  relay(users: string[], frame: ServerFrame): void {
    for (const u of new Set(users)) for (const s of this.#c.presence.sessions(u)) this.#c.push(s.gateway, s.conn, frame);
  }

  async presenceOf(users: string[], viewer: string | undefined): Promise<Record<string, UserPresence>> {
    const { presence, store, social } = this.#c;
    // No prototype: a user may be called __proto__ or constructor.
    const out: Record<string, UserPresence> = Object.create(null);
    for (const u of users) {
      const p = presence.lookup(u);
      if (p.online) out[u] = { online: true, devices: p.devices };
      else {
        const last = p.lastSeen ?? store.lastSeen(u);
        out[u] = last === undefined ? { online: false } : { online: false, last_seen: last };
      }
      if (social) out[u] = await social.presenceFor(u, viewer, out[u]!);
    }
    return out;
  }

  async watch(w: Watcher, users: string[]): Promise<void> {
    this.#c.presence.watch(w, users);
  }

  async unwatch(w: Watcher, users: string[]): Promise<void> {
    this.#c.presence.unwatch(w, users);
  }

  async ack(user: string, device: string, seq: number): Promise<void> {
    this.#c.own.refuseUnowned(user);
    if (this.#c.store.ack(user, device, seq)) await this.#c.everywhere(this.#c.store.flush(), user);
  }

  async read(s: SessionRef, conv: string, seq: number): Promise<void> {
    checkConv(s.user, conv);
    this.#c.own.refuseUnowned(s.user);
    const moved = await this.#c.store.read(s.user, conv, seq);
    if (moved === undefined) return;
    await this.#c.replicated(s.user);
    for (const o of this.#c.presence.sessions(s.user)) {
      if (o.gateway !== s.gateway || o.conn !== s.conn) this.#c.push(o.gateway, o.conn, { op: 'read', conv, seq: moved });
    }
    void this.#receipt(s.user, conv).catch((e: Error) => this.#c.log.debug({ user: s.user, conv, err: e.message }, 'receipt not relayed'));
  }

  /** The read cursor of `user` in `conv` moved: the other party or members hear of it. */
  async #receipt(user: string, conv: string): Promise<void> {
    const mid = (await this.#c.store.readMarks(conv, [user])).get(user);
    const p = parseConv(conv);
    if (mid === undefined || !p) return;
    if (p.kind === 'group') return this.#c.castGroup?.(p.group, user, { kind: 'receipt', mid });
    const other = p.a === user ? p.b : p.a;
    if (other !== user) await this.#c.relayRemote?.([other], { op: 'receipt', conv, by: user, mid });
  }

  #notifyWatchers(user: string, online: boolean): void {
    if (this.#c.social) return this.#c.social.presenceChanged(user, online);
    for (const w of this.#c.presence.watchers(user)) this.#c.push(w.gateway, w.conn, { op: 'presence', user, online });
  }

  #wentOffline(user: string): void {
    const p = this.#c.presence.lookup(user);
    this.#c.store.setLastSeen(user, (!p.online && p.lastSeen) || this.#c.now());
    this.#notifyWatchers(user, false);
  }

  #registered(s: SessionRef): void {
    const { replaced, wentOnline } = this.#c.presence.register(s);
    if (replaced) this.#c.push(replaced.gateway, replaced.conn, { op: 'goaway', reason: 'replaced' });
    if (wentOnline) this.#notifyWatchers(s.user, true);
  }
}
