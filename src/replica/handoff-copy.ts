// What every side of a handoff shares: its collaborators, the ring settings to build the ring of
// the future membership with, the progress of this node's own copy, and importing a copied page.
import type { HandoffComponents } from './handoff.ts';
import type { ExportPage } from '../store/index.ts';
import type { CopyTracker } from './copy-progress.ts';

export type HandoffEnv = {
  c: HandoffComponents;
  /** Settings of this cluster's rings, for the ring with a newcomer in or a leaver out. */
  opts: { vnodes: number; replicas: number };
  progress: CopyTracker;
};

/** Rows per export page of a copy. */
export const PAGE_ROWS = 2000;
/** How long one page of a copy may take on the wire. */
export const PAGE_TIMEOUT_MS = 30_000;

/** What this node held for the users of a page conflicted with it: its copy is dropped, and the
 * copy starts again from scratch. */
export class RetryFromScratch extends Error {
  override name = 'RetryFromScratch';
}

/** Imports a copied page. `noneAhead`: the page's snapshots are the authoritative copy, so a user
 * whose timeline is longer here than its snapshot holds a stale tail, as stale as a contradiction. */
export async function importPage(env: HandoffEnv, page: ExportPage, o: { noneAhead?: boolean } = {}): Promise<void> {
  const { store, log } = env.c;
  const ahead = o.noneAhead ? page.users.find((u) => store.committedSeq(u.user) > u.seq) : undefined;
  let why: string | undefined;
  if (ahead) why = `${ahead.user}'s timeline reaches seq ${store.committedSeq(ahead.user)} here, ${ahead.seq} in the copy`;
  else {
    try {
      await store.importData(page);
      return;
    } catch (e) {
      const name = (e as Error).name;
      if (name !== 'ConflictError' && name !== 'GapError') throw e;
      why = (e as Error).message;
    }
  }
  // What this node held for those users is stale (from before a restart, or written while cut
  // off and never confirmed): take the member's.
  const users = [...new Set([...page.users.map((u) => u.user), ...page.entries.map((x) => x.user)])];
  log.warn({ users: users.length, err: why }, 'handoff: replacing stale local data');
  await store.dropUsers(users);
  throw new RetryFromScratch();
}
