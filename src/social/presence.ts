// What others see of a user homed here: presence and status as each viewer may see them (privacy,
// blocks, invisible), told to watchers only when what they see changes, and the contact details
// (`cinfo`) of the user as a contact entry shows them.
import type { Logger } from 'pino';
import { visible } from '../contacts/index.ts';
import type { SocialState } from '../contacts/index.ts';
import type { PresenceEvent, ServerFrame, UserPresence } from '../protocol/frames.ts';
import type { Lookup, Watcher } from '../presence/index.ts';
import type { States } from './states.ts';
import type { ContactInfo } from './types.ts';

/** What a user's presence looked like to others before a change. */
export type Was = { s: Pick<SocialState, 'status' | 'stext' | 'privacy' | 'pairs'>; online: boolean };

export const snap = (s: SocialState): Was['s'] => ({ status: s.status, stext: s.stext, privacy: s.privacy, pairs: new Map(s.pairs) });

/** What `viewer` sees of `user`'s presence, as an event. */
function shownTo(user: string, s: SocialState, online: boolean, viewer: string | undefined): PresenceEvent {
  const shown = online && visible(user, s, viewer, 'presence');
  const ev: PresenceEvent = { op: 'presence', user, online: shown };
  if (shown && s.status !== 'available') ev.status = s.status;
  if (shown && s.stext) ev.text = s.stext;
  return ev;
}
const sameEvent = (a: PresenceEvent, b: PresenceEvent) => a.online === b.online && a.status === b.status && a.text === b.text;

export type PresenceDeps = {
  lookup: (user: string) => Lookup;
  lastSeen: (user: string) => number | undefined;
  watchers: (user: string) => Watcher[];
  push: (gateway: string, conn: string, frame: ServerFrame) => void;
  log: Logger;
};

export class PresenceFilter {
  #d: PresenceDeps;
  #states: States;

  constructor(d: PresenceDeps, states: States) {
    this.#d = d;
    this.#states = states;
  }

  /** Tells the watchers `which` selects what they now see of `user`, each only if it differs
   * from what it saw before (`was`: the state before the change, with `wasOnline`); changes only,
   * so a watcher who cannot see the user hears nothing of it. */
  presenceTo(user: string, s: SocialState, which: (w: Watcher) => boolean = () => true, was?: Was): void {
    const online = this.#d.lookup(user).online;
    for (const w of this.#d.watchers(user)) {
      if (!which(w)) continue;
      const now = shownTo(user, s, online, w.user);
      const before = shownTo(user, { ...s, ...(was?.s ?? s) }, was?.online ?? online, w.user);
      if (was === undefined || !sameEvent(now, before)) this.#d.push(w.gateway, w.conn, now);
    }
  }

  async presenceFor(user: string, viewer: string | undefined, p: UserPresence): Promise<UserPresence> {
    const s = await this.#states.state(user);
    if (!visible(user, s, viewer, 'presence')) {
      // Invisible looks like gone since going invisible; hidden by a rule shows no time at all.
      const rule = viewer !== user && s.status === 'invisible' && !s.pairs.get(viewer ?? '')?.bm.on && visible(user, { ...s, status: 'available' }, viewer, 'presence');
      const last = rule ? (s.hiddenAt || this.#d.lastSeen(user)) : undefined;
      return last ? { online: false, last_seen: last } : { online: false };
    }
    if (!p.online) return p;
    const out: UserPresence = { ...p };
    if (s.status !== 'available') out.status = s.status;
    if (s.stext) out.text = s.stext;
    return out;
  }

  presenceChanged(user: string, online: boolean): void {
    // Going online or offline: only the watchers who may see the user hear of it.
    const tell = (st: SocialState) => this.presenceTo(user, st, undefined, { s: st, online: !online });
    const s = this.#states.peek(user);
    if (s) return tell(s);
    void this.#states.load(user).then(tell, (e: Error) => {
      this.#d.log.warn({ user, err: e.message }, 'presence change not told: the social state did not load');
      for (const w of this.#d.watchers(user)) this.#d.push(w.gateway, w.conn, { op: 'presence', user, online });
    });
  }

  /** `user`'s profile version and presence as `viewer` may see them. */
  infoOf(viewer: string, user: string, s: SocialState): ContactInfo {
    const out: ContactInfo = {};
    if (visible(user, s, viewer, 'profile')) out.profile_version = s.pver;
    const p = this.#d.lookup(user);
    const online = p.online && visible(user, s, viewer, 'presence');
    out.presence = { online };
    if (online && s.status !== 'available') out.presence.status = s.status;
    if (online && s.stext) out.presence.text = s.stext;
    return out;
  }
}
