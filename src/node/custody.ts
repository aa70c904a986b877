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
// So: a key is complete here unless some death since this node last copied everything (`reset`)
// made this node a new holder of it, and no fill came since. Keys are never enumerated: the rule
// is evaluated per key against the rings of the deaths seen (one pair of rings per death event).
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
  /** Deaths whose new holders still count as incomplete, and keys filled since: for /cluster. */
  view(): { deaths: number; filled: number };
};

export function createCustody(self: string, replicas: () => number): Custody {
  // Per death event: the rings before and after it. A key that `next` gives to this node and
  // `prev` did not came here with nothing.
  let deaths: { prev: Ring; next: Ring }[] = [];
  // Keys filled since a death made this node their new holder; dropped once it stops holding them.
  const fills = new Set<string>();
  let current: Ring | undefined;
  const holds = (r: Ring, key: string) => r.owners(key, replicas()).includes(self);

  return {
    changed(prev, next, died) {
      current = next;
      for (const k of fills) if (!holds(next, k)) fills.delete(k);
      if (died.length === 0) return;
      deaths.push({ prev, next });
    },

    complete(key) {
      if (fills.has(key)) return true;
      for (const d of deaths) if (holds(d.next, key) && !holds(d.prev, key)) return false;
      return true;
    },

    filled(key) {
      if (deaths.length === 0) return;
      if (current && !holds(current, key)) return;
      fills.add(key);
    },

    reset() {
      deaths = [];
      fills.clear();
    },

    view: () => ({ deaths: deaths.length, filled: fills.size }),
  };
}
