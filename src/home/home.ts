// The home role: for the users this node owns, it runs the send pipeline (dedup, mid, seq,
// durable append), takes deliveries from other homes, answers timeline queries, and holds
// presence; it pushes to whichever gateways hold the sessions.
import type { Logger } from 'pino';
import type { Presence, SessionRef, Watcher } from '../presence/index.ts';

export type { Watcher };
import { DEDUP_KEY } from '../store/index.ts';
import type { NewEntry, Store, StoredEntry, Unread } from '../store/index.ts';
import { dmConv, parseConv } from '../protocol/frames.ts';
import type { Entry, MsgEvent, ServerFrame, UserPresence } from '../protocol/frames.ts';
import { entryWireChars, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { CastFrame, Delivery, FanItem, GroupPost, PostResult } from '../protocol/peer.ts';
import { ClientError, ForbiddenError, UnavailableError } from '../protocol/errors.ts';
import type { Lane } from '../gateway/lane.ts';
import { KeyedBatcher } from '../channel/batcher.ts';
import type { GroupInfo } from '../group-home/groups.ts';
import type { Social } from '../social/social.ts';

/** Delivers a frame to one connection held by a gateway (this node's own or a peer's). */
export type Push = (gateway: string, conn: string, frame: ServerFrame) => void;

export type SendResult = { mid: string; seq: number; ts: number; dup?: true };
export type Page = { msgs: Entry[]; more: boolean };

/** What a gateway asks of the homes of its users: implemented by the local home and by the router. */
export type Homes = {
  /** `lane`: the sending connection's, to keep its sends in order across retries (router). */
  send(from: string, to: string, cid: string, body: string, lane?: Lane): Promise<SendResult>;
  /** A group send: the sender's home dedups and mints the mid, the group's home orders it. */
  sendGroup(from: string, group: string, cid: string, body: string, lane?: Lane): Promise<SendResult>;
  /** group_create/add/remove/leave (undefined) and group_info (the group). */
  group(actor: string, op: 'create' | 'add' | 'remove' | 'leave' | 'info', group: string, members: string[]): Promise<GroupInfo | undefined>;
  /** Relays a typing notice to the other party's or the members' online devices. */
  typing(from: string, target: { to: string } | { group: string }): Promise<void>;
  /** The newest mid each party of the conversation has read. */
  receipts(user: string, conv: string): Promise<Record<string, string>>;
  /** Registers a logged-in session; the caller replays from `acked` (or its own since). */
  login(s: SessionRef): Promise<{ seq: number; acked: number }>;
  logout(s: SessionRef): Promise<void>;
  sync(user: string, after: number, limit: number): Promise<Page>;
  history(user: string, conv: string, before: number | undefined, limit: number): Promise<Page>;
  /** Resolves once the moved cursor is durable. */
  ack(user: string, device: string, seq: number): Promise<void>;
  read(s: SessionRef, conv: string, seq: number): Promise<void>;
  unread(user: string): Promise<Unread>;
  /** `viewer`: who asks (hidden users look offline to them, section 13). */
  presence(users: string[], viewer?: string): Promise<Record<string, UserPresence>>;
  watch(w: Watcher, users: string[]): Promise<void>;
  unwatch(w: Watcher, users: string[]): Promise<void>;
};

/** The local home adds what only the owner does: deliveries from other homes, session upkeep. */
export type Home = Homes & {
  /** Appends copies delivered by a sender's home (idempotent by mid); resolves when durable. */
  deliver(items: Delivery[]): Promise<void>;
  /** Appends group messages for the members this node is home of; per item, the users whose
   * copy it could not take (not the home now, or paused): the group home routes them again. */
  deliverFan(items: FanItem[]): Promise<string[][]>;
  /** Pushes a typing notice or receipt to the online devices of these users. */
  relay(users: string[], frame: ServerFrame): void;
  /** Per user homed here, the newest mid read in `conv`. */
  readMarks(conv: string, users: string[]): Promise<Record<string, string>>;
  /** Whether this node serves the key now: the ring's owner, and not paused by a handoff. */
  serves(key: string): boolean;
  /** Re-registers sessions (after a ring change); never replaces a newer session of the device. */
  register(sessions: SessionRef[]): void;
  /** A gateway's heartbeat for the connections it still holds: renews their sessions here (the
   * others expire) and returns the connections this home holds no session for. */
  renew(gateway: string, conns: string[]): string[];
  /** A gateway died or left: its sessions and watches go. */
  dropGateway(gateway: string): void;
  /** Expires sessions of gateways that stopped renewing. */
  tick(): void;
  /** Hands a copy to its key's home through the outbox (see `handOver` below). */
  handOver(sender: string, d: Delivery): Promise<void>;
  /** Hands over every outbox copy not already in flight (at start, and now and then). */
  replayOutbox(): Promise<{ delivered: number; failed: number }>;
  /** Stops writing to these users (they are being handed to a newcomer) until `release` or `ms`. */
  freeze(select: (user: string) => boolean, ms: number): { release(): void };
};

export type HomeComponents = {
  store: Store;
  presence: Presence;
  nextMid: () => string;
  midTime: (mid: string) => number;
  now: () => number;
  push: Push;
  log: Logger;
  /** Whether this node serves a user right now: its home by the ring, holding the write lease,
   * with a complete copy (always true on a lone node). */
  owns?: (user: string) => boolean;
  /** Why this node does not serve a user (for the `unavailable` message). */
  whyNot?: (user: string) => string;
  /** Hands a copy to a remote recipient's home; resolves once it is durable there. */
  deliverRemote?: (d: Delivery) => Promise<void>;
  /** Resolves once the user's replicas hold everything committed for the user so far. */
  replicated?: (user: string) => Promise<void>;
  /** Whether writes here have replicas at all (a cluster with R > 1 and other members). */
  replicating?: () => boolean;
  /** Hands posts of this node's senders to the group's home; per post, its mid or a refusal. */
  postGroup?: (group: string, posts: GroupPost[]) => Promise<PostResult[]>;
  /** Pushes a frame to the online devices of users homed anywhere. */
  relayRemote?: (users: string[], frame: ServerFrame) => Promise<void>;
  /** Relays a member's typing or receipt through the group's home. */
  castGroup?: (group: string, from: string, frame: CastFrame) => Promise<void>;
  /** The highest seq of a user's timeline reads may show: not entries the replicas lack yet. */
  readable?: (user: string) => number;
  onSent?: (dup: boolean) => void;
  /** Bytes of bodies one sync or history page may hold (it is cut with more: true). */
  maxReadBytes?: number;
  /** Devices of one user online at once; a login past it is refused too_large. */
  maxDevices?: number;
  /** A limit refused something (for the metrics). */
  onLimit?: (what: 'devices' | 'read_bytes') => void;
  /** Status and privacy (social.ts): what others see of a user's presence, who may send DMs. */
  social?: Pick<Social, 'presenceFor' | 'presenceChanged' | 'load' | 'gate'>;
};

export function toMsg(e: StoredEntry): MsgEvent {
  const m: MsgEvent = { op: 'msg', seq: e.seq, mid: e.mid, conv: e.conv, from: e.from, body: e.body, ts: e.ts };
  if (e.group !== undefined) m.group = e.group;
  else if (e.to !== undefined) m.to = e.to;
  return m;
}

/** The longest prefix of `entries` within PEER_BUDGET_CHARS (at least one entry): a reply to
 * another node must fit a peer frame, so a page of large bodies holds fewer than `limit`. */
function capPage(entries: StoredEntry[]): StoredEntry[] {
  let chars = 0;
  for (let i = 0; i < entries.length; i++) {
    chars += entryWireChars(entries[i]!.body);
    if (i > 0 && chars > PEER_BUDGET_CHARS) return entries.slice(0, i);
  }
  return entries;
}

const toEntry = (e: StoredEntry): Entry => {
  const { op: _op, ...entry } = toMsg(e);
  return entry;
};

type Work =
  | { kind: 'send'; from: string; to: string; cid: string; body: string; resolve(r: SendResult): void; reject(e: Error): void }
  | { kind: 'gsend'; from: string; group: string; cid: string; body: string; resolve(r: SendResult): void; reject(e: Error): void }
  /** `dkey`: the sender's own copy of a group message is its send-dedup entry (c:<cid>). */
  | { kind: 'deliver'; d: Delivery; dkey?: string; resolve(): void; reject(e: Error): void };

const keyOf = (w: Work) => (w.kind === 'deliver' ? { user: w.d.user, dkey: w.dkey ?? DEDUP_KEY.mid(w.d.mid) } : { user: w.from, dkey: DEDUP_KEY.cid(w.cid) });

/** A send not answered within this long is answered `unavailable`; its work goes on. */
const ANSWER_MS = 10_000;
/** Pause before a copy or post that failed with `unavailable` is tried again. */
const RETRY_MS = 300;

export function createHome(c: HomeComponents): Home {
  const { store, presence } = c;
  // Users being handed to a newcomer: no writes until the ring moves them (answered unavailable,
  // which is safe to retry), so that the copy the newcomer takes is final.
  const freezes = new Set<(user: string) => boolean>();
  const frozen = (user: string) => {
    for (const f of freezes) if (f(user)) return true;
    return false;
  };
  const ringOwns = c.owns ?? (() => true);
  const owns = (user: string) => ringOwns(user) && !(freezes.size && frozen(user));
  // Ownership is checked again when a write is applied, not only when the call was routed: the
  // ring may have moved the user (or a handoff paused it) while the call waited in the queue,
  // and a write applied by a former home would be confirmed without reaching the new one.
  const whyNot = (user: string) => (c.whyNot?.(user) ?? `${user} is moving to another node`);
  const refuseUnowned = (user: string) => {
    if (!owns(user)) throw new UnavailableError(whyNot(user));
  };
  // Reads and logins go on while a user's writes pause for a handoff (the data is final then).
  const refuseUnserved = (user: string) => {
    if (!ringOwns(user)) throw new UnavailableError(whyNot(user));
  };
  const replicated = c.replicated ?? (() => Promise.resolve());
  const maxReadBytes = c.maxReadBytes ?? 1024 * 1024;
  const readable = c.readable ?? (() => Infinity);
  /** Durable here and on the user's replicas. */
  const everywhere = (durable: Promise<void>, user: string) => durable.then(() => replicated(user));

  // Sends and deliveries are handled in batches: one dedup lookup per batch, then seqs assigned
  // in arrival order, synchronously, so order per connection holds with any number in flight.
  let queue: Work[] = [];
  let scheduled = false;

  function enqueue(w: Work): void {
    queue.push(w);
    if (!scheduled) {
      scheduled = true;
      setImmediate(() => void drain());
    }
  }

  async function drain(): Promise<void> {
    scheduled = false;
    const batch = queue;
    queue = [];
    let found: Map<string, StoredEntry>;
    try {
      found = await store.findDedup(batch.map(keyOf));
    } catch (e) {
      for (const w of batch) w.reject(e as Error);
      return;
    }
    // From here to the end of the loop nothing awaits: see Store.findDedup.
    for (const w of batch) {
      try {
        take(w, found);
      } catch (e) {
        // A write the store refuses (its user is being imported) fails alone, not the batch, and
        // may be retried.
        c.log.warn({ user: keyOf(w).user, err: (e as Error).message }, 'write refused by the store');
        w.reject(new UnavailableError(`${keyOf(w).user}: ${(e as Error).message}`));
      }
    }
  }

  /** One send or delivery of a batch, in order; synchronous (see Store.findDedup). */
  function take(w: Work, found: Map<string, StoredEntry>): void {
    const { user, dkey } = keyOf(w);
    if (!owns(user)) {
      w.reject(new UnavailableError(whyNot(user)));
      return;
    }
    const pending = store.peekDedup(user, dkey);
    const existing = pending ?? found.get(`${user}\0${dkey}`);
    if (w.kind === 'deliver') {
      if (existing) everywhere(pending ? store.flush() : Promise.resolve(), user).then(w.resolve, w.reject);
      else everywhere(store.append([{ ...w.d, dkey }]).durable, user).then(w.resolve, w.reject);
      return;
    }
    if (existing?.group !== undefined) {
      sendToGroup(w, existing, pending !== undefined);
      return;
    }
    if (existing) {
      c.onSent?.(true);
      const r: SendResult = { mid: existing.mid, seq: existing.seq, ts: existing.ts, dup: true };
      // The recipient's copy may be missing: the entry may have been made by a home that died
      // (this node holds it as that home's replica) before the copy was handed over. Hand it
      // over again, idempotent by mid, here or at the recipient's home, before answering; and,
      // as for a new send, only once the sender's entry is on every copy (a resend can arrive
      // while the first attempt's entry is still being replicated).
      // The copy keeps its place behind the sender's group posts made before this resend, like a
      // first send's copy, and joins a hand-over of the same copy still under way.
      const to = existing.to;
      const mine = everywhere(pending ? store.flush() : Promise.resolve(), user);
      const postBefore = lastPost.get(user);
      const ready = mine.then(() => settled(postBefore));
      ready.catch(() => undefined); // unused when there is no copy to hand over
      const copy = to === undefined || to === user ? undefined
        : owns(to) ? ready.then(() => new Promise<void>((resolve, reject) => enqueue({ kind: 'deliver', d: delivery(existing, to), resolve, reject })))
        : c.deliverRemote ? handOver(user, delivery(existing, to), ready) : undefined;
      if (copy && c.deliverRemote && !owns(to!)) after(lastCopy, user, copy);
      answer(w, Promise.all([mine, copy]).then(() => r));
      return;
    }
    // A new group send, or a 1:1 send reusing the cid of a group send still in flight (it gets
    // that one's answer).
    if (w.kind === 'gsend' || gsending.has(`${w.from}\0${w.cid}`)) {
      sendToGroup(w, undefined, false);
      return;
    }
    const mid = c.nextMid();
    const ts = c.midTime(mid);
    const base = { mid, conv: dmConv(w.from, w.to), from: w.from, to: w.to, body: w.body, ts };
    const items: NewEntry[] = [{ ...base, user: w.from, dkey }];
    // The recipient's copy is handed over only once the sender's entry (with its dedup key) is
    // on every copy: were the home to die between the two, a resend of the cid to the next
    // home would make a second message, and the recipient would have both. Without replicas a
    // local recipient's copy goes in the same transaction instead.
    // A group post of the sender still in flight goes first (see `after`): then the copy too is
    // handed over separately, behind it.
    const postBefore = lastPost.get(w.from);
    const separate = w.to !== w.from && c.deliverRemote !== undefined && (!owns(w.to) || (c.replicating?.() ?? false) || postBefore !== undefined);
    if (w.to !== w.from && !separate) items.push({ ...base, user: w.to, dkey: DEDUP_KEY.mid(mid) });
    // A copy handed over separately is kept in the outbox, in the same transaction as the
    // sender's entry, until its home has it: a crash in between cannot lose it.
    const copyOf: Delivery = { ...base, user: w.to };
    const ob = separate ? [{ user: w.from, mid, dest: w.to, item: copyOf }] : [];
    const { entries, durable } = store.append(items, ob);
    const r: SendResult = { mid, seq: entries[0]!.seq, ts };
    c.onSent?.(false);
    const mine = everywhere(durable, w.from);
    const copy = separate ? handOver(w.from, copyOf, mine.then(() => settled(postBefore))) : undefined;
    if (copy) after(lastCopy, w.from, copy);
    const local = w.to !== w.from && !separate ? everywhere(durable, w.to) : undefined;
    answer(w, Promise.all([mine, local, copy]).then(() => r));
  }

  /** Answers a send once `p` settles, or `unavailable` after ANSWER_MS: the work goes on (a copy
   * or post is never given up while it may still land), and a resend with the cid joins it. */
  function answer(w: { resolve(r: SendResult): void; reject(e: Error): void }, p: Promise<SendResult>): void {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UnavailableError('the message is still being handed over')), ANSWER_MS);
      timer.unref();
    });
    Promise.race([p, late]).then(w.resolve, w.reject).finally(() => clearTimeout(timer));
    p.catch(() => undefined);
  }

  /** Runs `attempt` again while it fails with UnavailableError and this node is still the home
   * of every sender. A sender's copies and group posts wait for the ones made before them (see
   * `after`); were one given up after a timeout, the later ones would go ahead and the given-up
   * one, resent by the client or the outbox, would land behind them: order per connection
   * broken (seen under CPU load, when a group's fan-out outlasted the router's deadline). */
  async function persist<T>(senders: string[], attempt: () => Promise<T>, valid: () => boolean = () => true): Promise<T> {
    for (;;) {
      try {
        return await attempt();
      } catch (e) {
        if ((e as Error).name !== 'UnavailableError' || !senders.every(owns) || !valid()) throw e;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  // Group sends of this node's senders, per group in the order they were made: one batch in
  // flight to the group's home at a time, so a later post cannot overtake an earlier one.
  // A batch stays well under the peer frame limit whatever the bodies.
  // A batch that fails with `unavailable` is sent again in its place (see `persist`), so that no
  // later batch of the group overtakes it.
  const posting = new KeyedBatcher<GroupPost, PostResult>(
    (group, posts) => persist(posts.map((p) => p.from), () => c.postGroup!(group, posts)), 500, (p) => entryWireChars(p.body), PEER_BUDGET_CHARS);
  // Per sender, the newest 1:1 copy being handed over and the newest group post in flight: a
  // group post waits for the copies sent before it, and a copy for the posts before it, so that
  // a connection mixing 1:1 and group messages keeps its order at a recipient of both (the two
  // go different ways: straight to the recipient's home, or through the group's home).
  const lastCopy = new Map<string, Promise<unknown>>();
  const lastPost = new Map<string, Promise<unknown>>();
  function after(m: Map<string, Promise<unknown>>, from: string, p: Promise<unknown>): void {
    m.set(from, p);
    const clear = () => {
      if (m.get(from) === p) m.delete(from);
    };
    p.then(clear, clear);
  }
  const settled = (p: Promise<unknown> | undefined) => p?.then(() => undefined, () => undefined);

  // Group sends handed to the group's home and not answered yet, by sender and cid: a resend
  // meanwhile waits for the first (the sender's entry exists only once the copy is back).
  const gsending = new Map<string, Promise<SendResult>>();

  /** A group send, or a resend of a cid whose entry is a group message. `existing`: the
   * sender's entry for the cid, if any (then it is posted again: the group's home recognises it
   * by sender and cid, and answers once its fan-out to every member is complete). */
  function sendToGroup(w: Extract<Work, { kind: 'send' | 'gsend' }>, existing: StoredEntry | undefined, pending: boolean): void {
    const flight = `${w.from}\0${w.cid}`;
    const running = gsending.get(flight);
    if (running) {
      answer(w, running.then((r) => ({ ...r, dup: true as const })));
      return;
    }
    if (!c.postGroup) {
      w.reject(new UnavailableError('groups need the cluster router'));
      return;
    }
    const group = existing?.group ?? (w.kind === 'gsend' ? w.group : undefined)!;
    const mid = existing?.mid ?? c.nextMid();
    const post: GroupPost = { from: w.from, cid: w.cid, mid, body: existing?.body ?? w.body, ts: existing?.ts ?? c.midTime(mid) };
    c.onSent?.(existing !== undefined);
    const copiesBefore = lastCopy.get(w.from);
    const run = (async (): Promise<SendResult> => {
      if (pending) await store.flush();
      await settled(copiesBefore);
      const r = await posting.add(group, post);
      if ('code' in r) {
        if (r.code === 'forbidden') throw new ForbiddenError(r.message);
        // Its fan-out outlasted the deadline: in the group's log, still going out (safe to resend).
        if (r.code === 'unavailable') throw new UnavailableError(r.message);
        throw new ClientError(r.code, r.message);
      }
      // The group's home answers once every member's copy is durable, the sender's own copy
      // (its send-dedup entry) among them.
      const dkey = DEDUP_KEY.cid(w.cid);
      const own = store.peekDedup(w.from, dkey) ?? (await store.findDedup([{ user: w.from, dkey }])).get(`${w.from}\0${dkey}`);
      if (!own) throw new UnavailableError(`${w.from} moved to another node while the group message was sent`);
      await replicated(w.from);
      return { mid: own.mid, seq: own.seq, ts: own.ts, ...(existing ? { dup: true as const } : {}) };
    })();
    gsending.set(flight, run);
    after(lastPost, w.from, run);
    const forget = () => {
      if (gsending.get(flight) === run) gsending.delete(flight);
    };
    run.then(forget, forget);
    answer(w, run);
  }

  /** Hands a copy to its home once `ready` (retried while this node is the sender's home, see
   * `persist`) and, once it is there, clears the sender's outbox row. A copy already on its way
   * is joined. It counts as on its way from the start, while it waits for `ready` too: the
   * outbox replay must not hand over a copy that waits for the sender's earlier messages (it
   * did, under load, when a send outlasted the replay timer, and the copy overtook them).
   * A copy is handed over only while the sender's data it came from is still held: were it
   * dropped for another copy (this node rejoined after a partition and its unconfirmed writes
   * lost to the other side's), the message is not in the sender's timeline any more, and its
   * copy must not reach the recipient. */
  const inFlight = new Map<string, Promise<void>>();
  function handOver(sender: string, d: Delivery, ready: Promise<unknown> = Promise.resolve()): Promise<void> {
    const key = `${sender}\0${d.mid}\0${d.user}`;
    const going = inFlight.get(key);
    if (going) {
      // Joined: this call's own `ready` is not waited for, and must not reject unhandled (it
      // did, and killed a node, when a resend joined a copy and the node then lost the user).
      ready.catch(() => undefined);
      return going;
    }
    const held = store.holding(sender);
    const valid = () => held !== undefined && store.holding(sender) === held;
    const attempt = () => {
      if (!valid()) throw new UnavailableError(`${sender}'s copy of ${d.mid} was replaced by another node's: not handed over`);
      return c.deliverRemote!(d);
    };
    const p = ready.then(() => persist([sender], attempt, valid)).then(() => store.outboxDone([{ user: sender, mid: d.mid, dest: d.user }]));
    inFlight.set(key, p);
    const gone = () => inFlight.delete(key);
    p.then(gone, gone);
    return p;
  }

  const delivery = (e: StoredEntry, user: string): Delivery => {
    const d: Delivery = { user, mid: e.mid, conv: e.conv, from: e.from, body: e.body, ts: e.ts };
    if (e.to !== undefined) d.to = e.to;
    if (e.group !== undefined) d.group = e.group;
    return d;
  };

  const notifyWatchers = (user: string, online: boolean) => {
    if (c.social) return c.social.presenceChanged(user, online);
    for (const w of presence.watchers(user)) c.push(w.gateway, w.conn, { op: 'presence', user, online });
  };
  // Per sender, the newest send still waiting for its recipient's admission: later sends of the
  // sender (direct or group) wait behind it, so that sends keep their order whatever each
  // admission takes (invariant 3).
  const admitting = new Map<string, Promise<void>>();
  function inOrder(from: string, gate: true | Promise<void>, run: () => Promise<SendResult>): Promise<SendResult> {
    const prev = admitting.get(from);
    if (gate === true && !prev) return run();
    const ready = Promise.all([prev, gate]);
    const out = ready.then(run);
    const entered = ready.then(() => undefined, () => undefined);
    admitting.set(from, entered);
    void entered.then(() => {
      if (admitting.get(from) === entered) admitting.delete(from);
    });
    return out;
  }
  const wentOffline = (user: string) => {
    const p = presence.lookup(user);
    store.setLastSeen(user, (!p.online && p.lastSeen) || c.now());
    notifyWatchers(user, false);
  };
  const registered = (s: SessionRef) => {
    const { replaced, wentOnline } = presence.register(s);
    if (replaced) c.push(replaced.gateway, replaced.conn, { op: 'goaway', reason: 'replaced' });
    if (wentOnline) notifyWatchers(s.user, true);
  };

  /** The read cursor of `user` in `conv` moved: the other party or members hear of it. */
  async function receipt(user: string, conv: string): Promise<void> {
    const mid = (await store.readMarks(conv, [user])).get(user);
    const p = parseConv(conv);
    if (mid === undefined || !p) return;
    if (p.kind === 'group') return c.castGroup?.(p.group, user, { kind: 'receipt', mid });
    const other = p.a === user ? p.b : p.a;
    if (other !== user) await c.relayRemote?.([other], { op: 'receipt', conv, by: user, mid });
  }

  const checkConv = (user: string, conv: string) => {
    const p = parseConv(conv);
    if (p?.kind === 'dm' && p.a !== user && p.b !== user) throw new ForbiddenError(`${user} is not part of ${conv}`);
  };

  return {
    send(from, to, cid, body) {
      // The recipient's home decides whether it takes the message (a block, contacts only), before
      // anything is stored; its recent yeses are cached, so this is mostly synchronous.
      const gate = c.social?.gate(from, to, 'dm') ?? true;
      return inOrder(from, gate, () => new Promise<SendResult>((resolve, reject) => enqueue({ kind: 'send', from, to, cid, body, resolve, reject })));
    },

    sendGroup(from, group, cid, body) {
      // Behind the sender's direct messages still waiting for their admission, like any send.
      return inOrder(from, true, () => new Promise<SendResult>((resolve, reject) => enqueue({ kind: 'gsend', from, group, cid, body, resolve, reject })));
    },

    deliver(items) {
      return Promise.all(items.map((d) => new Promise<void>((resolve, reject) => enqueue({ kind: 'deliver', d, resolve, reject })))).then(() => undefined);
    },

    async deliverFan(items) {
      const failed: string[][] = items.map(() => []);
      const waits: Promise<void>[] = [];
      items.forEach((it, i) => {
        const { users, cid, ...msg } = it;
        for (const user of users) {
          if (!owns(user)) {
            failed[i]!.push(user);
            continue;
          }
          const dkey = user === it.from && cid !== undefined ? DEDUP_KEY.cid(cid) : undefined;
          waits.push(new Promise<void>((resolve, reject) => enqueue({ kind: 'deliver', d: { ...msg, user }, ...(dkey ? { dkey } : {}), resolve, reject }))
            .catch((e: Error) => {
              if (e.name !== 'UnavailableError') throw e;
              failed[i]!.push(user);
            }));
        }
      });
      await Promise.all(waits);
      return failed;
    },

    relay(users, frame) {
      for (const u of new Set(users)) for (const s of presence.sessions(u)) c.push(s.gateway, s.conn, frame);
    },

    async readMarks(conv, users) {
      return Object.fromEntries(await store.readMarks(conv, users.filter((u) => owns(u))));
    },

    serves: (key) => owns(key),

    async group() {
      throw new UnavailableError('groups need the cluster router');
    },
    async typing() {
      throw new UnavailableError('typing needs the cluster router');
    },
    async receipts() {
      throw new UnavailableError('receipts need the cluster router');
    },

    async login(s) {
      refuseUnserved(s.user);
      const devices = new Set(presence.sessions(s.user).map((o) => o.device));
      if (c.maxDevices !== undefined && !devices.has(s.device) && devices.size >= c.maxDevices) {
        c.onLimit?.('devices');
        throw new ClientError('too_large', `${s.user} is online on ${devices.size} devices, the most this cluster allows; log out of one first`);
      }
      // Its status and privacy in memory before it shows online, so presence events need no read.
      await c.social?.load(s.user).catch((e: Error) => c.log.warn({ user: s.user, err: e.message }, 'social state not loaded at login'));
      registered(s);
      return { seq: Math.min(store.committedSeq(s.user), readable(s.user)), acked: store.acked(s.user, s.device) };
    },

    async logout(s) {
      if (presence.unregister(s).wentOffline) wentOffline(s.user);
    },

    register(sessions) {
      for (const s of sessions) {
        const current = presence.sessions(s.user).find((o) => o.device === s.device);
        if (current && (current.gateway !== s.gateway || current.conn !== s.conn)) continue;
        registered(s);
      }
    },

    renew: (gateway, conns) => presence.renew(gateway, conns),

    dropGateway(gateway) {
      for (const u of presence.dropGateway(gateway)) wentOffline(u);
    },

    async sync(user, after, limit) {
      // Never a read that could be stale: not from a copy that may lack confirmed writes, nor on
      // a node cut off from the majority (the others may have written since).
      refuseUnserved(user);
      const { entries, more } = await store.readers.sync(user, after, limit, maxReadBytes);
      if (more && entries.length < limit) c.onLimit?.('read_bytes');
      const upTo = readable(user);
      const visible = entries.filter((e) => e.seq <= upTo);
      const shown = capPage(visible);
      // What is held back comes by push once the replicas have it; a page cut for size has more.
      return { msgs: shown.map(toEntry), more: shown.length < visible.length || (more && visible.length === entries.length) };
    },

    async history(user, conv, before, limit) {
      checkConv(user, conv);
      refuseUnserved(user);
      const { entries, more } = await store.readers.history(user, conv, before, limit, maxReadBytes);
      if (more && entries.length < limit) c.onLimit?.('read_bytes');
      const upTo = readable(user);
      const visible = entries.filter((e) => e.seq <= upTo);
      const shown = capPage(visible);
      return { msgs: shown.map(toEntry), more: more || shown.length < visible.length };
    },

    async ack(user, device, seq) {
      refuseUnowned(user);
      if (store.ack(user, device, seq)) await everywhere(store.flush(), user);
    },

    async read(s, conv, seq) {
      checkConv(s.user, conv);
      refuseUnowned(s.user);
      const moved = await store.read(s.user, conv, seq);
      if (moved === undefined) return;
      await replicated(s.user);
      for (const o of presence.sessions(s.user)) {
        if (o.gateway !== s.gateway || o.conn !== s.conn) c.push(o.gateway, o.conn, { op: 'read', conv, seq: moved });
      }
      void receipt(s.user, conv).catch((e: Error) => c.log.debug({ user: s.user, conv, err: e.message }, 'receipt not relayed'));
    },

    unread: async (user) => {
      refuseUnserved(user);
      return store.unread(user);
    },

    async presence(users, viewer) {
      // No prototype: a user may be called __proto__ or constructor.
      const out: Record<string, UserPresence> = Object.create(null);
      for (const u of users) {
        const p = presence.lookup(u);
        if (p.online) out[u] = { online: true, devices: p.devices };
        else {
          const last = p.lastSeen ?? store.lastSeen(u);
          out[u] = last === undefined ? { online: false } : { online: false, last_seen: last };
        }
        if (c.social) out[u] = await c.social.presenceFor(u, viewer, out[u]!);
      }
      return out;
    },

    watch: async (w, users) => presence.watch(w, users),
    unwatch: async (w, users) => presence.unwatch(w, users),

    tick() {
      for (const u of presence.expire().wentOffline) wentOffline(u);
    },

    freeze(select, ms) {
      freezes.add(select);
      const timer = setTimeout(() => freezes.delete(select), ms);
      timer.unref();
      return {
        release() {
          clearTimeout(timer);
          freezes.delete(select);
        },
      };
    },

    handOver: (sender, d) => handOver(sender, d),

    async replayOutbox() {
      let delivered = 0;
      let failed = 0;
      if (!c.deliverRemote) return { delivered, failed };
      const rows = await store.outbox();
      await Promise.all(rows.map(async (row) => {
        if (inFlight.has(`${row.user}\0${row.mid}\0${row.dest}`)) return;
        // Only the sender's home hands copies over: elsewhere its timeline may be a stale copy.
        if (!owns(row.user)) return;
        const d = row.item as Delivery;
        try {
          await handOver(row.user, d);
          delivered++;
        } catch (e) {
          failed++;
          c.log.warn({ mid: row.mid, to: row.dest, err: (e as Error).message }, 'outbox copy not delivered yet; will retry');
        }
      }));
      return { delivered, failed };
    },
  };
}

/** Wires the store's commit stream to pushes: every committed entry to every session of its user. */
export function pushCommitted(entries: StoredEntry[], presence: Presence, push: Push): number {
  let n = 0;
  for (const e of entries) {
    const sessions = presence.sessions(e.user);
    if (sessions.length === 0) continue;
    const m = toMsg(e);
    for (const s of sessions) {
      push(s.gateway, s.conn, m);
      n++;
    }
  }
  return n;
}
