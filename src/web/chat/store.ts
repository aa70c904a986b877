// The app's state, in one mutable object with a change signal (the views re-render on it, once
// per microtask however many changes came in). It knows nothing of the network: wire.ts and
// feed.ts feed it timeline entries, send progress, read state, presence, typing and receipts, and
// the contacts, their profiles and the user's own status and name.
//
// Messages of a conversation are the timeline entries it holds (by seq) plus this tab's sends
// that have no entry yet. A send is matched to its entry by the `sent` reply's seq. The entry is
// often pushed before that reply (the node does not promise the order), so an entry of mine with
// the same body as my oldest unconfirmed send to that conversation is taken to be that send
// provisionally (shown at the entry's place, still pending), which the reply then confirms or undoes.
import { parseConv } from '../../client/index.ts';
import type { Contact, Entry, PendingSend, Profile, SentReply, StateInfo, StatusValue } from '../../client/index.ts';

export type SendState = PendingSend['state'];

export type Send = {
  cid: string;
  conv: string;
  body: string;
  /** Local time the user sent it (shown until the node's time is known). */
  ts: number;
  state: SendState;
  sent?: SentReply;
  error?: string;
  /** The seq of an entry provisionally taken to be this send (see above). */
  guess?: number;
};

export type Conv = {
  id: string;
  /** 1:1: the other user (me for a note to self); group: the group id. */
  peer?: string;
  group?: string;
  /** Entries by seq, ascending, no repeats. */
  entries: Entry[];
  /** This tab's sends whose entry is not here yet (or only guessed), in send order. */
  sends: Map<string, Send>;
  /** seq → cid of entries that were this tab's sends: their element keeps its key. */
  cidOf: Map<number, string>;
  /** For the list's order: the newest entry's time, or when it was opened here while empty (0: never). */
  activity: number;
  unread: number;
  /** The read cursor as far as this tab knows (its own reads and other devices' read events). */
  readSeq: number;
  history: 'none' | 'loading' | 'done' | 'failed';
  /** More entries older than entries[0] (history said so). */
  more: boolean;
  loadingOlder: boolean;
  error?: string;
  members?: string[];
  owner?: string;
};

/** One message as the views show it. */
export type MsgView = {
  key: string;
  from: string;
  body: string;
  ts: number;
  seq?: number;
  mid?: string;
  state: 'pending' | 'sent' | 'failed';
  sendState?: SendState;
  error?: string;
};

export type Phase = 'boot' | 'login' | 'chat';

/** A user's presence as last heard: `status` and `text` only while online. */
export type Presence = { online: boolean; status?: StatusValue; text?: string };
/** What a presence dot shows. */
export type Dot = 'online' | 'away' | 'busy' | 'offline';

export function dotOf(p: Presence | undefined): Dot {
  if (!p?.online) return 'offline';
  return p.status === 'away' ? 'away' : p.status === 'busy' ? 'busy' : 'online';
}

export class Store {
  phase: Phase = 'boot';
  /** Set once /healthz answered. */
  insecure = false;
  node = '';
  bootError = '';
  loginError = '';
  me = '';
  conn: StateInfo = { state: 'connecting', attempt: 0 };
  /** True once the first sync and unread after login are in. */
  loaded = false;
  convs = new Map<string, Conv>();
  open: string | undefined;
  /** Whether the page is visible (an open conversation is only read while it is). */
  visible = true;
  presence = new Map<string, Presence>();
  /** The sidebar's tab. */
  tab: 'chats' | 'contacts' = 'chats';
  /** The user's contacts (the session's roster map), once the first roster is in. */
  contacts: ReadonlyMap<string, Contact> = new Map();
  contactsLoaded = false;
  /** Profiles as fetched or pushed (null: none, or hidden from me). */
  profiles = new Map<string, Profile | null>();
  /** My own status and display name, as last known (undefined until asked). */
  myStatus: { status: StatusValue; text: string } | undefined;
  myName: string | undefined;
  /** conv → user → until (ms). */
  typing = new Map<string, Map<string, number>>();
  /** conv → user → newest mid they read. */
  receipts = new Map<string, Map<string, string>>();
  /** cid → conv, for send events. */
  sendConv = new Map<string, string>();

  #subs = new Set<() => void>();
  #queued = false;

  subscribe(fn: () => void): () => void {
    this.#subs.add(fn);
    return () => this.#subs.delete(fn);
  }

  changed(): void {
    if (this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      for (const fn of this.#subs) fn();
    });
  }

