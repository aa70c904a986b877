// The SDK session behind the app: it feeds the store from the session's events and does what the
// views ask (open a conversation, send, load older messages, read, type, groups).
//
// After each login the list is rebuilt from the node: `sync` of the newest 500 timeline entries
// (so each recent conversation has its last message) and `unread` for the counts; the session's
// own `since: 'latest'` keeps old entries out of the push stream. After a reconnect the unread
// counts and presence are asked again (changes during the outage were not pushed to us).
//
// Contacts: the session logs in with `roster: true`, so the node pushes the contacts after each
// login and their presence and profile changes after that; their names come from `profiles`
// (asked again only when a contact's profile_version moves past the one held). The user's own
// status and name are asked once logged in. Auto-away after 5 minutes without a key, click or
// pointer move in the page (the session's idleAwayMs).
import { ImSession, dmConv, isId } from '../../client/index.ts';
import type { Contact, PendingSend, SendTarget, StateInfo, StatusValue } from '../../client/index.ts';
import { deviceId, nodeUrls, ownWsUrl, tokenSource } from './auth.ts';
import type { Login } from './auth.ts';
import type { Conv, Presence, Store } from './store.ts';

const RECENT = 500;
const HISTORY_PAGE = 50;
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 4000;
const READ_DELAY_MS = 250;
const IDLE_AWAY_MS = 5 * 60_000;
const ACTIVITY_EVENTS = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart', 'focus'] as const;

