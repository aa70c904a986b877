// Joining the cluster through seeds: the member table first (for the data copy, beforeJoin),
// then the join itself; retried until a seed lets this node in, or (for remembered seeds only)
// until it starts a new cluster alone. Private to src/cluster (see cluster.ts).
import { parsePeerReply } from '../protocol/peer.ts';
import type { ClusterGlue } from './glue.ts';

/** The pause between rounds over the seeds (a joiner refused by a handoff check tries again). */
const JOIN_RETRY_MS = 500;

type Seed = { name: string; peer: string; addrs: string[] };

export class Joiner {
  #g: ClusterGlue;
  #joining = false;

  constructor(g: ClusterGlue) {
    this.#g = g;
  }

  async join(seeds: string[], aloneAfterMs = Infinity): Promise<void> {
    if (this.#joining) return;
    this.#joining = true;
    try {
      await this.#rounds(seeds, aloneAfterMs);
    } finally {
      this.#joining = false;
    }
  }

  /** Where a node declared dead asks to come back: the members it still believes alive. */
  rejoinSeeds(): string[] {
    const seeds: string[] = [];
    for (const mv of this.#g.m.members()) {
      if (mv.name === this.#g.self || mv.state === 'dead') continue;
      for (const a of mv.addrs) seeds.push(a.includes('/p2p/') ? a : `${a}/p2p/${mv.peer}`);
    }
    return seeds.length ? seeds : this.#g.init.seeds;
  }

  async #rounds(seeds: string[], aloneAfterMs: number): Promise<void> {
    const g = this.#g;
    const giveUpAt = g.clock.now() + aloneAfterMs;
    for (let attempt = 0; !g.stopped && !g.m.joined(); attempt++) {
      if (g.clock.now() >= giveUpAt) {
        g.log.warn({ seeds: g.init.seeds, waitedMs: g.init.aloneAfterMs }, 'no remembered member answered: starting a new cluster alone');
        return g.startAlone('started a new cluster alone');
      }
      for (const addr of seeds) {
        if (g.stopped || g.m.joined()) return;
        try {
          await this.#through(addr);
          return;
        } catch (e) {
          if (attempt % 10 === 0) g.log.warn({ seed: addr, err: (e as Error).message }, 'cannot join through seed yet; retrying');
        }
      }
      try {
        await g.clock.sleep(JOIN_RETRY_MS, g.stopping.signal);
      } catch {
        return; // stopped
      }
    }
  }

  /** One attempt through one seed; throws when it did not get this node in. */
  async #through(addr: string): Promise<void> {
    const g = this.#g;
    const peer = await g.net.dial(addr);
    if (g.beforeJoin) await g.beforeJoin(...(await this.#members(peer)));
    const r = parsePeerReply(await g.net.request(peer, { t: 'join', entries: g.m.digest({ joining: true }) }));
    if (r.t !== 'done') throw new Error(`join refused: ${JSON.stringify(r).slice(0, 200)}`);
    g.apply(g.m.merge(r.value, g.nameOf(peer)));
    g.m.markJoined();
    g.apply(g.m.tick());
    g.log.info({ seed: addr, members: g.m.ringMembers() }, 'joined the cluster');
    g.gossip();
    g.heardFromAll();
  }

  /** The seed's live members (their addresses learnt), and whether it counts this node as one. */
  async #members(peer: string): Promise<[Seed[], boolean]> {
    const g = this.#g;
    const t = parsePeerReply(await g.net.request(peer, { t: 'members' }));
    const value = t.t === 'done' ? t.value : undefined;
    const table = (Array.isArray(value) ? value : []) as Record<string, unknown>[];
    const inPlace = table.some((e) => e && e.name === g.self && e.status === 'alive');
    const alive = table.filter((e: Record<string, unknown>) =>
      e && e.status === 'alive' && typeof e.name === 'string' && typeof e.peer === 'string' && Array.isArray(e.addrs) && e.name !== g.self) as Seed[];
    // A seed that is not joined itself (it may be rejoining too, after the same partition)
    // has no member table to give: copying from nobody and joining would bring this
    // node's stale data back as if it were current.
    if (alive.length === 0) throw new Error('the seed is not a joined member (yet)');
    for (const a of alive) g.net.addAddrs(a.peer, a.addrs.filter((x) => typeof x === 'string'));
    return [alive, inPlace];
  }
}
