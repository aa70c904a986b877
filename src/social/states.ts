// The folded social state of each user served here, read from the user's social log once and
// kept up to date from the store's commits, so that presence events and admissions need no read.
import { applyEntry, emptyPair, emptySocial, parseEvent } from '../contacts/index.ts';
import type { Pair, SocialState } from '../contacts/index.ts';
import { UnavailableError } from '../protocol/errors.ts';
import type { Store, StoredEntry } from '../store/index.ts';
import { socialKey } from './types.ts';

const CACHE_MAX = 200_000;

/** A committed social log entry as `States.fold` saw it: `other` is set for the other side's
 * copy of a relation; `s` is the cached state it was folded into (none: not in memory), and
 * `before` that side's pair before it. */
export type Folded = { user: string; other: string | undefined; s: SocialState | undefined; before: Pair | undefined };

export class States {
  #store: Store;
  #owns: (key: string) => boolean;
  #signal: AbortSignal | undefined;
  // Loaded states of users served here; cleared when the ring changes (a user may move away and back).
  // Each with the store's token for the data it was read from: data dropped or imported again,
  // or entries that reached the store without a commit of this node (a node rejoining through
  // the data copy copies what it missed, and its own ring may never have changed), is read again.
  // Between two commits the state has folded in everything committed; `committed` (the hook,
  // which runs right after a commit) passes `hook` as the store is one batch ahead then.
  #cache = new Map<string, { s: SocialState; held: object | undefined }>();

  constructor(store: Store, owns: (key: string) => boolean, signal?: AbortSignal) {
    this.#store = store;
    this.#owns = owns;
    this.#signal = signal;
  }

  cached(user: string, hook = false): SocialState | undefined {
    const e = this.#cache.get(user);
    if (!e) return undefined;
    const key = socialKey(user);
    if (this.#store.holding(key) === e.held && (hook || this.#store.committedSeq(key) === e.s.seq)) return e.s;
    this.#cache.delete(user);
    return undefined;
  }

  #remember(user: string, s: SocialState): void {
    this.#cache.set(user, { s, held: this.#store.holding(socialKey(user)) });
  }

  async load(user: string): Promise<SocialState> {
    const have = this.cached(user);
    if (have) return have;
    const store = this.#store;
    const key = socialKey(user);
    for (;;) {
      if (this.#signal?.aborted) throw new UnavailableError('the node is stopping');
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
      const now2 = this.cached(user);
      if (now2) return now2;
      if (this.#owns(key)) {
        if (this.#cache.size >= CACHE_MAX) this.#cache = new Map([...this.#cache].slice(CACHE_MAX / 2));
        this.#remember(user, s);
      }
      return s;
    }
  }

  /** The state if it needs no read: cached, or a user who never wrote anything social. */
  peek(user: string): SocialState | undefined {
    return this.cached(user) ?? (this.#store.lastSeq(socialKey(user)) === 0 ? emptySocial() : undefined);
  }

  state(user: string): Promise<SocialState> {
    const s = this.peek(user);
    return s ? Promise.resolve(s) : this.load(user);
  }

  /** Folds a committed entry into the cached state (undefined: not a social log entry). */
  fold(e: StoredEntry): Folded | undefined {
    if (!e.user.startsWith('s:')) return undefined;
    const user = e.user.slice(2);
    const ev = parseEvent(e.body);
    const other = ev && ev.k === 'pair' && e.from !== user ? e.from : undefined;
    let s = this.cached(user, true);
    if (!s && e.seq === 1 && this.#owns(e.user)) this.#remember(user, (s = emptySocial()));
    if (s && e.seq !== s.seq + 1) {
      this.#cache.delete(user); // a gap: read it all again on next use
      s = undefined;
    }
    if (!s) return { user, other, s: undefined, before: undefined };
    const before = other !== undefined ? s.pairs.get(other) ?? emptyPair() : undefined;
    applyEntry(s, e.seq, e.ts, e.body, user, e.from);
    return { user, other, s, before };
  }

  /** The ring changed: every state is read again on next use. */
  clear(): void {
    this.#cache = new Map();
  }
}
