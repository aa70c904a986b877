// Custody: whether this node holds a COMPLETE copy of a key (a user's timeline, a group's log),
// every write ever confirmed for it, so that it may serve the key as its home.
//
// Completeness follows from how copies are made:
// - a join copies everything the newcomer will hold before the ring names it (handoff pull), and
//   a graceful leave pushes everything the leaver held to the next holders before it announces:
//   after either, every holder of every key is complete (`changed` with no deaths);
// - a holder that keeps holding a key across ring changes stays complete: a home confirms a write
//   only once every replica has it;
// - a member that DIES takes with it what only it had. The holders a death adds (a replica newly
//   placed on this node, or a home for a key whose every holder died, as on the majority side of
//   a partition) are incomplete until the key's home fills them (`filled`: a replication import
//   that brought the home's snapshot). Until then this node must not serve the key: a home that
//   started from an empty or partial copy would hand out seqs that other copies already hold (a
//   fork), and its copy would later replace the one with the confirmed writes.
//
// So: a key is complete here unless the latest ring change that made this node a new holder of
// it was a death, and no fill came since. Keys are never enumerated: the rule is evaluated per key
// against the rings of the changes seen since this node last copied everything (`reset`); changes
// older than the oldest death are not kept (they cannot be the answer), so a cluster without
// deaths keeps none.
import type { Ring } from '../ring/index.ts';

export type Custody = {
  /** The ring changed from `prev` to `next`; `died`: members that left it by being declared dead. */
  changed(prev: Ring, next: Ring, died: string[]): void;
  /** Whether this node holds every confirmed write of `key` (asked for keys it holds now). */
  complete(key: string): boolean;
  /** The key's home brought this node's copy up to its own (a replication import with its snapshot). */
  filled(key: string): void;
  /** This node copied everything it holds under the current ring (it joined through the data copy). */
  reset(): void;
  /** Ring changes kept (the oldest is a death), and keys filled since: for /cluster and metrics. */
  view(): { deaths: number; filled: number };
};

export function createCustody(self: string, replicas: () => number): Custody {
  // Ring changes since the oldest death seen since the last reset, oldest first.
  let changes: { prev: Ring; next: Ring; death: boolean }[] = [];
  // Keys filled since a death made this node their new holder; dropped once it stops holding them.
  const fills = new Set<string>();
  let current: Ring | undefined;
  const holds = (r: Ring, key: string) => r.owners(key, replicas()).includes(self);

  return {
    changed(prev, next, died) {
      current = next;
      for (const k of fills) if (!holds(next, k)) fills.delete(k);
      changes.push({ prev, next, death: died.length > 0 });
      while (changes.length && !changes[0]!.death) changes.shift();
    },

    complete(key) {
      if (fills.has(key)) return true;
      for (let i = changes.length - 1; i >= 0; i--) {
        const d = changes[i]!;
        // The latest change that made this node a holder decides: a join or leave copied it here.
        if (holds(d.next, key) && !holds(d.prev, key)) return !d.death;
      }
      return true;
    },

    filled(key) {
      if (changes.length === 0) return;
      if (current && !holds(current, key)) return;
      fills.add(key);
    },

    reset() {
      changes = [];
      fills.clear();
    },

    view: () => ({ deaths: changes.filter((d) => d.death).length, filled: fills.size }),
  };
}
