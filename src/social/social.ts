// The social role: profiles, status, privacy and contacts of the users this node is home of,
// kept in each user's social log (store key `s:<user>`, placed by the ring on the user's home;
// src/contacts/index.ts is the model). A change is appended to the log and made durable on every
// copy before `ok`; a change of a relation is also handed to the other user's home through the
// outbox, exactly as a direct message's copy is, so it survives a crash of either home and is
// joined there once whatever the retries. The role also decides what others may see (presence
// and profile) and receive (direct messages, typing, requests) from a user homed here.
import type { Logger } from 'pino';
import { admits, applyEntry, applyOp, counted, counts, emptyPair, emptySocial, friends, listed, parseEvent, profileOf, sameView, view, visible, wire } from '../contacts/index.ts';
import type { Limits, Pair, Refusal, SocialEvent, SocialState } from '../contacts/index.ts';
import { dmConv } from '../protocol/frames.ts';
import type { Contact, ContactOp, PresenceEvent, Profile, Request, ServerFrame, UserPresence } from '../protocol/frames.ts';
import type { Delivery } from '../protocol/peer.ts';
import type { Lookup, SessionRef, Watcher } from '../presence/index.ts';
import type { Store, StoredEntry } from '../store/index.ts';
import { ClientError, ForbiddenError, UnavailableError } from '../protocol/errors.ts';
import { KeyedBatcher } from '../channel/batcher.ts';

export const socialKey = (user: string): string => `s:${user}`;
export type SocialReq = Extract<Request, { op: 'profile_set' | 'status' | 'privacy' | 'contact_lists' | ContactOp }>;
export type AdmitKind = 'dm' | 'typing' | 'request' | 'follow';
/** What a contact entry shows of the contact, from the contact's home (left out when hidden). */
export type ContactInfo = { profile_version?: number; presence?: Contact['presence'] };
export type ContactsPage = { contacts: Contact[]; more: boolean; next?: string };

export type SocialComponents = {
  store: Store;
  /** Whether this node serves the key now (writes). */
  owns: (key: string) => boolean;
  replicated: (key: string) => Promise<void>;
  nextMid: () => string;
  midTime: (mid: string) => number;
  /** Hands a copy to its key's home through the outbox (the home's hand-over). */
  handOver: (sender: string, d: Delivery) => Promise<void>;
  /** Presence here, for users homed here. */
  lookup: (user: string) => Lookup;
  lastSeen: (user: string) => number | undefined;
  sessions: (user: string) => SessionRef[];
  watchers: (user: string) => Watcher[];
  push: (gateway: string, conn: string, frame: ServerFrame) => void;
  /** Pushes a frame to the online devices of users homed anywhere. */
  relay: (users: string[], frame: ServerFrame) => Promise<void>;
  /** Contact infos from the contacts' homes (this one included), as `viewer` may see them. */
  infoAnywhere: (viewer: string, users: string[]) => Promise<Record<string, ContactInfo>>;
  /** Asks `to`'s home whether it takes `kind` from `from`. */
  admitAt: (to: string, from: string, kind: AdmitKind) => Promise<Refusal | undefined>;
  /** Tells every other node to forget what it admitted to these users (a block or a stricter rule). */
  revokeEverywhere: (users: string[]) => Promise<void>;
  limits: Limits;
  now?: () => number;
  log: Logger;
};

export type Social = {
  /** A change by `user` (homed here): resolves once it is durable on every copy of the log. */
  op(user: string, req: SocialReq): Promise<void>;
  /** A page of `user`'s contacts, ordered by user id, after the cursor `after`. */
  contacts(user: string, after: string | undefined, limit: number): Promise<ContactsPage>;
  /** Profiles of users homed here, as `viewer` may see them (null: none, or hidden). */
  profiles(viewer: string, users: string[]): Promise<Record<string, Profile | null>>;
  info(viewer: string, users: string[]): Promise<Record<string, ContactInfo>>;
  /** Whether `to` (homed here) takes `kind` from `from`. */
  admit(to: string, from: string, kind: AdmitKind): Promise<Refusal | undefined>;
  /** On the sender's home: `to`'s answer, from a cache of recent yeses (true) or asked (throws ForbiddenError). */
  gate(from: string, to: string, kind: AdmitKind): true | Promise<void>;
  /** Another node's `revokeEverywhere`. */
  revoke(users: string[]): void;
  /** A presence answer for `viewer`: hidden users look offline; status added. */
  presenceFor(user: string, viewer: string | undefined, p: UserPresence): Promise<UserPresence>;
  /** The user went online or offline here: tells the watchers who may see it. */
  presenceChanged(user: string, online: boolean): void;
  /** Loads the user's state (at login, so that later presence events need no read); no read
   * for a user who never wrote anything social. */
  load(user: string): Promise<SocialState>;
  /** The store committed these entries (social log entries are folded into the cached state). */
  committed(entries: StoredEntry[]): void;
  ringChanged(): void;
};

