// Answers from memory alone, without a job: seqs, cursors, unread counts, appends not yet
// committed, and a user's state as a snapshot for replication.
import type { Store, Unread } from './index.ts';
import type { UserSnapshot } from './snapshots.ts';
import type { UserState } from './state.ts';

/** Store.snapshot. */
function snapshot(st: UserState | undefined, user: string, convs?: string[], devices?: string[]): UserSnapshot | undefined {
  if (!st) return undefined;
  const snap: UserSnapshot = {
    user, seq: st.committed,
    // Named ones looked up by name: a user may have tens of thousands of conversations.
    convs: convs ? convs.flatMap((conv) => {
      const cs = st.convs.get(conv);
      return cs ? [{ conv, ...cs }] : [];
    }) : [...st.convs].map(([conv, cs]) => ({ conv, ...cs })),
    cursors: devices ? devices.flatMap((device) => {
      const acked = st.cursors.get(device);
      return acked === undefined ? [] : [{ device, acked }];
    }) : [...st.cursors].map(([device, acked]) => ({ device, acked })),
  };
  if (st.lastSeen !== undefined) snap.lastSeen = st.lastSeen;
  if (!convs && !devices && st.outbox.size) snap.outbox = [...st.outbox.values()];
  return snap;
}

function unread(st: UserState | undefined): Unread {
  const convs: Record<string, number> = {};
  let total = 0;
  for (const [conv, cs] of st?.convs ?? []) {
    const n = cs.ocum - cs.readCum;
    if (n > 0) {
      convs[conv] = n;
      total += n;
    }
  }
  return { total, convs };
}

export function createMemoryReads(users: Map<string, UserState>):
  Pick<Store, 'peekDedup' | 'snapshot' | 'lastSeq' | 'committedSeq' | 'holding' | 'acked' | 'unread' | 'lastSeen' | 'knownUsers'> {
  return {
    peekDedup: (user, dkey) => users.get(user)?.pending.get(dkey),
    snapshot: (user, convs, devices) => snapshot(users.get(user), user, convs, devices),
    lastSeq: (user) => users.get(user)?.seq ?? 0,
    committedSeq: (user) => users.get(user)?.committed ?? 0,
    holding: (user) => users.get(user),
    acked: (user, device) => users.get(user)?.cursors.get(device) ?? 0,
    unread: (user) => unread(users.get(user)),
    lastSeen: (user) => users.get(user)?.lastSeen,
    knownUsers: () => users.keys(),
  };
}
