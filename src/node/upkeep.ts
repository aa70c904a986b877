// Session upkeep on the gateway side: keeps this gateway's sessions and watches registered at
// their homes — renewed in one message per home, registered again after a ring change or when
// a home holds fewer than we have (it restarted or the ring moved the user).
import type { Logger } from 'pino';
import type { SessionRef } from '../presence/index.ts';
import type { Ring } from '../ring/index.ts';
import type { PeerRequest } from '../protocol/peer.ts';
import type { Home, Homes } from './home.ts';

export type UpkeepComponents = {
  self: string;
  ring: () => Ring | undefined; // undefined until joined
  peerOf: (name: string) => string | undefined;
  request: (peer: string, msg: PeerRequest) => Promise<unknown>;
  home: Home;
  homes: Homes;
  sessions: () => SessionRef[];
  watches: () => { conn: string; users: string[] }[];
  log: Logger;
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

export function createUpkeep(c: UpkeepComponents): Upkeep {
  async function register(owner: string, list: SessionRef[]): Promise<void> {
    if (owner === c.self) return c.home.register(list);
    const peer = c.peerOf(owner);
    if (!peer) return;
    await c.request(peer, { t: 'register', sessions: list })
      .catch((e) => c.log.warn({ owner, err: (e as Error).message }, 'could not register sessions; retrying at the next renew'));
  }

  return {
    async renew() {
      c.home.tick();
      const ring = c.ring();
      const groups = ring ? byOwner(ring, c.sessions()) : new Map<string, SessionRef[]>();
      if (!groups.has(c.self)) c.home.renew(c.self);
      await Promise.all([...groups].map(async ([owner, list]) => {
        if (owner === c.self) {
          if (c.home.renew(c.self) < list.length) c.home.register(list);
          return;
        }
        const peer = c.peerOf(owner);
        if (!peer) return;
        try {
          const r = (await c.request(peer, { t: 'renew', gateway: c.self, sessions: list.length })) as { t?: string; value?: unknown };
          if (r.t === 'done' && typeof r.value === 'number' && r.value < list.length) await register(owner, list);
        } catch (e) {
          c.log.debug({ owner, err: (e as Error).message }, 'renew failed');
        }
      }));
    },

    async ringChanged() {
      const ring = c.ring();
      if (!ring) return;
      const watched = c.watches().map(({ conn, users }) => c.homes.watch({ gateway: c.self, conn }, users).catch(() => undefined));
      await Promise.all([...[...byOwner(ring, c.sessions())].map(([owner, list]) => register(owner, list)), ...watched]);
    },
  };
}
