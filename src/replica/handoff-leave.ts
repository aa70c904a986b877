// Leaver side of a graceful leave: push every user this node owns or replicates to the nodes that
// hold it in the ring without this node, in bulk while serving, then the tails; and the receiver
// side, which imports each pushed page.
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { ExportPage } from '../store/index.ts';
import { parsePeerReply } from '../protocol/peer.ts';
import type { Page, PeerReply } from '../protocol/peer.ts';
import { fitPage } from './fit-page.ts';
import { importPage, PAGE_ROWS, PAGE_TIMEOUT_MS, RetryFromScratch } from './handoff-copy.ts';
import type { HandoffEnv } from './handoff-copy.ts';

/** How long the owned users' writes stay paused for the tail: until this node exits. */
const LEAVE_FREEZE_MS = 60_000;

type Copied = { users: number; entries: number; ms: number };

/** The leave itself: bulk, then the owned users' tail with their writes paused, then `announce`
 * (the leave gossip), then the replicated users' tail. It runs while the node stops, so it does
 * not take the stop signal: it is how the node's data gets out before it goes. */
export async function release(env: HandoffEnv, announce: () => Promise<void>): Promise<Copied> {
  const { self, store, log, home } = env.c;
  const t0 = performance.now();
  const current = env.c.ring();
  const rest = current.members.filter((m) => m !== self);
  if (rest.length === 0 || !current.has(self)) {
    await announce();
    return { users: 0, entries: 0, ms: 0 };
  }
  const leave = new Leave(env, current, createRing(rest, env.opts));
  await leave.push((u) => leave.owned(u) || leave.replicated(u), {});
  log.info({ users: leave.users, entries: leave.entries, ms: Math.round(performance.now() - t0) }, 'leave: bulk copy done, pausing writes for the tail');
  env.progress.tail();
  home.freeze(leave.owned, LEAVE_FREEZE_MS);
  await store.flush();
  await leave.push(leave.owned, { ...leave.sent });
  // Replicated users are written by their homes until the ring drops this node: once the
  // leave is announced this node refuses their writes, so what it holds is final; push the
  // rest of it, so every write it acknowledged is on the replacement copy too.
  await announce();
  await store.flush();
  await leave.push(leave.replicated, { ...leave.sent });
  const r = { users: leave.users, entries: leave.entries, ms: Math.round(performance.now() - t0) };
  log.info(r, 'leave: every user this node owned or replicated is now with its next holders');
  return r;
}

/** Receiver side of release: import one pushed page (once more after replacing a stale copy). */
export async function absorb(env: HandoffEnv, page: Page): Promise<PeerReply> {
  for (let attempt = 0; ; attempt++) {
    try {
      await importPage(env, page);
      return { t: 'done' };
    } catch (e) {
      if (!(e instanceof RetryFromScratch) || attempt > 0) throw e;
    }
  }
}

/** One leave: where each user goes, and how far each user's entries were pushed. */
class Leave {
  /** The highest seq pushed per user: a later pass pushes only what came after. */
  readonly sent: Record<string, number> = {};
  users = 0;
  entries = 0;
  readonly #env: HandoffEnv;
  readonly #current: Ring;
  readonly #future: Ring;

  constructor(env: HandoffEnv, current: Ring, future: Ring) {
    this.#env = env;
    this.#current = current;
    this.#future = future;
  }

  readonly owned = (u: string): boolean => this.#current.owner(u) === this.#env.c.self;
  readonly replicated = (u: string): boolean => !this.owned(u) && this.#current.owners(u, this.#current.replicas).includes(this.#env.c.self);

  /** Where a user's data goes: its new home if this node was home, and every node that holds
   * it in the ring without this node but did not before (the replacement copy). */
  dests(u: string): string[] {
    const R = this.#current.replicas;
    const before = this.#current.owners(u, R);
    const out = this.#future.owners(u, R).filter((n) => !before.includes(n));
    if (this.owned(u) && !out.includes(this.#future.owner(u)!)) out.push(this.#future.owner(u)!);
    return out;
  }

  /** Pushes the selected users' data after `after`, page by page, each page to every node it goes to. */
  async push(select: (u: string) => boolean, after: Record<string, number>): Promise<void> {
    for await (const page of this.#env.c.store.exportUsers(select, { after, pageRows: PAGE_ROWS })) {
      const byDest = new Map<string, ExportPage>();
      const part = (u: string): ExportPage[] => this.dests(u).map((d) => {
        let p = byDest.get(d);
        if (!p) byDest.set(d, (p = { users: [], entries: [] }));
        return p;
      });
      for (const e of page.entries) for (const p of part(e.user)) p.entries.push(e);
      for (const snap of page.users) for (const p of part(snap.user)) p.users.push(snap);
      await Promise.all([...byDest].map(([dest, whole]) => this.#send(dest, whole)));
      for (const e of page.entries) this.sent[e.user] = Math.max(this.sent[e.user] ?? 0, e.seq);
      this.users += page.users.length;
      this.entries += page.entries.length;
      this.#env.progress.moved(page.entries.length, page.users.length);
    }
  }

  async #send(dest: string, whole: ExportPage): Promise<void> {
    const { peerOf, request } = this.#env.c;
    const peer = peerOf(dest);
    if (!peer) throw new Error(`no address for ${dest}`);
    // In parts that fit a peer frame, in order: each part continues the one before.
    for (let rest: ExportPage | undefined = whole; rest;) {
      const p: ExportPage = fitPage(rest);
      rest = p === rest ? undefined : { users: rest.users.filter((u) => !p.users.includes(u)), entries: rest.entries.slice(p.entries.length) };
      const r = parsePeerReply(await request(peer, { t: 'absorb', page: p }, { timeoutMs: PAGE_TIMEOUT_MS }));
      if (r.t === 'fail') throw new Error(`${dest} refused the handoff: ${r.message}`);
    }
  }
}
