// The home role: for the users this node owns, it runs the send pipeline (dedup, mid, seq,
// durable append), answers timeline queries, and holds presence; it pushes to gateways.
import type { Logger } from 'pino';
import type { Presence, SessionRef } from '../presence/index.ts';
import { DEDUP_KEY } from '../store/index.ts';
import type { NewEntry, Store, StoredEntry, Unread } from '../store/index.ts';
import { dmConv, parseConv } from '../protocol/frames.ts';
import type { Entry, MsgEvent, ServerFrame, UserPresence } from '../protocol/frames.ts';

export type Watcher = { gateway: string; conn: string };
/** Delivers a frame to one connection held by a gateway (this node's own, or later a peer's). */
export type Push = (gateway: string, conn: string, frame: ServerFrame) => void;

export type SendResult = { mid: string; seq: number; ts: number; dup?: true };
export type Page = { msgs: Entry[]; more: boolean };

export class ForbiddenError extends Error {
  override name = 'ForbiddenError';
}

export type Home = {
  send(from: string, to: string, cid: string, body: string): Promise<SendResult>;
  /** Registers a logged-in session; the caller replays from `acked` (or its own since). */
  login(s: SessionRef): { seq: number; acked: number };
  logout(s: SessionRef): void;
  sync(user: string, after: number, limit: number): Promise<Page>;
  history(user: string, conv: string, before: number | undefined, limit: number): Promise<Page>;
  /** Resolves once the moved cursor is durable. */
  ack(user: string, device: string, seq: number): Promise<void>;
  read(s: SessionRef, conv: string, seq: number): Promise<void>;
  unread(user: string): Unread;
  presence(users: string[]): Record<string, UserPresence>;
  watch(w: Watcher, users: string[]): void;
  unwatch(w: Watcher, users: string[]): void;
  unwatchAll(w: Watcher): void;
  /** Renews this node's own sessions and expires those of gateways that stopped renewing. */
  tick(gateway: string): void;
};

export type HomeComponents = {
  store: Store;
  presence: Presence;
  nextMid: () => string;
  midTime: (mid: string) => number;
  now: () => number;
  push: Push;
  log: Logger;
  onSent?: (dup: boolean) => void;
};

export function toMsg(e: StoredEntry): MsgEvent {
  const m: MsgEvent = { op: 'msg', seq: e.seq, mid: e.mid, conv: e.conv, from: e.from, body: e.body, ts: e.ts };
  if (e.group !== undefined) m.group = e.group;
  else if (e.to !== undefined) m.to = e.to;
  return m;
}

const toEntry = (e: StoredEntry): Entry => {
  const { op: _op, ...entry } = toMsg(e);
  return entry;
};

type PendingSend = {
  from: string; to: string; cid: string; body: string;
  resolve(r: SendResult): void; reject(e: Error): void;
};