  /** Forgets everything of the logged-in user (log out). */
  reset(): void {
    this.me = '';
    this.loaded = false;
    this.conn = { state: 'connecting', attempt: 0 };
    this.convs.clear();
    this.open = undefined;
    this.presence.clear();
    this.tab = 'chats';
    this.contacts = new Map();
    this.contactsLoaded = false;
    this.profiles.clear();
    this.myStatus = undefined;
    this.myName = undefined;
    this.typing.clear();
    this.receipts.clear();
    this.sendConv.clear();
    this.changed();
  }

  /** The conversation, made (empty) if new; undefined for an id that is not a conversation of mine. */
  conv(id: string): Conv | undefined {
    let c = this.convs.get(id);
    if (c) return c;
    const p = parseConv(id);
    if (!p) return undefined;
    let peer: string | undefined;
    if (p.kind === 'dm') {
      if (p.a !== this.me && p.b !== this.me) return undefined;
      peer = p.a === this.me ? p.b : p.a;
    }
    c = {
      id, peer, group: p.kind === 'group' ? p.group : undefined, entries: [], sends: new Map(), cidOf: new Map(),
      activity: 0, unread: 0, readSeq: 0, history: 'none', more: false, loadingOlder: false,
    };
    this.convs.set(id, c);
    this.changed();
    return c;
  }

  /** A user's display name: their profile name when known, else their id. */
  nameOf(user: string): string {
    return this.profiles.get(user)?.name || user;
  }

  /** The dot for a user: what the last presence event or reply said. */
  dot(user: string): Dot {
    return dotOf(this.presence.get(user));
  }

  /** Contact requests waiting for my answer. */
  incoming(): number {
    let n = 0;
    for (const c of this.contacts.values()) if (c.state === 'pending' && !c.blocked) n++;
    return n;
  }

  /** The users whose presence the list shows (the other party of each 1:1). */
  peers(): string[] {
    const out = new Set<string>();
    for (const c of this.convs.values()) if (c.peer && c.peer !== this.me) out.add(c.peer);
    return [...out];
  }

  /**
   * Adds a timeline entry (pushed, synced or from history). `live`: it is new to this device
   * (pushed), so it counts as unread unless it is mine or the conversation is being read.
   * Returns false if it was here already.
   */
  addEntry(e: Entry, live: boolean): boolean {
    const c = this.conv(e.conv);
    if (!c) return false;
    const list = c.entries;
    let i = list.length;
    while (i > 0 && list[i - 1]!.seq > e.seq) i--;
    if (i > 0 && list[i - 1]!.seq === e.seq) return false;
    list.splice(i, 0, e);
    c.activity = Math.max(c.activity, e.ts);
    this.#matchSend(c, e);
    if (live) this.typing.get(e.conv)?.delete(e.from); // the message they were typing is here
    if (live && e.from !== this.me && e.seq > c.readSeq && !this.reading(c.id)) c.unread++;
    this.changed();
    return true;
  }

  /** Whether the conversation is open in a visible page (its new entries are read at once). */
  reading(conv: string): boolean {
    return this.open === conv && this.visible;
  }