const GATE_TTL_MS = 10_000;
/** How long an older yes still admits (while it is asked again): the outage of a recipient's home. */
const GATE_STALE_MS = 3_600_000;
const GATE_MAX = 100_000;
const CACHE_MAX = 200_000;
const REVOKE_WAIT_MS = 2000;

export function createSocial(c: SocialComponents): Social {
  const { store, log } = c;
  const now = c.now ?? Date.now;
  // Loaded states of users served here; cleared when the ring changes (a user may move away and back).
  // Each with the store's token for the data it was read from: data dropped or imported again,
  // or entries that reached the store without a commit of this node (a node rejoining through
  // the data copy copies what it missed, and its own ring may never have changed), is read again.
  // Between two commits the state has folded in everything committed; `committed` (the hook,
  // which runs right after a commit) passes `hook` as the store is one batch ahead then.
  let cache = new Map<string, { s: SocialState; held: object | undefined }>();
  const cached = (user: string, hook = false): SocialState | undefined => {
    const e = cache.get(user);
    if (!e) return undefined;
    const key = socialKey(user);
    if (store.holding(key) === e.held && (hook || store.committedSeq(key) === e.s.seq)) return e.s;
    cache.delete(user);
    return undefined;
  };
  const remember = (user: string, s: SocialState) => cache.set(user, { s, held: store.holding(socialKey(user)) });
  // Sender side: recent yeses of `to` for `from` (to -> from -> until).
  const gates = new Map<string, Map<string, number>>();
  let gateCount = 0;
  const asking = new Map<string, Promise<void>>();

  async function load(user: string): Promise<SocialState> {
    const have = cached(user);
    if (have) return have;
    const key = socialKey(user);
    for (;;) {
      await store.flush();
      const last = store.lastSeq(key);
      if (store.committedSeq(key) !== last) continue; // appended since the flush: flush again
      const s = emptySocial();
      let after = 0;
      while (after < last) {
        const { entries } = await store.sync(key, after, 1000);
        if (entries.length === 0) break;
        for (const e of entries) if (e.seq <= last) applyEntry(s, e.seq, e.ts, e.body, user, e.from);
        after = entries[entries.length - 1]!.seq;
      }
      s.seq = Math.max(s.seq, last);
      if (store.lastSeq(key) !== last) continue; // appended meanwhile: read again
      const now2 = cached(user);
      if (now2) return now2;
      if (c.owns(key)) {
        if (cache.size >= CACHE_MAX) cache = new Map([...cache].slice(CACHE_MAX / 2));
        remember(user, s);
      }
      return s;
    }
  }

  /** The state if it needs no read: cached, or a user who never wrote anything social. */
  function peek(user: string): SocialState | undefined {
    return cached(user) ?? (store.lastSeq(socialKey(user)) === 0 ? emptySocial() : undefined);
  }
  const state = (user: string): Promise<SocialState> => {
    const s = peek(user);
    return s ? Promise.resolve(s) : load(user);
  };

  /** Appends events to the user's log, and the changed pairs for the other sides' homes (through
   * the outbox), and resolves once they are durable on every copy, with the state that folds
   * them in. */
  async function write(user: string, events: SocialEvent[], copies: Set<string>): Promise<SocialState> {
    const key = socialKey(user);
    if (!c.owns(key)) throw new UnavailableError(`${user} is moving to another node`);
    // The copy for the other side is the last `pair` entry for that user itself (same mid, body,
    // sender and time, as a direct message's copy is the sender's entry): the outbox keeps a row
    // only while the sender's log has an entry of that mid, and replication pages send entries
    // of one mid as one message.
    const lastPair = new Map<string, number>();
    events.forEach((ev, i) => ev.k === 'pair' && lastPair.set(ev.u, i));
    const ds: Delivery[] = [];
    const items = events.map((ev, i) => {
      const mid = c.nextMid();
      const other = 'u' in ev ? ev.u : user;
      const ts = c.midTime(mid);
      const body = JSON.stringify(ev);
      if (ev.k === 'pair' && lastPair.get(ev.u) === i && copies.has(ev.u)) {
        ds.push({ user: socialKey(ev.u), mid, conv: dmConv(user, ev.u), from: user, to: ev.u, body, ts });
      }
      return { user: key, mid, conv: dmConv(user, other), from: user, to: other, body, ts, dkey: `e:${mid}` };
    });
    const { entries, durable } = store.append(items, ds.map((d) => ({ user: key, mid: d.mid, dest: d.user, item: d })));
    await durable;
    await c.replicated(key);
    for (const d of ds) c.handOver(key, d).catch((e: Error) => log.info({ user, to: d.to, err: e.message }, 'contact change not handed over yet; the outbox retries'));
    // Folded in by `committed` unless the cache was dropped meanwhile (a ring change).
    const fresh = cached(user);
    return fresh && fresh.seq >= entries[entries.length - 1]!.seq ? fresh : load(user);
  }

  const refusal = (r: Refusal): Error => (r.code === 'forbidden' ? new ForbiddenError(r.message) : new ClientError(r.code, r.message));

  /** The changes of one user queued meanwhile, applied in order to the state in memory and
   * written with one append: a client following 2,000 users at once waits for a few commits, not
   * for 2,000 in a row. Each change is checked against the state its predecessors left. */
  async function runBatch(user: string, reqs: SocialReq[]): Promise<(undefined | Error)[]> {
    const s = await load(user);
    const was = { s: snap(s), online: c.lookup(user).online };
    const pairs = new Map<string, Pair>();
    const pair = (u: string) => pairs.get(u) ?? s.pairs.get(u) ?? emptyPair();
    const first = new Map<string, Pair>(); // each changed pair as it was before the batch
    let count = counts(s).contacts;
    const events: SocialEvent[] = [];
    const out: (undefined | Error)[] = [];
    const listsOf = new Map<string, string[]>();
    let profile = false;
    let status = false;
    let privacy = false;
    for (const req of reqs) {
      switch (req.op) {
        case 'profile_set':
          events.push({ k: 'profile', p: req.profile });
          profile = true;
          out.push(undefined);
          continue;
        case 'status':
          events.push({ k: 'status', s: req.status, x: req.text ?? '' });
          status = true;
          out.push(undefined);
          continue;
        case 'privacy': {
          const { op: _op, id: _id, ...p } = req;
          events.push({ k: 'privacy', p });
          privacy = true;
          out.push(undefined);
          continue;
        }
        case 'contact_lists': {
          const p = pair(req.user);
          if (!listed(p)) {
            out.push(new ClientError('not_found', `${req.user} is not among your contacts`));
            continue;
          }
          events.push({ k: 'lists', u: req.user, l: req.lists });
          pairs.set(req.user, { ...p, lists: req.lists });
          listsOf.set(req.user, req.lists);
          out.push(undefined);
          continue;
        }
        default: {
          const other = req.user;
          const before = pair(other);
          const next = applyOp(before, req.op, other, req.op === 'contact_request' ? (req.text ?? '') : '', count, c.limits);
          if (next === 'same') {
            out.push(undefined);
            continue;
          }
          if ('code' in next) {
            out.push(refusal(next));
            continue;
          }
          count += Number(counted(next)) - Number(counted(before));
          if (!first.has(other)) first.set(other, s.pairs.get(other) ?? emptyPair());
          pairs.set(other, next);
          events.push({ k: 'pair', u: other, p: wire(next) });
          out.push(undefined);
        }
      }
    }
    if (events.length === 0) return out;
    let s2: SocialState;
    try {
      s2 = await write(user, events, new Set(first.keys()));
    } catch (e) {
      return out.map((r) => r ?? (e as Error));
    }
    // What the changes mean for others, once they are durable.
    const stricter = [...first].some(([u, b]) => {
      const a = s2.pairs.get(u) ?? emptyPair();
      return (!b.bm.on && a.bm.on) || (friends(b) && !friends(a) && s2.privacy.dm === 'contacts');
    }) || (was.s.privacy.dm === 'everyone' && s2.privacy.dm === 'contacts');
    if (stricter) await revokeAll([user]);
    if (status || privacy || first.size) {
      const changed = new Set(first.keys());
      presenceTo(user, s2, (w) => status || privacy || changed.has(w.user ?? ''), { s: { ...was.s, pairs: new Map([...was.s.pairs, ...first]) }, online: was.online });
    }
    if (profile) {
      const audience = [user];
      for (const [u, p] of s2.pairs) if ((friends(p) || p.wt.on) && visible(user, s2, u, 'profile')) audience.push(u);
      const pr = profileOf(s2);
      void c.relay(audience, { op: 'profile', user, profile: pr, version: pr.version })
        .catch((e: Error) => log.info({ user, err: e.message }, 'profile change not pushed to every contact'));
    }
    for (const u of new Set([...first.keys(), ...listsOf.keys()])) void announce(user, u, s2.pairs.get(u) ?? emptyPair());
    return out;
  }
  const batcher = new KeyedBatcher<SocialReq, undefined>((user, reqs) => runBatch(user, reqs), 500);

  // Per user, the newest change still waiting for the other side's admission: later changes of
  // the user wait behind it, so that changes keep the order they were made in.
  const admitting = new Map<string, Promise<void>>();
  function queue(user: string, req: SocialReq): Promise<void> {
    let gate: Promise<void> | undefined;
    if (req.op === 'contact_request' || req.op === 'follow') {
      if (req.user === user) return Promise.reject(new ClientError('bad_request', 'that is yourself'));
      // The other side decides whether it takes it: a block, or its pending requests full.
      gate = c.admitAt(req.user, user, req.op === 'follow' ? 'follow' : 'request').then((no) => {
        if (no) throw refusal(no);
      });
    } else if ('user' in req && req.user === user) {
      return Promise.reject(new ClientError('bad_request', 'that is yourself'));
    }
    const prev = admitting.get(user);
    if (!gate && !prev) return batcher.add(user, req);
    const ready = Promise.all([prev, gate]);
    const out = ready.then(() => batcher.add(user, req));
    const entered = ready.then(() => undefined, () => undefined);
    admitting.set(user, entered);
    void entered.then(() => {
      if (admitting.get(user) === entered) admitting.delete(user);
    });
    return out;
  }

  /** What a change of a relation changes for others: admissions revoked where it got stricter,
   * and presence shown or hidden to the other user. */
  async function effects(user: string, s: SocialState, other: string, before: Pair, after: Pair): Promise<void> {
    const stricter = (!before.bm.on && after.bm.on) || (friends(before) && !friends(after) && s.privacy.dm === 'contacts');
    if (stricter) await revokeAll([user]);
    presenceTo(user, s, (w) => w.user === other, { s: { ...s, pairs: new Map(s.pairs).set(other, before) }, online: c.lookup(user).online });
  }

  async function revokeAll(users: string[]): Promise<void> {
    revoke(users);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, REVOKE_WAIT_MS)));
    await Promise.race([c.revokeEverywhere(users).catch((e: Error) => log.warn({ users, err: e.message }, 'revocation not confirmed by every node')), late]);
    clearTimeout(timer);
  }

  /** A contact event to `user`'s devices with the other side's profile version and presence. */
  async function announce(user: string, other: string, p: Pair): Promise<void> {
    const sessions = c.sessions(user);
    if (sessions.length === 0) return;
    let info: ContactInfo = {};
    try {
      info = (await c.infoAnywhere(user, [other]))[other] ?? {};
    } catch (e) {
      log.debug({ user, other, err: (e as Error).message }, 'contact event without presence');
    }
    const frame: ServerFrame = { op: 'contact', ...view(other, p), ...info };
    for (const ss of c.sessions(user)) c.push(ss.gateway, ss.conn, frame);
  }

  /** What `viewer` sees of `user`'s presence, as an event. */
  function shownTo(user: string, s: SocialState, online: boolean, viewer: string | undefined): PresenceEvent {
    const shown = online && visible(user, s, viewer, 'presence');
    const ev: PresenceEvent = { op: 'presence', user, online: shown };
    if (shown && s.status !== 'available') ev.status = s.status;
    if (shown && s.stext) ev.text = s.stext;
    return ev;
  }
  const sameEvent = (a: PresenceEvent, b: PresenceEvent) => a.online === b.online && a.status === b.status && a.text === b.text;

  /** Tells the watchers `which` selects what they now see of `user`, each only if it differs
   * from what it saw before (`was`: the state before the change, with `wasOnline`); changes only,
   * so a watcher who cannot see the user hears nothing of it. */
  function presenceTo(user: string, s: SocialState, which: (w: Watcher) => boolean = () => true, was?: { s: Pick<SocialState, 'status' | 'stext' | 'privacy' | 'pairs'>; online: boolean }): void {
    const online = c.lookup(user).online;
    for (const w of c.watchers(user)) {
      if (!which(w)) continue;
      const now = shownTo(user, s, online, w.user);
      const before = shownTo(user, { ...s, ...(was?.s ?? s) }, was?.online ?? online, w.user);
      if (was === undefined || !sameEvent(now, before)) c.push(w.gateway, w.conn, now);
    }
  }
  const snap = (s: SocialState) => ({ status: s.status, stext: s.stext, privacy: s.privacy, pairs: new Map(s.pairs) });

  function revoke(users: string[]): void {
    for (const u of users) {
      const m = gates.get(u);
      if (m) {
        gateCount -= m.size;
        gates.delete(u);
      }
    }
  }

  function infoOf(viewer: string, user: string, s: SocialState): ContactInfo {
    const out: ContactInfo = {};
    if (visible(user, s, viewer, 'profile')) out.profile_version = s.pver;
    const p = c.lookup(user);
    const online = p.online && visible(user, s, viewer, 'presence');
    out.presence = { online };
    if (online && s.status !== 'available') out.presence.status = s.status;
    if (online && s.stext) out.presence.text = s.stext;
    return out;
  }

  return {
    load: state,

    op: (user, req) => queue(user, req),

    async contacts(user, after, limit) {
      const s = await load(user);
      const all = [...s.pairs].filter(([u, p]) => listed(p) && (after === undefined || u > after)).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      const page = all.slice(0, limit);
      // The contacts' presence and profile versions from their homes; without them when a home
      // cannot be reached, rather than no list at all.
      let infos: Record<string, ContactInfo> = {};
      if (page.length) {
        try {
          infos = await c.infoAnywhere(user, page.map(([u]) => u));
        } catch (e) {
          log.info({ user, err: (e as Error).message }, 'contacts listed without presence: a home did not answer');
        }
      }
      const contacts = page.map(([u, p]) => ({ ...view(u, p), ...(infos[u] ?? {}) }));
      const more = all.length > limit;
      return more ? { contacts, more, next: page[page.length - 1]![0] } : { contacts, more };
    },

    async profiles(viewer, users) {
      const out: Record<string, Profile | null> = Object.create(null);
      for (const u of users) {
        const s = await state(u);
        out[u] = s.pver > 0 && visible(u, s, viewer, 'profile') ? profileOf(s) : null;
      }
      return out;
    },

    async info(viewer, users) {
      const out: Record<string, ContactInfo> = Object.create(null);
      for (const u of users) out[u] = infoOf(viewer, u, await state(u));
      return out;
    },

    async admit(to, from, kind) {
      const s = await state(to);
      const no = admits(s, from, kind);
      if (no) return no;
      if (kind === 'request') {
        const p = s.pairs.get(from);
        // A request crossing one of ours is an accept; a repeated one changes nothing.
        if (!p?.fm && !p?.ft && counts(s).pending >= c.limits.maxPending) {
          return { code: 'too_large', message: `${to} has ${c.limits.maxPending} requests waiting; try again later` };
        }
      }
      return undefined;
    },

    gate(from, to, kind) {
      if (to === from) return true;
      const until = gates.get(to)?.get(from);
      // Typing follows the direct-message rule, so one cached yes serves both.
      const cacheable = kind === 'dm' || kind === 'typing';
      const k = `${kind}\0${to}\0${from}`;
      const ask = (): Promise<void> => {
        const going = asking.get(k);
        if (going) return going;
        const p = c.admitAt(to, from, kind).then((no) => {
          if (no) {
            gates.get(to)?.delete(from);
            throw no.code === 'forbidden' ? new ForbiddenError(no.message) : new ClientError(no.code, no.message);
          }
          if (!cacheable) return;
          if (gateCount >= GATE_MAX) {
            gates.clear();
            gateCount = 0;
          }
          let m = gates.get(to);
          if (!m) gates.set(to, (m = new Map()));
          if (!m.has(from)) gateCount++;
          m.set(from, now() + GATE_TTL_MS);
        });
        asking.set(k, p);
        const done = () => asking.delete(k);
        p.then(done, done);
        return p;
      };
      if (cacheable && until !== undefined) {
        if (until > now()) return true;
        // An older yes (no revocation came since) admits now and is asked again meanwhile: a
        // conversation goes on while the recipient's home is unreachable (the copy waits in the
        // outbox), and a refusal the revocation missed stops the next message.
        if (until + GATE_STALE_MS > now()) {
          ask().catch(() => undefined);
          return true;
        }
      }
      return ask();
    },

    revoke,

    async presenceFor(user, viewer, p) {
      const s = await state(user);
      if (!visible(user, s, viewer, 'presence')) {
        // Invisible looks like gone since going invisible; hidden by a rule shows no time at all.
        const rule = viewer !== user && s.status === 'invisible' && !s.pairs.get(viewer ?? '')?.bm.on && visible(user, { ...s, status: 'available' }, viewer, 'presence');
        const last = rule ? (s.hiddenAt || c.lastSeen(user)) : undefined;
        return last ? { online: false, last_seen: last } : { online: false };
      }
      if (!p.online) return p;
      const out: UserPresence = { ...p };
      if (s.status !== 'available') out.status = s.status;
      if (s.stext) out.text = s.stext;
      return out;
    },

    presenceChanged(user, online) {
      // Going online or offline: only the watchers who may see the user hear of it.
      const tell = (st: SocialState) => presenceTo(user, st, undefined, { s: st, online: !online });
      const s = peek(user);
      if (s) return tell(s);
      void load(user).then(tell, (e: Error) => {
        log.warn({ user, err: e.message }, 'presence change not told: the social state did not load');
        for (const w of c.watchers(user)) c.push(w.gateway, w.conn, { op: 'presence', user, online });
      });
    },

    committed(entries) {
      for (const e of entries) {
        if (!e.user.startsWith('s:')) continue;
        const user = e.user.slice(2);
        const ev = parseEvent(e.body);
        const other = ev && ev.k === 'pair' && e.from !== user ? e.from : undefined;
        let s = cached(user, true);
        if (!s && e.seq === 1 && c.owns(e.user)) remember(user, (s = emptySocial()));
        if (s && e.seq !== s.seq + 1) {
          cache.delete(user); // a gap: read it all again on next use
          s = undefined;
        }
        if (!s) {
          // Not in memory (the ring changed since it was read): what it was before is not known,
          // so the devices hear the relation as it is now.
          if (other !== undefined) {
            void c.replicated(e.user).then(() => load(user)).then((st) => announce(user, other, st.pairs.get(other) ?? emptyPair()))
              .catch((err: Error) => log.debug({ user, other, err: err.message }, 'contact change not announced'));
          }
          continue;
        }
        const before = other !== undefined ? s.pairs.get(other) ?? emptyPair() : undefined;
        applyEntry(s, e.seq, e.ts, e.body, user, e.from);
        if (other === undefined || before === undefined) continue;
        // The other side's change arrived: this side's devices hear of it once it is on every copy.
        const after = s.pairs.get(other)!;
        const changed = !sameView(view(other, before), view(other, after));
        void c.replicated(e.user).then(async () => {
          if (changed) await announce(user, other, after);
          await effects(user, s, other, before, after);
        }).catch((err: Error) => log.debug({ user, other, err: err.message }, 'contact change not announced'));
      }
    },

    ringChanged() {
      cache = new Map();
    },
  };
}
