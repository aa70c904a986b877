// The replica side of replication: a page from a home is imported for the users this node's own
// ring says the sender is home of and this node holds (fencing); every other user is refused, and
// every user whose import found a gap or a stale copy is answered with where to backfill from.
import type { Logger } from 'pino';
import type { Ring } from '../ring/index.ts';
import type { ExportPage, Store } from '../store/index.ts';
import type { Page, PeerReply } from '../protocol/peer.ts';

export type ApplyEnv = {
  self: string;
  store: Store;
  log: Logger;
  ring: () => Ring;
  joined: () => boolean;
  lease: () => boolean;
  onFilled?: (user: string) => void;
  /** This node's copy of `user` was stale and dropped: writes it waits for as the home are void. */
  replaced(user: string): void;
};

export async function applyPage(env: ApplyEnv, fromName: string | undefined, page: Page): Promise<PeerReply> {
  const { self, store, log } = env;
  const ring = env.ring();
  const refused: string[] = [];
  // Without the lease this node may be on the minority side, where the sender's writes must
  // not be confirmed: every user is refused (the home asks again).
  const leased = env.lease();
  const ok = (u: string) => {
    const owners = ring.owners(u, ring.replicas);
    return leased && env.joined() && owners[0] === fromName && owners.includes(self);
  };
  const p: ExportPage = { users: page.users.filter((s) => ok(s.user)), entries: page.entries.filter((e) => ok(e.user)) };
  for (const u of new Set([...page.users.map((s) => s.user), ...page.entries.map((e) => e.user)])) if (!ok(u)) refused.push(u);
  // Every user of the batch is answered: imported, refused, or a gap to backfill from.
  const gaps: Record<string, number> = {};
  const stale: string[] = [];
  const rejected = await store.importEach(p);
  for (const [u, err] of rejected) {
    if (err.name === 'ConflictError') stale.push(u);
    else gaps[u] = store.userSeqs((x) => x === u).get(u) ?? 0;
  }
  // An import with the home's snapshot leaves this copy whole up to it: complete from now on.
  for (const s of p.users) if (!rejected.has(s.user)) env.onFilled?.(s.user);
  if (stale.length) {
    // What this replica held for them is stale (from before a restart): take the home's copy from scratch.
    log.warn({ from: fromName, users: stale.length }, 'replica: replacing stale copies');
    await store.dropUsers(stale);
    for (const u of stale) {
      gaps[u] = 0;
      env.replaced(u);
    }
  }
  return { t: 'done', value: { gaps, refused } };
}