/** Requests whose failure the views show some other way (or not at all) must not reject unheard. */
function quiet<T>(p: Promise<T>): void {
  p.catch(() => undefined);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Chat {
  readonly session: ImSession;
  readonly store: Store;
  #wasLive = false;
  #watched = new Set<string>();
  #watchQueue = new Set<string>();
  #readTimer: ReturnType<typeof setTimeout> | undefined;
  #lastTyping = 0;
  #onVisibility = () => {
    this.store.visible = document.visibilityState === 'visible';
    if (this.store.visible) this.session.activity();
    if (this.store.open) this.#scheduleRead(this.store.open);
  };
  #lastActivity = 0;
  /** Input in the page: auto-away's clock starts again (at most once a second: pointer moves come in floods). */
  #onActivity = () => {
    const now = Date.now();
    if (now - this.#lastActivity < 1000) return;
    this.#lastActivity = now;
    this.session.activity();
  };
  /** Profiles being fetched (a user asked once until the answer). */
  #profileAsked = new Set<string>();

  /** Starts a session for the login. The tab's node comes first; the others (GET /nodes) are for failover. */
  static async start(store: Store, login: Login, opts: { freshDevice?: boolean } = {}): Promise<Chat> {
    const others = await nodeUrls();
    return new Chat(store, login, others, deviceId(opts.freshDevice));
  }

  private constructor(store: Store, login: Login, others: string[], device: string) {
    this.store = store;
    store.me = login.user;
    store.visible = document.visibilityState === 'visible';
    const token = tokenSource(login);
    // The node that served the page first; the others (its GET /nodes) for reconnects.
    const s = new ImSession({
      urls: [ownWsUrl(), ...others], start: 'first', ...(token ? { token } : { user: login.user }), device, since: 'latest',
      roster: true, idleAwayMs: IDLE_AWAY_MS,
    });
    this.session = s;
    s.on('state', (info) => this.#onState(info));
    s.on('message', (e) => {
      if (store.addEntry(e, true)) {
        this.#watchPeerOf(e.conv);
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
    document.addEventListener('visibilitychange', this.#onVisibility);
    for (const ev of ACTIVITY_EVENTS) window.addEventListener(ev, this.#onActivity, { passive: true, capture: true });
  }

  #onState(info: StateInfo): void {
    const st = this.store;
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
    const st = this.store;
    const top = this.session.welcome?.seq ?? this.session.seq;
    const counts = this.session.unread();
    counts.catch(() => undefined); // awaited below; a rejection before then is not unhandled
    try {
      for (let after = Math.max(0, top - RECENT); ;) {
        const page = await this.session.sync(after, 1000);
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
    const st = this.store;
    this.session.unread().then((u) => {
      st.setUnread(u.convs);
      if (st.open) this.#scheduleRead(st.open);
    }, () => undefined);
    const users = [...this.#watched];
    for (let i = 0; i < users.length; i += 500) this.#askPresence(users.slice(i, i + 500));
  }

  #watchPeerOf(conv: string): void {
    const peer = this.store.convs.get(conv)?.peer;
    if (peer && peer !== this.store.me && !this.#watched.has(peer)) this.#watch([peer]);
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
        quiet(this.session.watch(part));
        this.#askPresence(part);
      }
    });
  }

  #askPresence(users: string[]): void {
    this.session.presence(users).then((r) => {
      for (const [u, p] of Object.entries(r.users)) this.store.presence.set(u, presenceOf(p));
      this.store.changed();
    }, () => undefined);
  }

  /** My own name and status, once logged in (the status belongs to the user: it may be one set on another device). */
  #loadMe(): void {
    const st = this.store;
    const me = st.me;
    this.session.profiles([me]).then((r) => {
      const p = r.users[me];
      st.profiles.set(me, p ?? null);
      if (st.myName === undefined) st.myName = p?.name ?? '';
      st.changed();
    }, () => undefined);
    this.session.presence([me]).then((r) => {
      const p = r.users[me];
      if (st.myStatus === undefined) {
        st.myStatus = { status: p?.online ? p.status ?? 'available' : 'invisible', text: (p?.online && p.text) || '' };
        st.changed();
      }
    }, () => undefined);
  }

  /** Fetches the profiles of contacts whose profile_version is past the one held (names for the list). */
  #profilesOf(contacts: Contact[]): void {
    const st = this.store;
    const want = contacts.filter((c) => {
      if (!c.profile_version || this.#profileAsked.has(c.user)) return false;
      const held = st.profiles.get(c.user);
      return held === undefined || held === null || held.version < c.profile_version;
    }).map((c) => c.user);
    for (let i = 0; i < want.length; i += 500) {
      const part = want.slice(i, i + 500);
      for (const u of part) this.#profileAsked.add(u);
      this.session.profiles(part).then((r) => {
        for (const [u, p] of Object.entries(r.users)) st.profiles.set(u, p);
        st.changed();
      }, () => undefined).finally(() => {
        for (const u of part) this.#profileAsked.delete(u);
      });
    }
  }

  // ---------------------------------------------------------------- what the views ask for

  /** Opens a conversation (made if new): its history, group members and receipts are fetched. */
  open(id: string): void {
    const st = this.store;
    const c = st.conv(id);
    if (!c) return;
    if (!c.entries.length && !c.activity) c.activity = Date.now();
    st.open = id;
    st.changed();
    this.#watchPeerOf(id);
    if (c.history === 'none' || c.history === 'failed') this.#loadHistory(c);
    if (c.group !== undefined) this.refreshGroup(c);
    this.session.receipts(id).then((r) => {
      for (const [u, mid] of Object.entries(r.read)) st.setReceipt(id, u, mid);
    }, () => undefined);
    this.#scheduleRead(id);
  }

  close(): void {
    this.store.open = undefined;
    this.store.changed();
  }

  #loadHistory(c: Conv): void {
    c.history = 'loading';
    this.session.history(c.id, { limit: HISTORY_PAGE }).then((r) => {
      for (const e of r.msgs) this.store.addEntry(e, false);
      c.history = 'done';
      c.more = r.more;
      c.error = undefined;
      this.store.changed();
      this.#scheduleRead(c.id);
    }, (e: unknown) => {
      c.history = 'failed';
      c.error = message(e);
      this.store.changed();
    });
  }

  /** The next older page of the open conversation (before the oldest entry shown). */
  loadOlder(): void {
    const c = this.store.open ? this.store.convs.get(this.store.open) : undefined;
    const oldest = c?.entries[0];
    if (!c || !oldest || !c.more || c.loadingOlder || c.history !== 'done') return;
    c.loadingOlder = true;
    this.store.changed();
    this.session.history(c.id, { before: oldest.seq, limit: HISTORY_PAGE }).then((r) => {
      for (const e of r.msgs) this.store.addEntry(e, false);
      c.more = r.more;
      c.loadingOlder = false;
      this.store.changed();
    }, (e: unknown) => {
      c.loadingOlder = false;
      c.error = message(e);
      this.store.changed();
    });
  }

  /** Marks the open conversation read up to its newest entry, once things settle. */
  #scheduleRead(conv: string): void {
    clearTimeout(this.#readTimer);
    this.#readTimer = setTimeout(() => {
      const st = this.store;
      const c = st.convs.get(conv);
      if (!c || !st.reading(conv)) return;
      const seq = st.newestOther(c);
      if (!seq || (seq <= c.readSeq && !c.unread)) return;
      st.markRead(conv, seq);
      c.unread = 0;
      quiet(this.session.read(conv, Math.max(seq, c.readSeq)));
    }, READ_DELAY_MS);
  }

  #target(c: Conv): SendTarget {
    return c.group !== undefined ? { group: c.group } : { to: c.peer! };
  }

  /** Sends a message to the open conversation: shown at once, pending until the node confirms it. */
  send(body: string): void {
    const st = this.store;
    const c = st.open ? st.convs.get(st.open) : undefined;
    if (!c || !body.trim()) return;
    const cid = this.session.newCid();
    st.addSend({ cid, conv: c.id, body, ts: Date.now(), state: 'queued' });
    this.session.send(this.#target(c), body, cid).then(
      (sent) => st.updateSend({ cid, state: 'sent', sent }),
      (e: unknown) => st.updateSend({ cid, state: 'failed', error: message(e) }),
    );
    this.#lastTyping = 0;
  }

  /** The user is typing in the open conversation: tell the others, at most every 3 s. */
  typing(): void {
    const c = this.store.open ? this.store.convs.get(this.store.open) : undefined;
    if (!c || (c.peer === this.store.me)) return;
    const now = Date.now();
    if (now - this.#lastTyping < TYPING_EVERY_MS) return;
    this.#lastTyping = now;
    this.session.typing(this.#target(c));
  }

  /** Creates a group and opens it; resolves with an error message for people, or undefined. */
  async createGroup(group: string, members: string[]): Promise<string | undefined> {
    if (!isId(group)) return 'A group id is 1 to 64 of A-Z a-z 0-9 _ . @ -';
    const bad = members.find((m) => !isId(m));
    if (bad !== undefined) return `Not a user id: "${bad}"`;
    try {
      await this.session.groupCreate(group, members);
    } catch (e) {
      return message(e);
    }
    this.open(`g:${group}`);
    return undefined;
  }

  async addMember(group: string, user: string): Promise<string | undefined> {
    if (!isId(user)) return 'A user id is 1 to 64 of A-Z a-z 0-9 _ . @ -';
    try {
      await this.session.groupAdd(group, [user]);
    } catch (e) {
      return message(e);
    }
    const c = this.store.convs.get(`g:${group}`);
    if (c) this.refreshGroup(c);
    return undefined;
  }

  refreshGroup(c: Conv): void {
    this.session.groupInfo(c.group!).then((g) => {
      c.members = g.members;
      c.owner = g.owner;
      this.store.changed();
    }, (e: unknown) => {
      c.error = message(e);
      this.store.changed();
    });
  }

  // ---------------------------------------------------------------- contacts, status, name

  /** Runs a contact change; resolves with an error message for people, or undefined. */
  async #contactOp(user: string, op: (u: string) => Promise<unknown>): Promise<string | undefined> {
    if (!isId(user)) return 'A user id is 1 to 64 of A-Z a-z 0-9 _ . @ -';
    if (user === this.store.me) return 'That is you.';
    try {
      await op(user);
    } catch (e) {
      return message(e);
    }
    return undefined;
  }

  requestContact(user: string, text?: string): Promise<string | undefined> {
    return this.#contactOp(user, (u) => this.session.contactRequest(u, text || undefined));
  }
  acceptContact(user: string): Promise<string | undefined> {
    return this.#contactOp(user, (u) => this.session.contactAccept(u));
  }
  declineContact(user: string): Promise<string | undefined> {
    return this.#contactOp(user, (u) => this.session.contactDecline(u));
  }
  /** Ends a friendship, or withdraws a request made. */
  removeContact(user: string): Promise<string | undefined> {
    return this.#contactOp(user, (u) => this.session.contactRemove(u));
  }
  block(user: string): Promise<string | undefined> {
    return this.#contactOp(user, (u) => this.session.block(u));
  }
  unblock(user: string): Promise<string | undefined> {
    return this.#contactOp(user, (u) => this.session.unblock(u));
  }

  /** Opens the 1:1 conversation with a contact. */
  openContact(user: string): void {
    this.open(dmConv(this.store.me, user));
  }

  async setStatus(status: StatusValue, text: string): Promise<string | undefined> {
    try {
      await this.session.status(status, text.trim() || undefined);
    } catch (e) {
      return message(e);
    }
    return undefined;
  }

  async setName(name: string): Promise<string | undefined> {
    try {
      await this.session.profileSet({ name: name.trim() });
    } catch (e) {
      return message(e);
    }
    this.store.myName = name.trim();
    this.store.changed();
    return undefined;
  }

  /** Ends the session (log out, or a new one replaces it). */
  stop(): void {
    clearTimeout(this.#readTimer);
    document.removeEventListener('visibilitychange', this.#onVisibility);
    for (const ev of ACTIVITY_EVENTS) window.removeEventListener(ev, this.#onActivity, { capture: true });
    this.session.close();
  }
}

/** A presence as the store keeps it, from an event, a reply or a contact entry. */
function presenceOf(p: { online: boolean; status?: StatusValue; text?: string }): Presence {
  return p.online ? { online: true, ...(p.status ? { status: p.status } : {}), ...(p.text ? { text: p.text } : {}) } : { online: false };
}