export function createHome(c: HomeComponents): Home {
  const { store, presence } = c;

  // Sends are handled in batches: one dedup lookup per batch, then seqs assigned in arrival
  // order, synchronously, so order per connection holds with any number in flight.
  let queue: PendingSend[] = [];
  let scheduled = false;

  async function drain(): Promise<void> {
    scheduled = false;
    const batch = queue;
    queue = [];
    let found: Map<string, StoredEntry>;
    try {
      found = await store.findDedup(batch.map((s) => ({ user: s.from, dkey: DEDUP_KEY.cid(s.cid) })));
    } catch (e) {
      for (const s of batch) s.reject(e as Error);
      return;
    }
    for (const s of batch) {
      const dkey = DEDUP_KEY.cid(s.cid);
      const pending = store.peekDedup(s.from, dkey);
      const existing = pending ?? found.get(`${s.from}\0${dkey}`);
      if (existing) {
        // On one node the sender's entry and the recipient's copy are committed in one
        // transaction, so an existing sender entry means the delivery is durable too.
        const r: SendResult = { mid: existing.mid, seq: existing.seq, ts: existing.ts, dup: true };
        c.onSent?.(true);
        if (pending) store.flush().then(() => s.resolve(r), s.reject);
        else s.resolve(r);
        continue;
      }
      const mid = c.nextMid();
      const ts = c.midTime(mid);
      const conv = dmConv(s.from, s.to);
      const base = { mid, conv, from: s.from, to: s.to, body: s.body, ts };
      const items: NewEntry[] = [{ ...base, user: s.from, dkey }];
      if (s.to !== s.from) items.push({ ...base, user: s.to, dkey: DEDUP_KEY.mid(mid) });
      const { entries, durable } = store.append(items);
      const r: SendResult = { mid, seq: entries[0]!.seq, ts };
      c.onSent?.(false);
      durable.then(() => s.resolve(r), s.reject);
    }
  }

  const notifyWatchers = (user: string, online: boolean) => {
    for (const w of presence.watchers(user)) c.push(w.gateway, w.conn, { op: 'presence', user, online });
  };
  const wentOffline = (user: string) => {
    const p = presence.lookup(user);
    store.setLastSeen(user, (!p.online && p.lastSeen) || c.now());
    notifyWatchers(user, false);
  };

  const checkConv = (user: string, conv: string) => {
    const p = parseConv(conv);
    if (p?.kind === 'dm' && p.a !== user && p.b !== user) throw new ForbiddenError(`${user} is not part of ${conv}`);
  };

  return {
    send(from, to, cid, body) {
      return new Promise((resolve, reject) => {
        queue.push({ from, to, cid, body, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(() => void drain());
        }
      });
    },

    login(s) {
      const { replaced, wentOnline } = presence.register(s);
      if (replaced) c.push(replaced.gateway, replaced.conn, { op: 'goaway', reason: 'replaced' });
      if (wentOnline) notifyWatchers(s.user, true);
      return { seq: store.committedSeq(s.user), acked: store.acked(s.user, s.device) };
    },

    logout(s) {
      if (presence.unregister(s).wentOffline) wentOffline(s.user);
    },

    async sync(user, after, limit) {
      const { entries, more } = await store.sync(user, after, limit);
      return { msgs: entries.map(toEntry), more };
    },

    async history(user, conv, before, limit) {
      checkConv(user, conv);
      const { entries, more } = await store.history(user, conv, before, limit);
      return { msgs: entries.map(toEntry), more };
    },

    async ack(user, device, seq) {
      if (store.ack(user, device, seq)) await store.flush();
    },

    async read(s, conv, seq) {
      checkConv(s.user, conv);
      const moved = await store.read(s.user, conv, seq);
      if (moved === undefined) return;
      for (const o of presence.sessions(s.user)) {
        if (o.gateway !== s.gateway || o.conn !== s.conn) c.push(o.gateway, o.conn, { op: 'read', conv, seq: moved });
      }
    },

    unread: (user) => store.unread(user),

    presence(users) {
      const out: Record<string, UserPresence> = {};
      for (const u of users) {
        const p = presence.lookup(u);
        if (p.online) out[u] = { online: true, devices: p.devices };
        else {
          const last = p.lastSeen ?? store.lastSeen(u);
          out[u] = last === undefined ? { online: false } : { online: false, last_seen: last };
        }
      }
      return out;
    },

    watch: (w, users) => presence.watch(w, users),
    unwatch: (w, users) => presence.unwatch(w, users),
    unwatchAll: (w) => presence.unwatchAll(w),

    tick(gateway) {
      presence.renewGateway(gateway);
      for (const u of presence.expire().wentOffline) wentOffline(u);
    },
  };
}

/** Wires the store's commit stream to pushes: every committed entry to every session of its user. */
export function pushCommitted(entries: StoredEntry[], presence: Presence, push: Push): number {
  let n = 0;
  for (const e of entries) {
    const sessions = presence.sessions(e.user);
    if (sessions.length === 0) continue;
    const m = toMsg(e);
    for (const s of sessions) {
      push(s.gateway, s.conn, m);
      n++;
    }
  }
  return n;
}