  #matchSend(c: Conv, e: Entry): void {
    for (const s of c.sends.values()) {
      if (s.sent?.seq === e.seq) {
        c.cidOf.set(e.seq, s.cid);
        c.sends.delete(s.cid);
        return;
      }
    }
    if (e.from !== this.me) return;
    for (const s of c.sends.values()) {
      if (s.sent || s.state === 'failed' || s.guess !== undefined) continue;
      // The oldest unconfirmed send: the node keeps one connection's sends in order.
      if (s.body === e.body) {
        s.guess = e.seq;
        c.cidOf.set(e.seq, s.cid);
      }
      return;
    }
  }

  addSend(s: Send): void {
    const c = this.conv(s.conv);
    if (!c) return;
    c.sends.set(s.cid, s);
    this.sendConv.set(s.cid, s.conv);
    c.activity = Math.max(c.activity, Date.now());
    this.changed();
  }

  /** A send changed state (an SDK `send` event, or its promise settled). */
  updateSend(p: { cid: string; state: SendState; sent?: SentReply; error?: string }): void {
    const conv = this.sendConv.get(p.cid);
    const c = conv ? this.convs.get(conv) : undefined;
    const s = c?.sends.get(p.cid);
    if (!c || !s) return;
    s.state = p.state;
    if (p.error) s.error = p.error;
    if (p.sent && !s.sent) {
      s.sent = p.sent;
      if (s.guess !== undefined && s.guess !== p.sent.seq) {
        // The entry guessed for it was another send of mine (another tab, same text).
        c.cidOf.delete(s.guess);
        s.guess = undefined;
      }
      const entry = c.entries.find((e) => e.seq === p.sent!.seq);
      if (entry) {
        c.cidOf.set(entry.seq, s.cid);
        c.sends.delete(s.cid);
      }
    }
    if (s.state === 'failed' && s.guess !== undefined) {
      c.cidOf.delete(s.guess);
      s.guess = undefined;
    }
    this.changed();
  }

  /** The messages of a conversation in display order. */
  messages(c: Conv): MsgView[] {
    const guessed = new Map<number, Send>();
    for (const s of c.sends.values()) if (s.guess !== undefined) guessed.set(s.guess, s);
    const out: MsgView[] = c.entries.map((e) => {
      const g = guessed.get(e.seq);
      const key = c.cidOf.get(e.seq) ?? `s${e.seq}`;
      if (g) return { key, from: e.from, body: e.body, ts: e.ts, state: 'pending', sendState: g.state };
      return { key, from: e.from, body: e.body, ts: e.ts, seq: e.seq, mid: e.mid, state: 'sent' };
    });
    for (const s of c.sends.values()) {
      if (s.guess !== undefined) continue;
      out.push({
        key: s.cid, from: this.me, body: s.body, ts: s.sent?.ts ?? s.ts, seq: s.sent?.seq, mid: s.sent?.mid,
        state: s.state === 'failed' ? 'failed' : s.sent ? 'sent' : 'pending', sendState: s.state, error: s.error,
      });
    }
    return out;
  }

  /** The newest message of a conversation for the list. */
  last(c: Conv): { from: string; body: string } | undefined {
    const sends = [...c.sends.values()].filter((s) => s.guess === undefined);
    return sends.at(-1) ? { from: this.me, body: sends.at(-1)!.body } : c.entries.at(-1);
  }

  /** Conversations, the most recently active first. */
  sorted(): Conv[] {
    return [...this.convs.values()].sort((a, b) => b.activity - a.activity || (a.id < b.id ? -1 : 1));
  }

  /** The newest seq of an entry from someone else (what a read must reach). */
  newestOther(c: Conv): number {
    for (let i = c.entries.length - 1; i >= 0; i--) if (c.entries[i]!.from !== this.me) return c.entries[i]!.seq;
    return 0;
  }

  /** Another device (or this tab) read the conversation up to seq. */
  markRead(conv: string, seq: number): void {
    const c = this.convs.get(conv);
    if (!c) return;
    c.readSeq = Math.max(c.readSeq, seq);
    // Entries this tab holds that are still unread; never more than the count we had.
    const left = c.entries.filter((e) => e.seq > c.readSeq && e.from !== this.me).length;
    c.unread = Math.min(c.unread, left);
    this.changed();
  }

  /** The node's unread counts (after login and after every reconnect) replace ours. */
  setUnread(convs: Record<string, number>): void {
    for (const c of this.convs.values()) c.unread = 0;
    for (const [id, n] of Object.entries(convs)) {
      const c = this.conv(id);
      if (c) c.unread = this.reading(id) ? 0 : n;
    }
    this.changed();
  }

  setTyping(conv: string, from: string, until: number): void {
    let m = this.typing.get(conv);
    if (!m) this.typing.set(conv, (m = new Map()));
    m.set(from, until);
    this.changed();
  }

  /** Who is typing in a conversation now. */
  typers(conv: string, now = Date.now()): string[] {
    const m = this.typing.get(conv);
    if (!m) return [];
    for (const [u, until] of m) if (until <= now) m.delete(u);
    return [...m.keys()];
  }

  setReceipt(conv: string, by: string, mid: string): void {
    let m = this.receipts.get(conv);
    if (!m) this.receipts.set(conv, (m = new Map()));
    if ((m.get(by) ?? '') < mid) m.set(by, mid);
    this.changed();
  }

  /** Who (other than me) has read up to my newest sent message: mids sort by time. */
  seenBy(c: Conv): { mid: string; users: string[] } | undefined {
    const mine = [...c.entries].reverse().find((e) => e.from === this.me);
    if (!mine) return undefined;
    const m = this.receipts.get(c.id);
    const users = m ? [...m].filter(([u, mid]) => u !== this.me && mid >= mine.mid).map(([u]) => u) : [];
    return { mid: mine.mid, users };
  }
}

/** What the list and the header call a conversation (a contact's profile name where known). */
export function convTitle(c: Conv, store: Store): string {
  if (c.group !== undefined) return `#${c.group}`;
  const me = store.me;
  return c.peer === me ? `${me} (you)` : c.peer !== undefined ? store.nameOf(c.peer) : c.id;
}
