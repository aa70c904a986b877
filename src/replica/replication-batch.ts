// One replication batch for one replica: whole users in queue order (those a client write waits
// for first), up to a size the peer frame takes with room to spare. A long backfill goes part by
// part from the store and a large snapshot in parts, the rest queued again after each part.
import { cutSnapshot, snapshotChars, snapshotRows } from '../store/index.ts';
import type { ExportedEntry, ExportPage, Store, UserSnapshot } from '../store/index.ts';
import type { Item } from './replication-items.ts';
import type { QueueEnv, ReplicaQueue } from './replica-queue.ts';

const BATCH_USERS = 5000;
/** Estimated JSON characters of one batch: far below the peer frame limit (4 MiB). */
const BATCH_CHARS = 1 << 20;
/** Rows per store page of a backfill: 100 bodies of 16 KiB, escaped, still fit a frame. */
const BACKFILL_PAGE_ROWS = 100;

const entryChars = (e: ExportedEntry): number => 256 + 2 * e.body.length;
/** Another copy of a message already in the batch: packed, it carries no body (packPage). */
const COPY_CHARS = 192;

/** One user in a batch: its item, how far a partial backfill got, and the rest of a snapshot sent in parts. */
export type Sent = { user: string; item: Item; partial: number | undefined; rest: UserSnapshot | undefined };
export type Batch = { sent: Sent[]; page: ExportPage; chars: number };

/** Takes the next batch off the queue: its users move from queued to on the wire. */
export async function takeBatch(q: ReplicaQueue, env: QueueEnv): Promise<Batch> {
  const b: Batch = { sent: [], page: { users: [], entries: [] }, chars: 0 };
  const mids = new Set<string>();
  for (const u of order(q, env)) {
    // Gone since `order` was taken: a backfill export awaited, and a ring change pruned it.
    const it = q.items.get(u);
    if (!it) continue;
    if (b.sent.length >= BATCH_USERS || (b.sent.length > 0 && b.chars >= BATCH_CHARS)) break;
    q.items.delete(u);
    q.inflight.set(u, it.version);
    let partial: number | undefined;
    if (it.backfill !== undefined) {
      const got = await addBackfill(q, env, b, u, it.backfill);
      if (!got) continue;
      partial = got.partial;
    } else {
      b.page.entries.push(...it.entries);
      for (const e of it.entries) {
        b.chars += mids.has(e.mid) ? COPY_CHARS : entryChars(e);
        mids.add(e.mid);
      }
    }
    const rest = it.snap && partial === undefined ? addSnapshot(b, it.snap) : undefined;
    b.sent.push({ user: u, item: it, partial, rest });
  }
  return b;
}

/** Queue order with the users a client write waits for first; those that waited past the
 * deadline stop going first. */
function order(q: ReplicaQueue, env: QueueEnv): string[] {
  const now = env.clock.now();
  for (const [u, since] of q.urgent) {
    if (now - since <= env.deadlineMs) continue;
    q.urgent.delete(u);
    env.c.onUrgentExpired?.();
    env.c.log.warn({ to: q.to, user: u }, 'replication of a user waited for past the deadline; it no longer goes first');
  }
  const first = [...q.urgent.keys()].filter((u) => q.items.has(u));
  return first.length ? [...first, ...[...q.items.keys()].filter((u) => !q.urgent.has(u))] : [...q.items.keys()];
}

/** Adds the next part of a backfill to the batch: `partial` is how far it got when it did not
 * reach the end; undefined when the store could not be read (the user is asked again later). */
async function addBackfill(q: ReplicaQueue, env: QueueEnv, b: Batch, u: string, backfill: number): Promise<{ partial: number | undefined } | undefined> {
  // From one entry before what the replica has: if its copy diverged (stale data from
  // before a restart), the import conflicts on that entry and it starts afresh.
  let part: Awaited<ReturnType<typeof backfillPart>>;
  try {
    part = await backfillPart(env.c.store, u, Math.max(0, backfill - 1), BATCH_CHARS - b.chars);
  } catch (e) {
    // The user was dropped or moved during the export: it goes again on the next round
    // if this node still replicates it to `to`.
    env.c.log.warn({ to: q.to, user: u, err: (e as Error).message }, 'replication backfill could not be read; retrying');
    q.inflight.delete(u);
    q.later(u, [], undefined, backfill);
    return undefined;
  }
  b.page.entries.push(...part.page.entries);
  b.page.users.push(...part.page.users);
  b.chars += part.chars;
  return { partial: part.done ? undefined : part.last };
}

/** Adds the user's snapshot, or its first part when it is too large for what is left of the
 * batch (one part per batch); returns the rest. */
function addSnapshot(b: Batch, snap: UserSnapshot): UserSnapshot | undefined {
  const { part, end } = cutSnapshot(snap, 0, Math.max(BATCH_CHARS - b.chars, BATCH_CHARS / 4), Infinity);
  const rest = end < snapshotRows(snap) ? cutSnapshot(snap, end, Infinity, Infinity).part : undefined;
  b.page.users.push(part);
  b.chars += snapshotChars(part);
  return rest;
}

/** Part of what a backfilled user needs, everything after what the replica said it has, about
 * `budget` characters of it or one store page at least; `done` when it reached the end. The
 * export's snapshot is left out: the item's own snapshot (the whole state after a gap, or
 * every change since the item was queued) goes with the last part, in parts if it is large. */
async function backfillPart(store: Store, user: string, after: number, budget: number): Promise<{ page: ExportPage; chars: number; done: boolean; last: number }> {
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
