// Replication: every commit a home makes for its users (entries and state) goes to the users'
// replicas, the next R-1 owners on the ring, in order per replica with one batch in flight;
// `sent` and `ok` wait until every current replica has it. A replica that misses earlier data
// says how far it is, and the home backfills from its store. Replicas accept writes only from
// the node their own ring names as the user's home (fencing).
import type { Logger } from 'pino';
import type { Ring } from '../ring/index.ts';
import { cutSnapshot, snapshotChars, snapshotRows } from '../store/index.ts';
import type { Changed, ExportedEntry, ExportPage, Store, UserSnapshot } from '../store/index.ts';
import { packPage } from '../protocol/peer.ts';
import type { Page, PeerReply, PeerRequest } from '../protocol/peer.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { mergeSnap, normalize } from './replication-items.ts';
import type { Item } from './replication-items.ts';

export type ReplicatorComponents = {
  self: string;
  store: Store;
  ring: () => Ring;
  joined: () => boolean;
  peerOf: (name: string) => string | undefined;
  request: (peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }) => Promise<unknown>;
  ringChange: (ms: number) => Promise<void>;
  log: Logger;
  deadlineMs?: number;
  onBatch?: (dest: string, entries: number, users: number) => void;
  /** A user stopped going first to a replica: its writes waited longer than the deadline. */
  onUrgentExpired?: () => void;
  /** The write lease (see membership): without it no write is confirmed, and none is taken as a replica. */
  lease?: () => boolean;
  /** Whether this node's copy of a user it owns is complete (see custody): only those are sent to
   * replicas after a ring change, so a replica is never "filled" from a partial copy. */
  complete?: (user: string) => boolean;
  /** Replica side: an import brought the home's snapshot of the user (the copy here is complete). */
  onFilled?: (user: string) => void;
};

export type Replicator = {
  /** The store committed these (from its onCommit hook): queue them for the replicas. */
  committed(entries: ExportedEntry[], changed: Changed): void;
  /** Resolves once every current replica of `user` has everything committed for it so far. */
  wait(user: string): Promise<void>;
  /** Replica side: apply a page from a home. */
  apply(fromName: string | undefined, page: Page): Promise<PeerReply>;
  /** The ring changed: send every owned user's state to its replicas (new ones get backfilled). */
  ringChanged(): void;
  /** Users queued, on the wire or waiting to be asked again, over all replicas. */
  pending(): number;
  /** (replica, user) pairs not known to be in sync: a ring change, a gap or a refusal put them
   * here, a clean acknowledgement takes them out. Live writes do not count, so this reaches 0
   * under traffic once re-replication after a change has finished. */
  behind(): number;
  /** Per replica with work: users queued, on the wire, waiting to ask again after a refusal, behind. */
  progress(): Record<string, ReplicaProgress>;
};

export type ReplicaProgress = { queued: number; inflight: number; deferred: number; behind: number };

// items: queued; inflight: the version of each user's batch on the wire; version: acked.
type Dest = {
  items: Map<string, Item>; inflight: Map<string, number>; busy: boolean; version: Map<string, number>;
  warned: number; deferred: number; behind: Set<string>;
  /** Users a client write waits for, with since when: their items go first (a backfill after a
   * crash can be long), for at most the write deadline, so that one user whose data cannot get
   * through does not hold back every other user of the replica. */
  urgent: Map<string, number>;
};
type Waiter = { user: string; required: Map<string, number>; resolve(): void; reject(e: Error): void; timer: NodeJS.Timeout };

const BATCH_USERS = 5000;
/** Estimated JSON characters of one batch: far below the peer frame limit (4 MiB). */
const BATCH_CHARS = 1 << 20;
/** Rows per store page of a backfill: 100 bodies of 16 KiB, escaped, still fit a frame. */
const BACKFILL_PAGE_ROWS = 100;
const DEADLINE_MS = 10_000;
const WARN_EVERY_MS = 5000;
/** A replica refused (its ring names another home), or a backfill could not be read: again after this long. */
const REFUSED_RETRY_MS = 300;

const entryChars = (e: ExportedEntry): number => 256 + 2 * e.body.length;
/** Another copy of a message already in the batch: packed, it carries no body (packPage). */
const COPY_CHARS = 192;

