// Newcomer side of a join: copy from every member what this node will hold in the ring that
// includes it (a bulk pass while the members keep serving), then ask them to freeze those users
// and copy the tail, and only then join.
import { createRing } from '../ring/index.ts';
import { parsePeerReply, validatePage } from '../protocol/peer.ts';
import { importPage, PAGE_ROWS, PAGE_TIMEOUT_MS, RetryFromScratch } from './handoff-copy.ts';
import type { HandoffEnv } from './handoff-copy.ts';

type Member = { name: string; peer: string };

const WINDOW_USERS = 2000;

/** `inPlace`: this node restarted before anyone declared it dead; it takes no key from anyone,
 * so a member that cannot be reached is skipped (its keys wait for it anyway). */
export async function acquire(env: HandoffEnv, members: Member[], inPlace: boolean): Promise<{ users: number; entries: number; ms: number }> {
  const { self, log } = env.c;
  const t0 = performance.now();
  const others = members.filter((m) => m.name !== self);
  if (others.length === 0) return { users: 0, entries: 0, ms: 0 };
  const names = [...new Set([...others.map((m) => m.name), self])].sort();
  let users = 0;
  let entries = 0;
  // Per user, the seq up to which this node's copy was found equal to a member's (see `pull`).
  const verified = new Map<string, number>();
  for (const freeze of [false, true]) {
    if (freeze) env.progress.tail();
    const got = await Promise.all(others.map((m) => pull(env, m, names, freeze, verified, inPlace).catch((e: Error) => {
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
}

/** Copies from one member, starting again (at most 3 times) when this node's old copy conflicted.
 * `verified` carries, from the bulk pass to the final one, the seq up to which this node's copy
 * of each user is the member's. */
async function pull(
  env: HandoffEnv, member: Member, members: string[], freeze: boolean, verified: Map<string, number>, inPlace: boolean,
): Promise<{ users: number; entries: number }> {
  const { self, store } = env.c;
  const future = createRing(members, env.opts);
  // Owned or replicated: a newcomer holds everything of every user whose copies it will keep
  // before the ring names it, so no user has fewer than R full copies at the switch.
  const mine = (u: string) => future.owners(u, future.replicas).includes(self);
  const n = { users: 0, entries: 0 };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // The bulk pass copies everything this node cannot prove it holds already: what it holds
      // from before (a restart) is kept only for the users whose home finds the same timeline
      // up to the same seq (a digest of the mids: `proven`), and copied after that seq; the
      // rest is copied whole, compared entry by entry and replaced where it diverged. The final
      // pass then needs only what came after the bulk pass: after the seq the bulk pass
      // verified, not after what this node holds. A node that rejoins after it was declared
      // dead may hold writes it made cut off and never confirmed, past the member's copy at the
      // bulk pass; the member, home meanwhile, may have confirmed other messages at those seqs
      // since. Copied after this node's own seq, those were never compared, and the stale ones
      // stayed while the confirmed ones were lost (seen in the randomized partition schedule,
      // seed 22, under load); the digest is what compares them now.
      const held = freeze
        ? [...store.userSeqs(mine)].map(([u, seq]): [string, number] => [u, Math.min(seq, verified.get(u) ?? 0)]).sort((a, b) => (a[0] < b[0] ? -1 : 1))
        : await proven(env, member, members, mine, verified, !inPlace);
      for (const w of windows(held.map(([u]) => u))) {
        const after = Object.fromEntries(held.filter(([u]) => u > w.from && (w.to === null || u <= w.to)));
        await pullWindow(env, member, members, freeze, w, after, n, verified, inPlace);
      }
      return n;
    } catch (e) {
      if (!(e instanceof RetryFromScratch)) throw e;
    }
  }
  throw new Error(`handoff from ${member.name} kept conflicting`);
}

/**
 * The users this node holds and will hold whose home, `member`, finds the same timeline up to
 * the same seq (store.prefixDigests), with that seq, sorted by name; `verified` learns them. A
 * member that cannot answer proves nothing: those users are copied whole, as before.
 */
async function proven(
  env: HandoffEnv, member: Member, members: string[], mine: (u: string) => boolean, verified: Map<string, number>, drop: boolean,
): Promise<Array<[string, number]>> {
  const { self, store, request, log } = env.c;
  const kept = [...store.userSeqs(mine)].filter(([, seq]) => seq > 0).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const out: Array<[string, number]> = [];
  const differ: string[] = [];
  let entries = 0;
  for (let i = 0; i < kept.length; i += WINDOW_USERS) {
    const part = kept.slice(i, i + WINDOW_USERS);
    const digests = await store.prefixDigests(part);
    const prove = part.filter(([u]) => digests.has(u)).map(([u, seq]): [string, number, string] => [u, seq, digests.get(u)!]);
    if (prove.length === 0) continue;
    let ok: Set<string>;
    try {
      const r = parsePeerReply(await request(member.peer, {
        t: 'handoff', target: self, members, from: '', to: null, after: {}, freeze: false, limit: 1, prove,
      }, { timeoutMs: PAGE_TIMEOUT_MS }));
      const a = r.t === 'done' ? proofAnswer(r.value) : undefined;
      if (!a) throw new Error(r.t === 'fail' ? r.message : 'a malformed answer');
      ok = a.same;
      const asked = new Set(prove.map(([u]) => u));
      differ.push(...a.differ.filter((u) => asked.has(u) && !ok.has(u)));
    } catch (e) {
      log.warn({ member: member.name, err: (e as Error).message }, 'handoff: could not prove what this node holds; copying it whole');
      break;
    }
    for (const [u, seq] of part) {
      if (!ok.has(u)) continue;
      out.push([u, seq]);
      entries += seq;
      verified.set(u, Math.max(verified.get(u) ?? 0, seq));
    }
  }
  if (kept.length) log.info({ member: member.name, held: kept.length, proven: out.length, entries }, 'handoff: what this node held, proven by its home, is kept; only what follows is copied');
  // What the home says differs is replaced by its copy in any case: dropped now, it is copied
  // whole, instead of meeting a conflict in the middle of the copy, which starts it over.
  if (drop && differ.length) {
    try {
      const n = await store.dropUsers(differ);
      log.info({ member: member.name, users: differ.length, entries: n }, 'handoff: what this node held of these users differs from their home\'s: dropped, to be copied whole');
    } catch (e) {
      log.warn({ member: member.name, err: (e as Error).message }, 'handoff: could not drop what differs; the copy replaces it where it conflicts');
    }
  }
  return out;
}

/** A proof's answer: `{ same, differ }`, or from a node of before 2026-12-03 the `same` list alone. */
function proofAnswer(v: unknown): { same: Set<string>; differ: string[] } | undefined {
  const str = (x: unknown[]) => x.filter((u): u is string => typeof u === 'string');
  if (Array.isArray(v)) return { same: new Set(str(v)), differ: [] };
  if (v === null || typeof v !== 'object') return undefined;
  const { same, differ } = v as { same?: unknown; differ?: unknown };
  if (!Array.isArray(same)) return undefined;
  return { same: new Set(str(same)), differ: Array.isArray(differ) ? str(differ) : [] };
}

/** Copies one window of users page by page, until the member has nothing more for it. */
async function pullWindow(
  env: HandoffEnv, member: Member, members: string[], freeze: boolean,
  w: { from: string; to: string | null }, after: Record<string, number>, n: { users: number; entries: number },
  verified: Map<string, number>, inPlace: boolean,
): Promise<void> {
  const { self, request, maxBody } = env.c;
  let from = w.from;
  // Inside a snapshot too large for one page: the user and the row its next part starts at.
  let at: { user: string; rows: number } | undefined;
  const ask = () => request(member.peer, {
    t: 'handoff', target: self, members, from, to: w.to, after, freeze, limit: PAGE_ROWS, ...(at ? { at } : {}),
  }, { timeoutMs: PAGE_TIMEOUT_MS });
  let next = ask();
  for (;;) {
    const r = parsePeerReply(await next);
    if (r.t !== 'done' || !r.value) throw new Error(`${member.name} refused the handoff: ${r.t === 'fail' ? r.message : JSON.stringify(r).slice(0, 200)}`);
    const page = validatePage(r.value, maxBody);
    if (page.users.length === 0 && page.entries.length === 0) return;
    // Where the next page starts depends only on this one: it is asked for now, so the member
    // reads and sends it while this node imports this one (at most two pages per member here).
    for (const e of page.entries) after[e.user] = Math.max(after[e.user] ?? 0, e.seq);
    const last = page.users.at(-1);
    if (last?.next !== undefined) at = { user: last.user, rows: last.next };
    else if (last) {
      from = last.user;
      at = undefined;
    }
    next = ask();
    // Awaited on the next turn; if this import fails first, its rejection is not left unhandled.
    next.catch(() => undefined);
    // Unless this node restarted in place (still a member: its users' homes may be writing to it
    // as their replica meanwhile), nothing of a user it is copying can be newer here than at
    // the member, its home: a longer timeline here is a tail this node wrote while cut off and
    // nobody confirmed. The member's copy wins, as on a contradiction.
    await importPage(env, page, { noneAhead: !inPlace });
    for (const u of page.users) verified.set(u.user, Math.max(verified.get(u.user) ?? 0, u.seq));
    n.users += page.users.length;
    n.entries += page.entries.length;
    env.progress.moved(page.entries.length, page.users.length);
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
