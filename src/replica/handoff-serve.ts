// Member side of a join: serve the newcomer pages of the users it will hold, pause writes to the
// users that move to it for its final pass, and once the ring includes it, end the pause and drop
// what this node no longer holds.
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { Clock } from '../clock/index.ts';
import { fitPage } from './fit-page.ts';
import type { HandoffEnv } from './handoff-copy.ts';

const FREEZE_MS = 10_000;

export class HandoffMember {
  // Per newcomer: the freeze and the users handed to it (to drop once the ring includes it).
  readonly #outgoing = new Map<string, { release(): void; select: (u: string) => boolean }>();
  readonly #env: HandoffEnv;
  readonly #clock: Clock;
  readonly #signal: AbortSignal | undefined;
  /** The ring of the last membership a newcomer asked with (one per page otherwise). */
  #future: { key: string; ring: Ring } | undefined;

  constructor(env: HandoffEnv, clock: Clock, signal: AbortSignal | undefined) {
    this.#env = env;
    this.#clock = clock;
    this.#signal = signal;
  }

  /** Newcomers this node has paused users for and not yet seen in its ring. */
  outgoing(): string[] {
    return [...this.#outgoing.keys()];
  }

  /** One page of the users `req.target` will own. */
  async serve(req: Extract<PeerRequest, { t: 'handoff' }>): Promise<PeerReply> {
    const { self, store } = this.#env.c;
    const current = this.#env.c.ring();
    if (!current.has(self)) return { t: 'fail', code: 'unavailable', message: `${self} is not in its own ring yet` };
    const future = this.#futureRing(req.members);
    // Users this node is home of that the newcomer will hold, as home or as replica; writes
    // pause only for those not already in its hands (a node restarted before anyone declared
    // it dead is still in the ring: no ring change would end that pause).
    const complete = this.#env.c.complete ?? (() => true);
    const holds = (u: string) => current.owner(u) === self && future.owners(u, future.replicas).includes(req.target) && complete(u);
    const moving = (u: string) => holds(u) && !current.owners(u, current.replicas).includes(req.target);
    if (req.prove) {
      // What a restarted target kept: the users whose timeline it holds as this home does, up
      // to its seq (a node declared dead may hold writes it made cut off, which a digest tells).
      // `differ`: a user whose timeline there has another mid at some seq this home holds too;
      // its copy is replaced by this one in any case, and the target drops it before it copies
      // (a conflict found during the copy would start the copy over).
      const mine = req.prove.filter(([u, seq]) => holds(u) && store.committedSeq(u) >= seq);
      const digests = await store.prefixDigests(mine.map(([u, seq]): [string, number] => [u, seq]));
      const same = mine.filter(([u, , d]) => digests.get(u) === d).map(([u]) => u);
      const differ = mine.filter(([u, , d]) => digests.has(u) && digests.get(u) !== d).map(([u]) => u);
      return { t: 'done', value: { same, differ } };
    }
    const select = (u: string) => (req.at ? u >= req.at.user : u > req.from) && (req.to === null || u <= req.to) && holds(u);
    if (req.freeze) {
      this.#freeze(req.target, moving);
      await store.flush();
    }
    // One page is answered: it holds at most `limit` users, so no more states are read.
    for await (const page of store.exportUsers(select, { after: req.after, pageRows: req.limit, maxUsers: req.limit, from: req.at?.user ?? req.from, ...(req.at ? { skip: req.at } : {}) })) {
      return { t: 'done', value: fitPage(page) };
    }
    return { t: 'done', value: { users: [], entries: [] } };
  }

  #futureRing(members: string[]): Ring {
    const key = JSON.stringify(members);
    if (this.#future?.key !== key) this.#future = { key, ring: createRing(members, this.#env.opts) };
    return this.#future.ring;
  }

  /** The ring changed: release freezes whose newcomer is in it and drop what moved. */
  async ringChanged(ring: Ring): Promise<void> {
    const { self, store, log } = this.#env.c;
    for (const [target, o] of this.#outgoing) {
      if (!ring.has(target)) continue;
      this.#outgoing.delete(target);
      o.release();
      // Drop only what this node neither owns nor replicates in the new ring.
      const moved = [...store.userSeqs(o.select)].map(([u]) => u).filter((u) => !ring.owners(u, ring.replicas).includes(self));
      if (moved.length === 0) continue;
      try {
        const n = await store.dropUsers(moved);
        log.info({ to: target, users: moved.length, entries: n }, 'handoff: users now homed on the newcomer dropped here');
      } catch (e) {
        log.warn({ to: target, err: (e as Error).message }, 'handoff: could not drop moved users yet');
      }
    }
  }

  /** Pauses writes to the users moving to `target` (once per newcomer), for at most FREEZE_MS. */
  #freeze(target: string, moving: (u: string) => boolean): void {
    if (this.#outgoing.has(target)) return;
    this.#outgoing.set(target, { ...this.#env.c.home.freeze(moving, FREEZE_MS), select: moving });
    this.#env.c.log.info({ to: target }, 'handoff: writes to the users moving to the newcomer paused');
    // The home's pause ends by itself after FREEZE_MS; so does this record of it (a newcomer
    // that never joined). Stopping ends the wait: nothing is served any more.
    this.#clock.sleep(FREEZE_MS, this.#signal).then(() => {
      const o = this.#outgoing.get(target);
      if (o?.select === moving) this.#outgoing.delete(target);
    }, () => undefined);
  }
}
