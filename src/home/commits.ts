// From commit to push: an entry committed at the home is pushed to its user's sessions once
// every replica has it, and until then reads stop short of it (Unconfirmed).
import type { Presence } from '../presence/index.ts';
import type { StoredEntry } from '../store/index.ts';
import { toMsg } from './reads.ts';
import type { Push } from './types.ts';
import type { Unconfirmed } from './unconfirmed.ts';

/** Pushes every committed entry to every session of its user; returns how many frames. */
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

export type CommitPushDeps = {
  presence: Presence;
  push: Push;
  unconfirmed: Unconfirmed;
  /** Resolves once the user's replicas hold everything committed for the user so far; rejects
   * when this node is no longer the user's home. */
  replicated: (user: string) => Promise<void>;
};

/** The store's commit hook for timelines. Pushed once on every copy, not at the home's commit: a
 * device must never see an entry that a crash of the home could take back (its seq then given to
 * another message). */
export function createCommitPush(c: CommitPushDeps): (entries: StoredEntry[]) => void {
  return (entries) => {
    const byUser = new Map<string, StoredEntry[]>();
    for (const e of entries) {
      const l = byUser.get(e.user);
      if (l) l.push(e);
      else byUser.set(e.user, [e]);
    }
    for (const [u, es] of byUser) {
      // Not replicated (no longer home): not pushed; the device gets what survives by sync.
      const acked = c.replicated(u);
      c.unconfirmed.track(u, es[0]!.seq, acked);
      acked.then(() => pushCommitted(es, c.presence, c.push), () => undefined);
    }
  };
}
