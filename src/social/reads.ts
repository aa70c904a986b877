// Reads of the users homed here: contact pages with each contact's details from its own home
// (`cinfo`), profiles and details as a viewer may see them, admissions, and the `contact` events
// that tell a user's devices how a relation now looks.
import type { Logger } from 'pino';
import { admits, counts, listed, profileOf, view, visible } from '../contacts/index.ts';
import type { Limits, Pair, Refusal } from '../contacts/index.ts';
import type { Profile, ServerFrame } from '../protocol/frames.ts';
import type { SessionRef } from '../presence/index.ts';
import type { PresenceFilter } from './presence.ts';
import type { States } from './states.ts';
import type { AdmitKind, ContactInfo, ContactsPage } from './types.ts';
import { UnavailableError } from '../protocol/errors.ts';

export type ReadDeps = {
  sessions: (user: string) => SessionRef[];
  push: (gateway: string, conn: string, frame: ServerFrame) => void;
  infoAnywhere: (viewer: string, users: string[]) => Promise<Record<string, ContactInfo>>;
  limits: Limits;
  log: Logger;
};

export class Reads {
  #d: ReadDeps;
  #states: States;
  #presence: PresenceFilter;

  constructor(d: ReadDeps, states: States, presence: PresenceFilter) {
    this.#d = d;
    this.#states = states;
    this.#presence = presence;
  }

  async contacts(user: string, after: string | undefined, limit: number): Promise<ContactsPage> {
    const s = await this.#states.load(user);
    const all = [...s.pairs].filter(([u, p]) => listed(p) && (after === undefined || u > after)).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const page = all.slice(0, limit);
    // The contacts' presence and profile versions from their homes; without them when a home
    // cannot be reached, rather than no list at all.
    let infos: Record<string, ContactInfo> = {};
    if (page.length) {
      try {
        infos = await this.#d.infoAnywhere(user, page.map(([u]) => u));
      } catch (e) {
        this.#d.log.info({ user, err: (e as Error).message }, 'contacts listed without presence: a home did not answer');
      }
    }
    const contacts = page.map(([u, p]) => ({ ...view(u, p), ...(infos[u] ?? {}) }));
    const more = all.length > limit;
    return more ? { contacts, more, next: page[page.length - 1]![0] } : { contacts, more };
  }

  async profiles(viewer: string, users: string[]): Promise<Record<string, Profile | null>> {
    const out: Record<string, Profile | null> = Object.create(null);
    for (const u of users) {
      const s = await this.#states.state(u);
      out[u] = s.pver > 0 && visible(u, s, viewer, 'profile') ? profileOf(s) : null;
    }
    return out;
  }

  async info(viewer: string, users: string[]): Promise<Record<string, ContactInfo>> {
    const out: Record<string, ContactInfo> = Object.create(null);
    for (const u of users) out[u] = this.#presence.infoOf(viewer, u, await this.#states.state(u));
    return out;
  }

  async admit(to: string, from: string, kind: AdmitKind, epoch?: number): Promise<Refusal | undefined> {
    const s = await this.#states.state(to);
    const no = admits(s, from, kind);
    if (no) return no;
    if (kind === 'request') {
      const p = s.pairs.get(from);
      // The asker's home holds an older epoch of the relation: a decline or removal of ours has
      // not reached it yet, and judged against its view a repeated request would be "no change"
      // (nothing written) and then undone by that copy. It waits for the copy instead.
      if (epoch !== undefined && p !== undefined && p.fe > epoch) {
        throw new UnavailableError(`a change by ${to} is still on its way to ${from}'s home; try again`);
      }
      // A request crossing one of ours is an accept; a repeated one changes nothing.
      if (!p?.fm && !p?.ft && counts(s).pending >= this.#d.limits.maxPending) {
        return { code: 'too_large', message: `${to} has ${this.#d.limits.maxPending} requests waiting; try again later` };
      }
    }
    return undefined;
  }

  /** A contact event to `user`'s devices with the other side's profile version and presence. */
  async announce(user: string, other: string, p: Pair): Promise<void> {
    const sessions = this.#d.sessions(user);
    if (sessions.length === 0) return;
    let info: ContactInfo = {};
    try {
      info = (await this.#d.infoAnywhere(user, [other]))[other] ?? {};
    } catch (e) {
      this.#d.log.debug({ user, other, err: (e as Error).message }, 'contact event without presence');
    }
    const frame: ServerFrame = { op: 'contact', ...view(other, p), ...info };
    for (const ss of this.#d.sessions(user)) this.#d.push(ss.gateway, ss.conn, frame);
  }
}
