// Join handoff, copy then switch: before a newcomer joins, it copies from every member the users
// it will own in the ring that includes it (while those members keep serving), then asks them to
// freeze those users and copies the tail, and only then joins, so the ring switches to a node
// that already holds everything. The members release the freeze and drop the moved users once
// their ring includes the newcomer.
import type { Logger } from 'pino';
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { ExportPage, Store } from '../store/index.ts';
import { entryWireChars, PEER_BUDGET_CHARS, validatePage } from '../protocol/peer.ts';
import type { Page, PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { Home } from '../home/home.ts';

export type HandoffComponents = {
  self: string;
  store: Store;
  home: Home;
  ring: () => Ring;
  request: (peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }) => Promise<unknown>;
  peerOf: (name: string) => string | undefined;
  maxBody: number;
  log: Logger;
  vnodes: number;
  replicas: number;
  onProgress?: (entries: number, users: number) => void;
  /** Whether this node's copy of a key is complete (see custody): only those are handed to a
   * newcomer, so a rejoining node never trades its own copy for a partial one. */
  complete?: (key: string) => boolean;
};

export type Handoff = {
  /** Newcomer side: copy what this node will own from the members of `table`, then freeze-copy the tail. */
  /** `inPlace`: this node restarted before anyone declared it dead; it takes no key from anyone,
   * so a member that cannot be reached is skipped (its keys wait for it anyway). */
  acquire(members: { name: string; peer: string }[], inPlace?: boolean): Promise<{ users: number; entries: number; ms: number }>;
  /** Member side: one page of the users `req.target` will own. */
  serve(req: Extract<PeerRequest, { t: 'handoff' }>): Promise<PeerReply>;
  /** Member side: the ring changed; release freezes whose newcomer is in it and drop what moved. */
  ringChanged(ring: Ring): Promise<void>;
  /** Leaver side: push every user this node owns or replicates to the nodes that hold it in the
   * ring without this node, in bulk while serving; then the tail of the owned ones with their
   * writes paused (until exit); then `announce` (the leave gossip); then the tail of the
   * replicated ones, final once the others stopped writing to this node. */
  release(announce: () => Promise<void>): Promise<{ users: number; entries: number; ms: number }>;
  /** Receiver side of release: import one pushed page. */
  absorb(page: Page): Promise<PeerReply>;
  /** Newcomers this node has paused users for and not yet seen in its ring. */
  outgoing(): string[];
  /** This node's own copy in flight (joining or leaving), if any. */
  copying(): CopyProgress | undefined;
};

export type CopyProgress = { kind: 'join' | 'leave'; phase: 'bulk' | 'tail'; users: number; entries: number; ms: number; perSecond: number };

const FREEZE_MS = 10_000;
/** A long copy logs how far it is this often. */
const PROGRESS_LOG_MS = 5000;
const PAGE_ROWS = 2000;
const WINDOW_USERS = 2000;

