// Session upkeep on the gateway side: keeps this gateway's sessions and watches registered at
// their homes. Every renewal names the connections this gateway still holds, per home, so a
// session it no longer holds (a logout that never arrived) expires there on its own; a home that
// lacks some of them (it restarted, or the ring moved the user) gets them registered again.
// Renewals and registrations go in pages that fit a peer frame, whatever the number of sessions.
// A home answers a registration with each session's newest seq: what it committed before the
// session arrived was pushed to nobody, so the gateway catches those connections up.
import type { Logger } from 'pino';
import type { SessionRef } from '../presence/index.ts';
import type { Ring } from '../ring/index.ts';
import { chunkByChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { PeerRequest } from '../protocol/peer.ts';
import type { Home, Homes } from '../home/home.ts';

export type UpkeepComponents = {
  self: string;
  ring: () => Ring | undefined; // undefined until joined
  peerOf: (name: string) => string | undefined;
  request: (peer: string, msg: PeerRequest) => Promise<unknown>;
  home: Home;
  homes: Homes;
  sessions: () => SessionRef[];
  watches: () => { conn: string; user: string; users: string[] }[];
  /** The home of this connection's user holds entries up to `seq`: push it what it lacks. */
  catchUp: (conn: string, seq: number) => void;
  log: Logger;
  /** Estimated JSON characters of one renew or register request (default: the peer budget). */
  pageChars?: number;
};

export type Upkeep = {
  /** Every presence timeout / 3: renew at every home; re-register where sessions were lost. */
  renew(): Promise<void>;
  /** The ring changed: register sessions and watches with their (new) homes. */
  ringChanged(): Promise<void>;
};

function byOwner(ring: Ring, sessions: SessionRef[]): Map<string, SessionRef[]> {
  const out = new Map<string, SessionRef[]>();
  for (const s of sessions) {
    const o = ring.owner(s.user);
    if (!o) continue;
    let l = out.get(o);
    if (!l) out.set(o, (l = []));
    l.push(s);
  }
  return out;
}

const sessionChars = (s: SessionRef): number => 64 + s.user.length + s.device.length + s.gateway.length + s.conn.length;
const connChars = (conn: string): number => 4 + conn.length;

export function createUpkeep(c: UpkeepComponents): Upkeep {
  const budget = c.pageChars ?? PEER_BUDGET_CHARS;

  /** Catches up the connections a home answered for; its answer is a peer's, so it is checked. */
  function caughtUp(held: unknown): void {
    if (!Array.isArray(held)) return;
    for (const h of held) {
      if (Array.isArray(h) && typeof h[0] === 'string' && Number.isSafeInteger(h[1])) c.catchUp(h[0], h[1] as number);
    }
  }

  async function register(owner: string, list: SessionRef[]): Promise<void> {
    if (list.length === 0) return;
    if (owner === c.self) return caughtUp(c.home.register(list));
    const peer = c.peerOf(owner);
    if (!peer) return;
    for (const page of chunkByChars(list, sessionChars, budget)) {
      try {
        const r = parsePeerReply(await c.request(peer, { t: 'register', sessions: page }));
        if (r.t === 'done') caughtUp(r.value);
        else c.log.debug({ owner, code: r.code, err: r.message }, 'sessions not registered; retrying at the next renew');
      } catch (e) {
        c.log.warn({ owner, sessions: list.length, err: (e as Error).message }, 'could not register sessions; retrying at the next renew');
        return;
      }
    }
  }

  /** Renews `list` at its home; the sessions it lacks are registered again, if still held here. */
  async function renewAt(owner: string, list: SessionRef[]): Promise<void> {
    const missing = new Set<string>();
    if (owner === c.self) {
      for (const conn of c.home.renew(c.self, list.map((s) => s.conn))) missing.add(conn);
    } else {
      const peer = c.peerOf(owner);
      if (!peer) return;
      for (const page of chunkByChars(list.map((s) => s.conn), connChars, budget)) {
        try {
          const r = parsePeerReply(await c.request(peer, { t: 'renew', gateway: c.self, conns: page }));
          if (r.t === 'done' && Array.isArray(r.value)) for (const conn of r.value) if (typeof conn === 'string') missing.add(conn);
        } catch (e) {
          c.log.debug({ owner, err: (e as Error).message }, 'renew failed');
          return;
        }
      }
    }
    if (missing.size === 0) return;
    // Closed meanwhile: its logout went (or the home expires it); never bring it back.
    const live = new Set(c.sessions().map((s) => s.conn));
    await register(owner, list.filter((s) => missing.has(s.conn) && live.has(s.conn)));
  }

  return {
    async renew() {
      c.home.tick();
      const ring = c.ring();
      if (!ring) return;
      await Promise.all([...byOwner(ring, c.sessions())].map(([owner, list]) => renewAt(owner, list)));
    },

    async ringChanged() {
      const ring = c.ring();
      if (!ring) return;
      const watched = c.watches().map(({ conn, user, users }) => c.homes.watch({ gateway: c.self, conn, user }, users).catch(() => undefined));
      await Promise.all([...[...byOwner(ring, c.sessions())].map(([owner, list]) => register(owner, list)), ...watched]);
    },
  };
}
