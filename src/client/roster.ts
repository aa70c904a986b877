// The user's contacts as the session keeps them (login with `roster: true`): the roster pages the
// node pushes after each welcome build a fresh map that replaces the old one once the last page is
// in (a reconnect's reload drops whatever changed unseen while the connection was down, and the
// old map stays readable until then); `contact` events replace one entry, `presence` events update
// a contact's presence. The node caps contacts per user; the map is capped here too, so that a
// faulty node cannot grow it without end.
import type { Contact, ContactEvent, PresenceEvent, ProfileEvent, RosterEvent } from '../protocol/frames.ts';

export class Roster {
  #max: number;
  #contacts = new Map<string, Contact>();
  /** The map being built from the current login's pages (undefined when no load is under way). */
  #loading: Map<string, Contact> | undefined;
  #loaded = false;
  /** Entries refused because the map was full (for the app's logs). */
  dropped = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get contacts(): ReadonlyMap<string, Contact> {
    return this.#contacts;
  }
  /** True once a whole roster (every page of one login) is in. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** A login with `roster: true` was welcomed: its pages start a fresh map. */
  loggingIn(): void {
    this.#loading = new Map();
  }

  /** A roster page; true when it was the last one and the map was replaced. */
  page(p: RosterEvent): boolean {
    if (!this.#loading) this.#loading = new Map(); // pages without a login we know of: take them all the same
    for (const c of Array.isArray(p.contacts) ? p.contacts : []) this.#put(this.#loading, c);
    if (p.more) return false;
    this.#contacts = this.#loading;
    this.#loading = undefined;
    this.#loaded = true;
    return true;
  }

  /** A contact event: the whole entry as the user now sees it. Returns the entry kept, or undefined
   * when the user is no longer a contact (state none, neither followed nor following nor blocked). */
  contact(e: ContactEvent): Contact | undefined {
    const { op: _op, ...c } = e;
    let kept: Contact | undefined;
    for (const m of this.#loading ? [this.#contacts, this.#loading] : [this.#contacts]) {
      // An event without presence keeps the presence known (the node may leave it out of events).
      const old = m.get(c.user);
      const entry: Contact = { ...c, lists: Array.isArray(c.lists) ? [...c.lists] : [] };
      if (!entry.presence && old?.presence) entry.presence = old.presence;
      if (!listed(entry)) m.delete(c.user);
      else if (this.#put(m, entry) && m === this.#contacts) kept = entry;
    }
    return kept;
  }

  /** A presence event: true if it was about a contact (whose presence is updated). */
  presence(e: PresenceEvent): boolean {
    let hit = false;
    for (const m of this.#loading ? [this.#contacts, this.#loading] : [this.#contacts]) {
      const c = m.get(e.user);
      if (!c) continue;
      c.presence = e.online
        ? { online: true, ...(e.status ? { status: e.status } : {}), ...(e.text ? { text: e.text } : {}) }
        : { online: false };
      hit ||= m === this.#contacts;
    }
    return hit;
  }

  /** A profile event: the contact's profile_version follows it. True if it was about a contact. */
  profile(e: ProfileEvent): boolean {
    const c = this.#contacts.get(e.user);
    if (c && typeof e.version === 'number') c.profile_version = e.version;
    return !!c;
  }

  #put(m: Map<string, Contact>, c: Contact): boolean {
    if (!c || typeof c.user !== 'string') return false;
    if (!m.has(c.user) && m.size >= this.#max) {
      this.dropped++;
      return false;
    }
    m.set(c.user, c);
    return true;
  }
}

/** Whether `contacts` lists the user: any state but none, or a follow either way, or a block. */
export function listed(c: Contact): boolean {
  return c.state !== 'none' || c.following || c.follows_me || c.blocked;
}