export function createHandoff(c: HandoffComponents): Handoff {
  const { self, store, log } = c;
  const opts = { vnodes: c.vnodes, replicas: c.replicas };
  // Per newcomer: the freeze and the users handed to it (to drop once the ring includes it).
  const outgoing = new Map<string, { release(): void; select: (u: string) => boolean }>();
  let copy: { kind: CopyProgress['kind']; phase: CopyProgress['phase']; users: number; entries: number; t0: number; logged: number } | undefined;

  function view(): CopyProgress | undefined {
    if (!copy) return undefined;
    const ms = Math.round(performance.now() - copy.t0);
    return { kind: copy.kind, phase: copy.phase, users: copy.users, entries: copy.entries, ms, perSecond: ms > 0 ? Math.round((copy.entries * 1000) / ms) : 0 };
  }

  /** Counts a copied or pushed page; a long copy says how far it is every PROGRESS_LOG_MS. */
  function moved(entries: number, users: number): void {
    c.onProgress?.(entries, users);
    if (!copy) return;
    copy.entries += entries;
    copy.users += users;
    if (performance.now() - copy.logged >= PROGRESS_LOG_MS) {
      copy.logged = performance.now();
      log.info(view(), 'handoff progress');
    }
  }

  async function tracked<T>(kind: CopyProgress['kind'], run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    copy = { kind, phase: 'bulk', users: 0, entries: 0, t0, logged: t0 };
    try {
      return await run();
    } finally {
      copy = undefined;
    }
  }

  /** Windows of user names [from, to] so that no request carries more than WINDOW_USERS seqs. */
  function windows(names: string[]): { from: string; to: string | null }[] {
    const out: { from: string; to: string | null }[] = [];
    let from = '';
    for (let i = WINDOW_USERS; i < names.length; i += WINDOW_USERS) {
      out.push({ from, to: names[i - 1]! });
      from = names[i - 1]!;
    }
    out.push({ from, to: null });
    return out;
  }

  async function importPage(page: ExportPage): Promise<void> {
    try {
      await store.importData(page);
    } catch (e) {
      const name = (e as Error).name;
      if (name !== 'ConflictError' && name !== 'GapError') throw e;
      // What this node held for those users is stale (from before a restart): take the member's.
      const users = [...new Set([...page.users.map((u) => u.user), ...page.entries.map((x) => x.user)])];
      log.warn({ users: users.length, err: (e as Error).message }, 'handoff: replacing stale local data');
      await store.dropUsers(users);
      throw new RetryFromScratch();
    }
  }

  async function pull(member: { name: string; peer: string }, members: string[], freeze: boolean): Promise<{ users: number; entries: number }> {
    const future = createRing(members, opts);
    // Owned or replicated: a newcomer holds everything of every user whose copies it will keep
    // before the ring names it, so no user has fewer than R full copies at the switch.
    const mine = (u: string) => future.owners(u, future.replicas).includes(self);
    let users = 0;
    let entries = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        // The bulk pass copies everything, so that what this node holds from before (a restart)
        // is compared entry by entry and replaced where it diverged; the final pass then needs
        // only what came after the bulk pass.
        const held = freeze ? [...store.userSeqs(mine)].sort((a, b) => (a[0] < b[0] ? -1 : 1)) : [];
        for (const w of freeze ? windows(held.map(([u]) => u)) : [{ from: '', to: null }]) {
          const after = Object.fromEntries(held.filter(([u]) => u > w.from && (w.to === null || u <= w.to)));
          let from = w.from;
          // Inside a snapshot too large for one page: the user and the row its next part starts at.
          let at: { user: string; rows: number } | undefined;
          for (;;) {
            const r = (await c.request(member.peer, {
              t: 'handoff', target: self, members, from, to: w.to, after, freeze, limit: PAGE_ROWS, ...(at ? { at } : {}),
            }, { timeoutMs: 30_000 })) as { t?: string; value?: ExportPage; message?: string };
            if (r.t !== 'done' || !r.value) throw new Error(`${member.name} refused the handoff: ${r.message ?? JSON.stringify(r).slice(0, 200)}`);
            const page = validatePage(r.value, c.maxBody);
            if (page.users.length === 0 && page.entries.length === 0) break;
            await importPage(page);
            users += page.users.length;
            entries += page.entries.length;
            moved(page.entries.length, page.users.length);
            for (const e of page.entries) after[e.user] = Math.max(after[e.user] ?? 0, e.seq);
            const last = page.users.at(-1);
            if (last?.next !== undefined) at = { user: last.user, rows: last.next };
            else if (last) {
              from = last.user;
              at = undefined;
            }
          }
        }
        return { users, entries };
      } catch (e) {
        if (!(e instanceof RetryFromScratch)) throw e;
      }
    }
    throw new Error(`handoff from ${member.name} kept conflicting`);
  }

  return {
    acquire: (members, inPlace = false) => tracked('join', async () => {
      const t0 = performance.now();
      const others = members.filter((m) => m.name !== self);
      if (others.length === 0) return { users: 0, entries: 0, ms: 0 };
      const names = [...new Set([...others.map((m) => m.name), self])].sort();
      let users = 0;
      let entries = 0;
      for (const freeze of [false, true]) {
        if (copy && freeze) copy.phase = 'tail';
        const got = await Promise.all(others.map((m) => pull(m, names, freeze).catch((e: Error) => {
          if (!inPlace) throw e;
          log.warn({ member: m.name, err: e.message }, 'handoff: a member did not answer; skipped (this node restarted in place: no key moves to it)');
          return { users: 0, entries: 0 };
        })));
        for (const g of got) {
          users += g.users;
          entries += g.entries;
        }
        log.info({ freeze, users, entries, ms: Math.round(performance.now() - t0) }, freeze ? 'handoff: final copy done, joining' : 'handoff: bulk copy done, freezing the tail');
      }
      return { users, entries, ms: Math.round(performance.now() - t0) };
    }),

    async serve(req) {
      const current = c.ring();
      if (!current.has(self)) return { t: 'fail', code: 'unavailable', message: `${self} is not in its own ring yet` };
      const future = createRing(req.members, opts);
      // Users this node is home of that the newcomer will hold, as home or as replica; writes
      // pause only for those not already in its hands (a node restarted before anyone declared
      // it dead is still in the ring: no ring change would end that pause).
      const complete = c.complete ?? (() => true);
      const holds = (u: string) => current.owner(u) === self && future.owners(u, future.replicas).includes(req.target) && complete(u);
      const moving = (u: string) => holds(u) && !current.owners(u, current.replicas).includes(req.target);
      const select = (u: string) => (req.at ? u >= req.at.user : u > req.from) && (req.to === null || u <= req.to) && holds(u);
      if (req.freeze) {
        if (!outgoing.has(req.target)) {
          outgoing.set(req.target, { ...c.home.freeze(moving, FREEZE_MS), select: moving });
          log.info({ to: req.target }, 'handoff: writes to the users moving to the newcomer paused');
          setTimeout(() => {
            const o = outgoing.get(req.target);
            if (o?.select === moving) outgoing.delete(req.target);
          }, FREEZE_MS).unref();
        }
        await store.flush();
      }
      // One page is answered: it holds at most `limit` users, so no more states are read.
      for await (const page of store.exportUsers(select, { after: req.after, pageRows: req.limit, maxUsers: req.limit, ...(req.at ? { skip: req.at } : {}) })) {
        return { t: 'done', value: fitPage(page) };
      }
      return { t: 'done', value: { users: [], entries: [] } };
    },

    release: (announce) => tracked('leave', async () => {
      const t0 = performance.now();
      const current = c.ring();
      const rest = current.members.filter((m) => m !== self);
      if (rest.length === 0 || !current.has(self)) {
        await announce();
        return { users: 0, entries: 0, ms: 0 };
      }
      const future = createRing(rest, opts);
      const R = current.replicas;
      const owned = (u: string) => current.owner(u) === self;
      const replicated = (u: string) => !owned(u) && current.owners(u, R).includes(self);
      // Where a user's data goes: its new home if this node was home, and every node that holds
      // it in the ring without this node but did not before (the replacement copy).
      const dests = (u: string): string[] => {
        const before = current.owners(u, R);
        const out = future.owners(u, R).filter((n) => !before.includes(n));
        if (owned(u) && !out.includes(future.owner(u)!)) out.push(future.owner(u)!);
        return out;
      };
      const sent: Record<string, number> = {};
      let users = 0;
      let entries = 0;
      const push = async (select: (u: string) => boolean, after: Record<string, number>) => {
        for await (const page of store.exportUsers(select, { after, pageRows: PAGE_ROWS })) {
          const byDest = new Map<string, ExportPage>();
          const part = (u: string): ExportPage[] => dests(u).map((d) => {
            let p = byDest.get(d);
            if (!p) byDest.set(d, (p = { users: [], entries: [] }));
            return p;
          });
          for (const e of page.entries) for (const p of part(e.user)) p.entries.push(e);
          for (const snap of page.users) for (const p of part(snap.user)) p.users.push(snap);
          await Promise.all([...byDest].map(async ([dest, whole]) => {
            const peer = c.peerOf(dest);
            if (!peer) throw new Error(`no address for ${dest}`);
            // In parts that fit a peer frame, in order: each part continues the one before.
            for (let rest: ExportPage | undefined = whole; rest;) {
              const p: ExportPage = fitPage(rest);
              rest = p === rest ? undefined : { users: rest.users.filter((u) => !p.users.includes(u)), entries: rest.entries.slice(p.entries.length) };
              const r = (await c.request(peer, { t: 'absorb', page: p }, { timeoutMs: 30_000 })) as { t?: string; message?: string };
              if (r.t !== 'done') throw new Error(`${dest} refused the handoff: ${r.message ?? ''}`);
            }
          }));
          for (const e of page.entries) sent[e.user] = Math.max(sent[e.user] ?? 0, e.seq);
          users += page.users.length;
          entries += page.entries.length;
          moved(page.entries.length, page.users.length);
        }
      };
      const held = (u: string) => owned(u) || replicated(u);
      await push(held, {});
      log.info({ users, entries, ms: Math.round(performance.now() - t0) }, 'leave: bulk copy done, pausing writes for the tail');
      if (copy) copy.phase = 'tail';
      c.home.freeze(owned, 60_000);
      await store.flush();
      await push(owned, { ...sent });
      // Replicated users are written by their homes until the ring drops this node: once the
      // leave is announced this node refuses their writes, so what it holds is final; push the
      // rest of it, so every write it acknowledged is on the replacement copy too.
      await announce();
      await store.flush();
      await push(replicated, { ...sent });
      const r = { users, entries, ms: Math.round(performance.now() - t0) };
      log.info(r, 'leave: every user this node owned or replicated is now with its next holders');
      return r;
    }),

    outgoing: () => [...outgoing.keys()],
    copying: view,

    async absorb(page) {
      for (let attempt = 0; ; attempt++) {
        try {
          await importPage(page);
          return { t: 'done' };
        } catch (e) {
          if (!(e instanceof RetryFromScratch) || attempt > 0) throw e;
        }
      }
    },

    async ringChanged(ring) {
      for (const [target, o] of outgoing) {
        if (!ring.has(target)) continue;
        outgoing.delete(target);
        o.release();
        // Drop only what this node neither owns nor replicates in the new ring.
        const moved = [...store.userSeqs(o.select)].map(([u]) => u).filter((u) => !ring.owners(u, ring.replicas).includes(self));
        if (moved.length === 0) continue;
        try {
          const n = await store.dropUsers(moved);
          log.info({ to: target, users: moved.length, entries: n }, 'handoff: users now homed on the newcomer dropped here');
        } catch (e) {
          log.warn({ to: target, err: (e as Error).message }, 'handoff: could not drop moved users yet');
        }
      }
    },
  };
}

/**
 * The part of an export page (entries ordered by user and seq, snapshots by user) that fits
 * PEER_BUDGET_CHARS (its message must fit a peer frame): a prefix of the entries (at least one), and the snapshots of the users whose
 * entries in the page are all in it. The page itself when it fits. What is left out comes with
 * the next request (the copier asks again from the last snapshot it got, after the seqs it has).
 */
export function fitPage(page: ExportPage): ExportPage {
  let chars = 0;
  let n = 0;
  for (; n < page.entries.length; n++) {
    chars += entryWireChars(page.entries[n]!.body);
    if (n > 0 && chars > PEER_BUDGET_CHARS) break;
  }
  if (n === page.entries.length) return page;
  const cut = page.entries[n - 1]!.user;
  const cutComplete = page.entries[n]!.user !== cut;
  return { users: page.users.filter((s) => s.user < cut || (s.user === cut && cutComplete)), entries: page.entries.slice(0, n) };
}

class RetryFromScratch extends Error {
  override name = 'RetryFromScratch';
}
