// Leaver side of a graceful leave: push every user this node owns or replicates to the nodes that
// hold it in the ring without this node, in bulk while serving, then the tails; and the receiver
// side, which imports each pushed page.
import { createRing } from '../ring/index.ts';
import type { Ring } from '../ring/index.ts';
import type { ExportPage } from '../store/index.ts';
import { MAX_PROOFS, parsePeerReply } from '../protocol/peer.ts';
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
  await leave.proveHeld();
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

/** Receiver side: what this node holds of `users`, as [user, committed seq, digest of the mids up
 * to it] for each it holds entries of. */
export async function holding(env: HandoffEnv, users: string[]): Promise<PeerReply> {
  const want = new Set(users);
  const seqs = [...env.c.store.userSeqs((u) => want.has(u))].filter(([, seq]) => seq > 0);
  const digests = await env.c.store.prefixDigests(seqs);
  return { t: 'done', value: seqs.filter(([u]) => digests.has(u)).map(([u, seq]) => [u, seq, digests.get(u)!]) };
}

const isClaim = (x: unknown): x is [string, number, string] =>
  Array.isArray(x) && x.length === 3 && typeof x[0] === 'string' && Number.isSafeInteger(x[1]) && (x[1] as number) > 0 && typeof x[2] === 'string';

/** One leave: where each user goes, and how far each user's entries were pushed. */
class Leave {
  /** The highest seq pushed per user: a later pass pushes only what came after. */
  readonly sent: Record<string, number> = {};
  /** Per destination and user: the seq up to which that node's copy is this node's (a digest of
   * the mids says so); what goes there starts after it. */
  readonly #held = new Map<string, Map<string, number>>();
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

  /**
   * The owned users whose next home holds a copy already (their replica now, which a leave
   * promotes): asks that node what it holds and keeps each seq whose digest is this node's too,
   * so the bulk pass sends it only what follows instead of the whole timeline again. A node that
   * cannot answer proves nothing: its users are pushed whole, as before.
   */
  async proveHeld(): Promise<void> {
    const { store, request, peerOf, log } = this.#env.c;
    const byDest = new Map<string, string[]>();
    for (const [u] of store.userSeqs(this.owned)) {
      const next = this.#future.owner(u)!;
      if (!this.#current.owners(u, this.#current.replicas).includes(next)) continue;
      const l = byDest.get(next);
      if (l) l.push(u);
      else byDest.set(next, [u]);
    }
    let users = 0;
    let entries = 0;
    for (const [dest, asked] of byDest) {
      const peer = peerOf(dest);
      const held = new Map<string, number>();
      this.#held.set(dest, held);
      for (let i = 0; peer && i < asked.length; i += MAX_PROOFS) {
        const part = new Set(asked.slice(i, i + MAX_PROOFS));
        try {
          const r = parsePeerReply(await request(peer, { t: 'holding', users: [...part] }, { timeoutMs: PAGE_TIMEOUT_MS }));
          if (r.t !== 'done' || !Array.isArray(r.value)) throw new Error(r.t === 'fail' ? r.message : 'a malformed answer');
          const claims = r.value.filter(isClaim).filter(([u]) => part.has(u));
          const mine = await store.prefixDigests(claims.map(([u, seq]): [string, number] => [u, seq]));
          for (const [u, seq, d] of claims) if (mine.get(u) === d) held.set(u, seq);
        } catch (e) {
          log.warn({ dest, err: (e as Error).message }, 'leave: could not learn what the next home holds; pushing it whole');
          break;
        }
      }
      users += held.size;
      for (const seq of held.values()) entries += seq;
    }
    if (byDest.size) log.info({ users, entries }, 'leave: the next homes hold these users up to a proven seq; only what follows goes to them');
  }

  /** Pushes the selected users' data after `after`, page by page, each page to every node it goes
   * to (there, after the seq that node is proven to hold). */
  async push(select: (u: string) => boolean, after: Record<string, number>): Promise<void> {
    for await (const page of this.#env.c.store.exportUsers(select, { after, pageRows: PAGE_ROWS })) {
      const byDest = new Map<string, ExportPage>();
      const to = (d: string): ExportPage => {
        let p = byDest.get(d);
        if (!p) byDest.set(d, (p = { users: [], entries: [] }));
        return p;
      };
      for (const e of page.entries) for (const d of this.dests(e.user)) if (e.seq > (this.#held.get(d)?.get(e.user) ?? 0)) to(d).entries.push(e);
      for (const snap of page.users) for (const d of this.dests(snap.user)) to(d).users.push(snap);
      await Promise.all([...byDest].map(([dest, whole]) => this.#deliver(dest, whole)));
      for (const e of page.entries) this.sent[e.user] = Math.max(this.sent[e.user] ?? 0, e.seq);
      this.users += page.users.length;
      this.entries += page.entries.length;
      this.#env.progress.moved(page.entries.length, page.users.length);
    }
  }

  /**
   * Sends one page; a page refused is followed by its users' whole data. A receiver whose copy of
   * one of a page's users conflicts drops what it held of every user of the page (absorb), and
   * then needs them from seq 1: a user whose first entries came in an earlier page, or one cut
   * short by a proof its copy did not bear out after all (a replica takes only its home's writes,
   * so it should not happen).
   */
  async #deliver(dest: string, p: ExportPage): Promise<void> {
    try {
      await this.#send(dest, p);
    } catch (e) {
      const users = new Set([...p.users.map((s) => s.user), ...p.entries.map((x) => x.user)]);
      for (const u of users) this.#held.get(dest)?.delete(u);
      this.#env.c.log.warn({ dest, users: users.size, err: (e as Error).message }, 'leave: a page was refused; pushing its users to that node whole');
      for await (const page of this.#env.c.store.exportUsers((u) => users.has(u), { pageRows: PAGE_ROWS })) await this.#send(dest, page);
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
