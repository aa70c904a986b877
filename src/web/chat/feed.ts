// What the store learns from the node without a view asking: the session's events, the
// conversation list after each login, presence watches and the contacts' profiles.
//
// After each login the list is rebuilt from the node: `sync` of the newest 500 timeline entries
// (so each recent conversation has its last message) and `unread` for the counts; the session's
// own `since: 'latest'` keeps old entries out of the push stream. After a reconnect the unread
// counts and presence are asked again (changes during the outage were not pushed to us).
//
// Contacts: the session logs in with `roster: true`, so the node pushes the contacts after each
// login and their presence and profile changes after that; their names come from `profiles`
// (asked again only when a contact's profile_version moves past the one held). The user's own
// status and name are asked once logged in.
import type { Contact, ImSession, PendingSend, StateInfo, StatusValue } from '../../client/index.ts';
import type { Presence, Store } from './store.ts';

const RECENT = 500;
const TYPING_SHOWN_MS = 4000;

/** Requests whose failure the views show some other way (or not at all) must not reject unheard. */
export function quiet<T>(p: Promise<T>): void {
  p.catch(() => undefined);
}

export class Feed {
  readonly #session: ImSession;
  readonly #store: Store;
  /** Marks a conversation read once things settle (the Chat's, shared with the views' actions). */
  readonly #scheduleRead: (conv: string) => void;
  #wasLive = false;
  #watched = new Set<string>();
  #watchQueue = new Set<string>();
  /** Profiles being fetched (a user asked once until the answer). */
  #profileAsked = new Set<string>();

  constructor(session: ImSession, store: Store, scheduleRead: (conv: string) => void) {
    this.#session = session;
    this.#store = store;
    this.#scheduleRead = scheduleRead;
    this.#listen();
  }

  #listen(): void {
    const s = this.#session;
    const store = this.#store;
    s.on('state', (info) => this.#onState(info));
    s.on('message', (e) => {
      if (store.addEntry(e, true)) {
        this.watchPeerOf(e.conv);
        if (store.reading(e.conv) && e.from !== store.me) this.#scheduleRead(e.conv);
      }
    });
    s.on('send', (p: PendingSend) => store.updateSend({ cid: p.cid, state: p.state, sent: p.sent, error: p.error?.message }));
    s.on('read', (r) => store.markRead(r.conv, r.seq));
    s.on('receipt', (r) => store.setReceipt(r.conv, r.by, r.mid));
    s.on('presence', (p) => {
      store.presence.set(p.user, presenceOf(p));
      store.changed();
    });
    s.on('roster', (r) => {
      if (r.more) return;
      store.contacts = s.roster;
      store.contactsLoaded = true;
      for (const c of s.roster.values()) if (c.presence) store.presence.set(c.user, presenceOf(c.presence));
      this.#profilesOf([...s.roster.values()]);
      store.changed();
    });
    s.on('contact', (e) => {
      store.contacts = s.roster;
      if (e.presence) store.presence.set(e.user, presenceOf(e.presence));
      else if (e.state === 'friend' || e.following) this.#askPresence([e.user]);
      this.#profilesOf([e]);
      store.changed();
    });
    s.on('contacts', () => store.changed());
    s.on('profile', (p) => {
      store.profiles.set(p.user, p.profile);
      if (p.user === store.me) store.myName = p.profile.name;
      store.changed();
    });
    s.on('status', (st) => {
      store.myStatus = { status: st.status, text: st.text ?? '' };
      store.changed();
    });
    s.on('typing', (t) => {
      store.setTyping(t.conv, t.from, Date.now() + TYPING_SHOWN_MS);
      setTimeout(() => store.changed(), TYPING_SHOWN_MS + 20); // hide it again
    });
    s.on('error', () => undefined); // failed attempts show in the state bar
  }