export function createReplicator(c: ReplicatorComponents): Replicator {
  const { self, store, log } = c;
  const deadlineMs = c.deadlineMs ?? DEADLINE_MS;
  const lease = c.lease ?? (() => true);
  const complete = c.complete ?? (() => true);
  /** Why a home must not confirm a write of `user` now, if it must not. */
  const unconfirmable = (user: string): string | undefined => {
    if (!c.joined() || c.ring().owner(user) !== self) return `${user} moved to another node while this write was in flight`;
    if (!lease()) return 'this node cannot hear a majority of the cluster: the write is not confirmed';
    return undefined;
  };
  const dests = new Map<string, Dest>();
  const waiters = new Map<string, Set<Waiter>>(); // by user, each set in arrival order
  const forget = (w: Waiter): void => {
    const ws = waiters.get(w.user);
    ws?.delete(w);
    if (ws?.size === 0) waiters.delete(w.user);
  };
  let version = 0;

  const replicasOf = (user: string): string[] => {
    if (!c.joined()) return [];
    const ring = c.ring();
    const owners = ring.owners(user, ring.replicas);
    return owners[0] === self ? owners.slice(1) : [];
  };
  const dest = (name: string): Dest => {
    let d = dests.get(name);
    if (!d) dests.set(name, (d = { items: new Map(), inflight: new Map(), busy: false, version: new Map(), warned: 0, deferred: 0, behind: new Set(), urgent: new Map() }));
    return d;
  };

  /** `older`: `snap` is from before what is queued for the user (the rest of an item sent in
   * parts, or one put back), so what is queued wins where they differ. */
  function enqueue(to: string, user: string, entries: ExportedEntry[], snap: UserSnapshot | undefined, backfill?: number, older = false): void {
    const d = dest(to);
    const v = ++version;
    const it = d.items.get(user);
    if (it) {
      if (it.backfill === undefined) it.entries.push(...entries);
      it.snap = older ? mergeSnap(snap, it.snap) : mergeSnap(it.snap, snap);
      it.version = v;
      if (backfill !== undefined) it.backfill = Math.min(it.backfill ?? backfill, backfill);
      normalize(it);
    } else {
      const fresh: Item = { entries: [...entries], snap, version: v, ...(backfill !== undefined ? { backfill } : {}) };
      normalize(fresh);
      d.items.set(user, fresh);
    }
    if (!d.busy) flush(to, d).catch((e: unknown) => log.error({ to, err: (e as Error).message }, 'replication flush failed'));
  }

  /** Queues the user's item for `to` again after a short while, if `to` still replicates it
   * then (a refusal: the rings disagree for now; a backfill that could not be read). */
  function later(to: string, d: Dest, u: string, entries: ExportedEntry[], snap: UserSnapshot | undefined, backfill: number | undefined): void {
    if (!replicasOf(u).includes(to)) return;
    d.behind.add(u);
    d.deferred++;
    setTimeout(() => {
      d.deferred--;
      if (replicasOf(u).includes(to)) enqueue(to, u, entries, snap, backfill, true);
      else d.behind.delete(u);
    }, REFUSED_RETRY_MS).unref();
  }

  /** Forgets queued work and sync state of users whose replica `to` no longer is. */
  function prune(to: string, d: Dest): void {
    for (const [u] of [...d.items]) if (!replicasOf(u).includes(to)) d.items.delete(u);
    for (const u of [...d.behind]) if (!replicasOf(u).includes(to)) d.behind.delete(u);
    for (const u of [...d.urgent.keys()]) if (!replicasOf(u).includes(to)) d.urgent.delete(u);
  }

  function settle(user: string): void {
    for (const w of waiters.get(user) ?? []) {
      const no = unconfirmable(user);
      if (no) {
        // No longer the home (a ring change, or this node was declared dead), or cut off from the
        // majority: the replicas it waited for may never have the write, or the others may have
        // given the user to another home. Not confirmed; the client retries the same cid.
        forget(w);
        clearTimeout(w.timer);
        w.reject(new UnavailableError(no));
        continue;
      }
      if (replicasOf(user).every((r) => (dests.get(r)?.version.get(user) ?? 0) >= (w.required.get(r) ?? 1))) {
        forget(w);
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  }

  /** Part of what a backfilled user needs, everything after what the replica said it has, about
   * `budget` characters of it or one store page at least; `done` when it reached the end. The
   * export's snapshot is left out: the item's own snapshot (the whole state after a gap, or
   * every change since the item was queued) goes with the last part, in parts if it is large. */
  async function backfillPart(user: string, after: number, budget: number): Promise<{ page: ExportPage; chars: number; done: boolean; last: number }> {
    const page: ExportPage = { users: [], entries: [] };
    let chars = 0;
    let last = after;
    const pages = store.exportUsers((u) => u === user, { only: [user], after: { [user]: after }, pageRows: BACKFILL_PAGE_ROWS })[Symbol.asyncIterator]();
    for (;;) {
      if (page.entries.length > 0 && chars >= budget) {
        await pages.return?.();
        return { page, chars, done: false, last };
      }
      const r = await pages.next();
      if (r.done) return { page, chars, done: true, last };
      for (const e of r.value.entries) {
        page.entries.push(e);
        chars += entryChars(e);
        last = Math.max(last, e.seq);
      }
    }
  }

  async function flush(to: string, d: Dest): Promise<void> {
    d.busy = true;
    try {
      while (d.items.size) {
        // One batch: whole users in queue order, up to a size the peer frame takes with room
        // to spare; a long backfill goes part by part, the rest queued again after each part.
        // Per user: its item, how far a partial backfill got, and the rest of a snapshot sent in parts.
        const batch: [string, Item, number | undefined, UserSnapshot | undefined][] = [];
        const page: ExportPage = { users: [], entries: [] };
        let chars = 0;
        const mids = new Set<string>();
        const now = Date.now();
        for (const [u, since] of d.urgent) {
          if (now - since <= deadlineMs) continue;
          d.urgent.delete(u);
          c.onUrgentExpired?.();
          log.warn({ to, user: u }, 'replication of a user waited for past the deadline; it no longer goes first');
        }
        const first = [...d.urgent.keys()].filter((u) => d.items.has(u));
        const order = first.length ? [...first, ...[...d.items.keys()].filter((u) => !d.urgent.has(u))] : [...d.items.keys()];
        for (const u of order) {
          // Gone since `order` was taken: a backfill export awaited, and a ring change pruned it.
          const it = d.items.get(u);
          if (!it) continue;
          if (batch.length >= BATCH_USERS || (batch.length > 0 && chars >= BATCH_CHARS)) break;
          d.items.delete(u);
          d.inflight.set(u, it.version);
          let partial: number | undefined;
          if (it.backfill !== undefined) {
            // From one entry before what the replica has: if its copy diverged (stale data from
            // before a restart), the import conflicts on that entry and it starts afresh.
            let part: Awaited<ReturnType<typeof backfillPart>>;
            try {
              part = await backfillPart(u, Math.max(0, it.backfill - 1), BATCH_CHARS - chars);
            } catch (e) {
              // The user was dropped or moved during the export: it goes again on the next round
              // if this node still replicates it to `to`.
              log.warn({ to, user: u, err: (e as Error).message }, 'replication backfill could not be read; retrying');
              d.inflight.delete(u);
              later(to, d, u, [], undefined, it.backfill);
              continue;
            }
            page.entries.push(...part.page.entries);
            page.users.push(...part.page.users);
            chars += part.chars;
            if (!part.done) partial = part.last;
          } else {
            page.entries.push(...it.entries);
            for (const e of it.entries) {
              chars += mids.has(e.mid) ? COPY_CHARS : entryChars(e);
              mids.add(e.mid);
            }
          }
          let rest: UserSnapshot | undefined;
          if (it.snap && partial === undefined) {
            // A snapshot too large for what is left of the batch goes in parts, one per batch.
            const { part, end } = cutSnapshot(it.snap, 0, Math.max(BATCH_CHARS - chars, BATCH_CHARS / 4), Infinity);
            if (end < snapshotRows(it.snap)) rest = cutSnapshot(it.snap, end, Infinity, Infinity).part;
            page.users.push(part);
            chars += snapshotChars(part);
          }
          batch.push([u, it, partial, rest]);
        }
        const peer = c.peerOf(to);
        log.debug({ to, users: batch.length, entries: page.entries.length, snaps: page.users.length, chars, partial: batch.filter((b) => b[2] !== undefined).length }, 'replication batch');
        let reply: { t?: string; value?: { gaps?: Record<string, number>; refused?: string[] } } | undefined;
        try {
          if (!peer) throw new Error(`no address for ${to}`);
          reply = (await c.request(peer, { t: 'replicate', page: packPage(page) }, { timeoutMs: 5000 })) as typeof reply;
          if (reply?.t !== 'done') throw new Error(`replica ${to} failed: ${JSON.stringify(reply).slice(0, 200)}`);
        } catch (e) {
          // Put the batch back (newer items for the same users merge in) and wait for the ring
          // to change (a dead replica is replaced) or a short while.
          for (const [u, it] of batch) {
            d.inflight.delete(u);
            if (!replicasOf(u).includes(to)) {
              d.behind.delete(u);
              continue;
            }
            d.behind.add(u);
            const cur = d.items.get(u);
            if (cur) {
              if (cur.backfill === undefined) cur.entries.unshift(...it.entries);
              cur.snap = mergeSnap(it.snap, cur.snap);
              if (it.backfill !== undefined) cur.backfill = Math.min(cur.backfill ?? it.backfill, it.backfill);
              normalize(cur);
            } else {
              d.items.set(u, it);
            }
          }
          // A dead replica fails every batch until the ring drops it: say so once a while.
          const now = Date.now();
          if (now - d.warned > WARN_EVERY_MS) {
            d.warned = now;
            log.warn({ to, users: batch.length, entries: page.entries.length, err: (e as Error).message }, 'replication batch failed; retrying');
          }
          await c.ringChange(300);
          prune(to, d);
          continue;
        }
        const gaps = reply.value?.gaps ?? {};
        const refused = new Set(reply.value?.refused ?? []);
        c.onBatch?.(to, page.entries.length, page.users.length);
        for (const [u, it, partial, rest] of batch) {
          d.inflight.delete(u);
          if (gaps[u] !== undefined) {
            d.behind.add(u);
            enqueue(to, u, [], store.snapshot(u), gaps[u]);
            continue;
          }
          if (refused.has(u)) {
            // Our rings disagree on who is home or replica: try again once they settle.
            later(to, d, u, it.entries, it.snap, it.backfill);
            continue;
          }
          if (partial !== undefined) {
            // The replica now has everything up to `partial`: the rest of the backfill next.
            enqueue(to, u, [], it.snap, partial, true);
            continue;
          }
          if (rest) {
            // The first part of a large snapshot is in: the next part goes in the next batch.
            enqueue(to, u, [], rest, undefined, true);
            continue;
          }
          d.behind.delete(u);
          d.urgent.delete(u);
          d.version.set(u, Math.max(d.version.get(u) ?? 0, it.version));
          settle(u);
        }
      }
    } finally {
      d.busy = false;
    }
  }

  return {
    committed(entries, changed) {
      type Touched = { entries: ExportedEntry[]; convs: Set<string>; devices: Set<string>; outbox: NonNullable<UserSnapshot['outbox']>; cleared: NonNullable<UserSnapshot['cleared']> };
      const byUser = new Map<string, Touched>();
      const of = (u: string) => {
        let x = byUser.get(u);
        if (!x) byUser.set(u, (x = { entries: [], convs: new Set(), devices: new Set(), outbox: [], cleared: [] }));
        return x;
      };
      for (const e of entries) of(e.user).entries.push(e);
      for (const u of changed.users) of(u);
      for (const [u, conv] of changed.convs) of(u).convs.add(conv);
      for (const [u, dev] of changed.cursors) of(u).devices.add(dev);
      // Outbox rows travel with the sender's entry (same commit, same item), and so do their
      // clearings: the replica that becomes home hands over what the old home could not.
      for (const o of changed.outbox) of(o.user).outbox.push(o.row);
      for (const k of changed.cleared) of(k.user).cleared.push({ mid: k.mid, dest: k.dest });
      for (const [u, x] of byUser) {
        const to = replicasOf(u);
        if (to.length === 0) continue;
        const snap = store.snapshot(u, [...x.convs], [...x.devices]);
        if (snap && x.outbox.length) snap.outbox = x.outbox;
        if (snap && x.cleared.length) snap.cleared = x.cleared;
        for (const r of to) enqueue(r, u, x.entries, snap);
      }
    },

    wait(user) {
      // A node that stopped being the user's home while the write was in flight must not
      // confirm it: the new home may not have it. The client retries (same cid) there.
      const no = unconfirmable(user);
      if (no) return Promise.reject(new UnavailableError(no));
      const to = replicasOf(user);
      if (to.length === 0) return Promise.resolve();
      const required = new Map(to.map((r) => {
        const d = dests.get(r);
        return [r, Math.max(d?.items.get(user)?.version ?? 0, d?.inflight.get(user) ?? 0)];
      }));
      if (to.every((r) => (dests.get(r)?.version.get(user) ?? 0) >= required.get(r)!)) return Promise.resolve();
      for (const r of to) {
        const d = dest(r);
        if (!d.urgent.has(user)) d.urgent.set(user, Date.now());
      }
      return new Promise((resolve, reject) => {
        const w: Waiter = {
          user, required, resolve, reject,
          timer: setTimeout(() => {
            forget(w);
            reject(new UnavailableError(`the replicas of ${user} did not confirm in time`));
          }, deadlineMs),
        };
        let ws = waiters.get(user);
        if (!ws) waiters.set(user, (ws = new Set()));
        ws.add(w);
      });
    },

    async apply(fromName, page) {
      const ring = c.ring();
      const refused: string[] = [];
      // Without the lease this node may be on the minority side, where the sender's writes must
      // not be confirmed: every user is refused (the home asks again).
      const leased = lease();
      const ok = (u: string) => {
        const owners = ring.owners(u, ring.replicas);
        return leased && c.joined() && owners[0] === fromName && owners.includes(self);
      };
      const p: ExportPage = { users: page.users.filter((s) => ok(s.user)), entries: page.entries.filter((e) => ok(e.user)) };
      for (const u of new Set([...page.users.map((s) => s.user), ...page.entries.map((e) => e.user)])) if (!ok(u)) refused.push(u);
      // Every user of the batch is answered: imported, refused, or a gap to backfill from.
      const gaps: Record<string, number> = {};
      const stale: string[] = [];
      const rejected = await store.importEach(p);
      for (const [u, err] of rejected) {
        if (err.name === 'ConflictError') stale.push(u);
        else gaps[u] = store.userSeqs((x) => x === u).get(u) ?? 0;
      }
      // An import with the home's snapshot leaves this copy whole up to it: complete from now on.
      for (const s of p.users) if (!rejected.has(s.user)) c.onFilled?.(s.user);
      if (stale.length) {
        // What this replica held for them is stale (from before a restart): take the home's copy from scratch.
        log.warn({ from: fromName, users: stale.length }, 'replica: replacing stale copies');
        await store.dropUsers(stale);
        for (const u of stale) {
          gaps[u] = 0;
          // Writes this node made as their home and never confirmed are gone with the stale
          // copy: they must not be confirmed later, when its seqs hold other messages.
          for (const w of [...(waiters.get(u) ?? [])]) {
            forget(w);
            clearTimeout(w.timer);
            w.reject(new UnavailableError(`${u}: this write was replaced by the home's copy`));
          }
        }
      }
      return { t: 'done', value: { gaps, refused } };
    },

    ringChanged() {
      const ring = c.ring();
      for (const [name, d] of dests) prune(name, d);
      // Only complete copies: a partial one (the last holders of the user died) would pass for whole.
      for (const [u] of store.userSeqs((x) => ring.owner(x) === self && complete(x))) {
        const to = replicasOf(u);
        if (to.length === 0) continue;
        const snap = store.snapshot(u);
        for (const r of to) {
          dest(r).behind.add(u);
          enqueue(r, u, [], snap);
        }
      }
      for (const u of [...waiters.keys()]) settle(u);
    },

    pending: () => [...dests.values()].reduce((n, d) => n + d.items.size + d.inflight.size + d.deferred, 0),

    behind: () => [...dests.values()].reduce((n, d) => n + d.behind.size, 0),

    progress() {
      const out: Record<string, ReplicaProgress> = {};
      for (const [name, d] of dests) {
        if (d.items.size + d.inflight.size + d.deferred + d.behind.size > 0) {
          out[name] = { queued: d.items.size, inflight: d.inflight.size, deferred: d.deferred, behind: d.behind.size };
        }
      }
      return out;
    },
  };
}
