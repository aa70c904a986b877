// The social role's parts put together (states, admission gate, presence filter, reads, writes),
// and what the store's commits mean here: the other side's changes told to this side's devices.
import type { Logger } from 'pino';
import { emptyPair, sameView, view } from '../contacts/index.ts';
import type { StoredEntry } from '../store/index.ts';
import { systemClock } from '../clock/index.ts';
import { Gates } from './gate.ts';
import { PresenceFilter } from './presence.ts';
import { Reads } from './reads.ts';
import { States } from './states.ts';
import type { Folded } from './states.ts';
import type { SocialComponents } from './types.ts';
import { Writes } from './writes.ts';

export class SocialRole {
  readonly states: States;
  readonly gates: Gates;
  readonly presence: PresenceFilter;
  readonly reads: Reads;
  readonly writes: Writes;
  #c: SocialComponents;
  #log: Logger;

  constructor(c: SocialComponents) {
    this.#c = c;
    this.#log = c.log;
    const clock = c.clock ?? systemClock;
    const now = c.now ?? (() => clock.now());
    this.states = new States(c.store, c.owns, c.signal);
    this.gates = new Gates({ admitAt: c.admitAt, revokeEverywhere: c.revokeEverywhere, now, clock, signal: c.signal, log: c.log });
    this.presence = new PresenceFilter(c, this.states);
    this.reads = new Reads(c, this.states, this.presence);
    this.writes = new Writes(c, { states: this.states, gates: this.gates, presence: this.presence, reads: this.reads });
  }

  /** The store committed these entries: social log entries are folded into the cached states. */
  committed(entries: StoredEntry[]): void {
    for (const e of entries) {
      const f = this.states.fold(e);
      if (f?.other !== undefined) this.#told(e.user, f, f.other);
    }
  }

  /** The other side's change, folded in (or not in memory): this side's devices hear of it once
   * it is on every copy. */
  #told(key: string, f: Folded, other: string): void {
    const { user, s, before } = f;
    const log = this.#log;
    if (!s) {
      // Not in memory (the ring changed since it was read): what it was before is not known,
      // so the devices hear the relation as it is now.
      void this.#c.replicated(key).then(() => this.states.load(user)).then((st) => this.reads.announce(user, other, st.pairs.get(other) ?? emptyPair()))
        .catch((err: Error) => log.debug({ user, other, err: err.message }, 'contact change not announced'));
      return;
    }
    if (!before) return;
    const after = s.pairs.get(other)!;
    const changed = !sameView(view(other, before), view(other, after));
    void this.#c.replicated(key).then(async () => {
      if (changed) await this.reads.announce(user, other, after);
      await this.writes.effects(user, s, other, before, after);
    }).catch((err: Error) => log.debug({ user, other, err: err.message }, 'contact change not announced'));
  }
}