  #onState(info: StateInfo): void {
    const st = this.#store;
    st.conn = info;
    st.changed();
    if (info.state === 'live' && !this.#wasLive) {
      this.#wasLive = true;
      if (!st.loaded) {
        void this.#loadRecent();
        this.#loadMe();
      } else this.#refresh();
    }
    if (info.state !== 'live') this.#wasLive = false;
  }

  /** The newest entries of the timeline and the unread counts: the conversation list. */
  async #loadRecent(): Promise<void> {
    const st = this.#store;
    const top = this.#session.welcome?.seq ?? this.#session.seq;
    const counts = this.#session.unread();
    counts.catch(() => undefined); // awaited below; a rejection before then is not unhandled
    try {
      for (let after = Math.max(0, top - RECENT); ;) {
        const page = await this.#session.sync(after, 1000);
        for (const e of page.msgs) st.addEntry(e, false);
        const last = page.msgs.at(-1);
        if (!page.more || !last || last.seq >= top) break;
        after = last.seq;
      }
      st.setUnread((await counts).convs);
    } catch {
      // the session retries requests across reconnects; one that failed for good leaves the list as it is
    }
    st.loaded = true;
    st.changed();
    this.#watch(st.peers());
    if (st.open) this.#scheduleRead(st.open);
  }

  /** After a reconnect: what changed while we were away and not told. */
  #refresh(): void {
    const st = this.#store;
    this.#session.unread().then((u) => {
      st.setUnread(u.convs);
      if (st.open) this.#scheduleRead(st.open);
    }, () => undefined);
    const users = [...this.#watched];
    for (let i = 0; i < users.length; i += 500) this.#askPresence(users.slice(i, i + 500));
  }

  /** Watches the other user of a 1:1 conversation. */
  watchPeerOf(conv: string): void {
    const peer = this.#store.convs.get(conv)?.peer;
    if (peer && peer !== this.#store.me && !this.#watched.has(peer)) this.#watch([peer]);
  }

  /** Watches users' presence (batched; at most 500 a request) and asks their state now. */
  #watch(users: string[]): void {
    for (const u of users) if (!this.#watched.has(u)) this.#watchQueue.add(u);
    if (!this.#watchQueue.size) return;
    queueMicrotask(() => {
      const batch = [...this.#watchQueue];
      this.#watchQueue.clear();
      for (let i = 0; i < batch.length; i += 500) {
        const part = batch.slice(i, i + 500).filter((u) => !this.#watched.has(u));
        if (!part.length) continue;
        for (const u of part) this.#watched.add(u);
        quiet(this.#session.watch(part));
        this.#askPresence(part);
      }
    });
  }

  #askPresence(users: string[]): void {
    this.#session.presence(users).then((r) => {
      for (const [u, p] of Object.entries(r.users)) this.#store.presence.set(u, presenceOf(p));
      this.#store.changed();
    }, () => undefined);
  }

  /** My own name and status, once logged in (the status belongs to the user: it may be one set on another device). */
  #loadMe(): void {
    const st = this.#store;
    const me = st.me;
    this.#session.profiles([me]).then((r) => {
      const p = r.users[me];
      st.profiles.set(me, p ?? null);
      if (st.myName === undefined) st.myName = p?.name ?? '';
      st.changed();
    }, () => undefined);
    this.#session.presence([me]).then((r) => {
      const p = r.users[me];
      if (st.myStatus === undefined) {
        st.myStatus = { status: p?.online ? p.status ?? 'available' : 'invisible', text: (p?.online && p.text) || '' };
        st.changed();
      }
    }, () => undefined);
  }

  /** Fetches the profiles of contacts whose profile_version is past the one held (names for the list). */
  #profilesOf(contacts: Contact[]): void {
    const st = this.#store;
    const want = contacts.filter((c) => {
      if (!c.profile_version || this.#profileAsked.has(c.user)) return false;
      const held = st.profiles.get(c.user);
      return held === undefined || held === null || held.version < c.profile_version;
    }).map((c) => c.user);
    for (let i = 0; i < want.length; i += 500) {
      const part = want.slice(i, i + 500);
      for (const u of part) this.#profileAsked.add(u);
      this.#session.profiles(part).then((r) => {
        for (const [u, p] of Object.entries(r.users)) st.profiles.set(u, p);
        st.changed();
      }, () => undefined).finally(() => {
        for (const u of part) this.#profileAsked.delete(u);
      });
    }
  }
}

/** A presence as the store keeps it, from an event, a reply or a contact entry. */
function presenceOf(p: { online: boolean; status?: StatusValue; text?: string }): Presence {
  return p.online ? { online: true, ...(p.status ? { status: p.status } : {}), ...(p.text ? { text: p.text } : {}) } : { online: false };
}
