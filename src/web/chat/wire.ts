// The SDK session behind the app: it does what the views ask (open a conversation, send, load
// older messages, read, type, groups, contacts, status and name); feed.ts feeds the store from
// the session's events and from what it asks the node after each login.
//
// The session logs in with `roster: true` (the contacts come without watches). Auto-away after
// 5 minutes without a key, click or pointer move in the page (the session's idleAwayMs).
import { ImSession, dmConv, isId } from '../../client/index.ts';
import type { SendTarget, StatusValue } from '../../client/index.ts';
import { deviceId, nodeUrls, ownWsUrl, tokenSource } from './auth.ts';
import type { Login } from './auth.ts';
import { Feed, quiet } from './feed.ts';
import type { Conv, Store } from './store.ts';

const HISTORY_PAGE = 50;
const TYPING_EVERY_MS = 3000;
const READ_DELAY_MS = 250;
const IDLE_AWAY_MS = 5 * 60_000;
const ACTIVITY_EVENTS = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart', 'focus'] as const;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Chat {
  readonly session: ImSession;
  readonly store: Store;
  readonly #feed: Feed;
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
    this.#feed = new Feed(s, store, (conv) => this.#scheduleRead(conv));
    document.addEventListener('visibilitychange', this.#onVisibility);
    for (const ev of ACTIVITY_EVENTS) window.addEventListener(ev, this.#onActivity, { passive: true, capture: true });
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
    this.#feed.watchPeerOf(id);
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
