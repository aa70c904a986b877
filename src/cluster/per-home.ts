// Requests about many users at once (presence, watches, profiles, contact info): split by the
// users' homes, run locally for this node's and sent once per other home, in parallel. Private
// to src/cluster (see router.ts).
import { parsePeerReply } from '../protocol/peer.ts';
import type { PeerRequest } from '../protocol/peer.ts';
import type { Profile, UserPresence } from '../protocol/frames.ts';
import { UnavailableError } from '../protocol/errors.ts';
import type { Watcher } from '../home/home.ts';
import type { ContactInfo } from '../social/social.ts';
import type { RouterContext } from './router-context.ts';

export class PerHome {
  #x: RouterContext;

  constructor(x: RouterContext) {
    this.#x = x;
  }

  /** Splits users by home and runs `here` locally and `there` per remote home. */
  async run<T>(users: string[], here: (us: string[]) => Promise<T>, there: (peer: string, us: string[]) => Promise<T>): Promise<T[]> {
    const { c, self } = this.#x;
    if (!c.joined()) throw new UnavailableError('this node has not joined the cluster yet');
    const byOwner = new Map<string, string[]>();
    for (const u of new Set(users)) {
      const o = c.ring().owner(u) ?? self;
      let l = byOwner.get(o);
      if (!l) byOwner.set(o, (l = []));
      l.push(u);
    }
    return Promise.all([...byOwner].map(async ([owner, us]) => {
      if (owner === self) return here(us);
      const peer = c.peerOf(owner);
      if (!peer) throw new UnavailableError(`no address for ${owner}`);
      try {
        return await there(peer, us);
      } catch (e) {
        if ((e as Error).name === 'ForbiddenError') throw e;
        throw new UnavailableError(`${owner}: ${(e as Error).message}`);
      }
    }));
  }

  /** One request to a peer; its `done` value, or UnavailableError. */
  async remote(peer: string, req: PeerRequest, ms = this.#x.timeoutMs): Promise<unknown> {
    const reply = parsePeerReply(await this.#x.c.link.request(peer, req, { timeoutMs: ms }));
    if (reply.t === 'fail') throw new UnavailableError(reply.message);
    return reply.value;
  }

  async profiles(viewer: string, users: string[]): Promise<Record<string, Profile | null>> {
    const parts = await this.run<Record<string, Profile | null>>(users, (us) => this.#x.side.social.profiles(viewer, us), async (peer, us) => {
      const v = await this.remote(peer, { t: 'profiles', viewer, users: us });
      if (typeof v !== 'object' || v === null) throw new Error('malformed profiles reply');
      return Object.fromEntries(us.map((u) => [u, Object.hasOwn(v, u) ? (v as Record<string, Profile | null>)[u]! : null]));
    });
    const out: Record<string, Profile | null> = Object.create(null);
    for (const p of parts) for (const u of Object.keys(p)) out[u] = p[u]!;
    return out;
  }

  async info(viewer: string, users: string[]): Promise<Record<string, ContactInfo>> {
    const parts = await this.run<Record<string, ContactInfo>>(users, (us) => this.#x.side.social.info(viewer, us), async (peer, us) => {
      const v = await this.remote(peer, { t: 'cinfo', viewer, users: us });
      if (typeof v !== 'object' || v === null) throw new Error('malformed cinfo reply');
      return Object.fromEntries(us.flatMap((u) => (Object.hasOwn(v, u) ? [[u, (v as Record<string, ContactInfo>)[u]!]] : [])));
    });
    const out: Record<string, ContactInfo> = Object.create(null);
    for (const p of parts) for (const u of Object.keys(p)) out[u] = p[u]!;
    return out;
  }

  async presence(users: string[], viewer?: string): Promise<Record<string, UserPresence>> {
    const parts = await this.run<Record<string, UserPresence>>(users, (us) => this.#x.side.local.presence(us, viewer), async (peer, us) => {
      const v = await this.remote(peer, { t: 'presence', users: us, ...(viewer !== undefined ? { viewer } : {}) });
      if (typeof v !== 'object' || v === null) throw new Error('malformed presence reply');
      // Own properties only: a user may be called constructor or __proto__.
      return Object.fromEntries(us.map((u) => [u, Object.hasOwn(v, u) ? (v as Record<string, UserPresence>)[u]! : { online: false }]));
    });
    const out: Record<string, UserPresence> = Object.create(null);
    for (const u of users) for (const p of parts) if (Object.hasOwn(p, u)) out[u] = p[u]!;
    return out;
  }

  async watch(w: Watcher, users: string[], on: boolean): Promise<void> {
    const local = this.#x.side.local;
    await this.run(users, (us) => (on ? local.watch(w, us) : local.unwatch(w, us)), async (peer, us) => void (await this.remote(peer, { t: 'watch', watcher: w, users: us, on })));
  }

  /** Every other member forgets the admissions it cached for these users. */
  async revokeEverywhere(users: string[]): Promise<void> {
    const { c, self } = this.#x;
    if (!c.joined()) return;
    await Promise.all(c.ring().members.filter((m) => m !== self).map(async (m) => {
      const peer = c.peerOf(m);
      if (peer) await this.remote(peer, { t: 'revoke', users }, 2000);
    }));
  }
}
