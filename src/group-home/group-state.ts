// What the group home holds per group while it serves it, and drops on a ring change: the
// group's member state (loaded from the log on first use) and its budget (post and typing
// buckets, fan-out backlog).
import type { Logger } from 'pino';
import { apply, emptyGroup, parseEvent } from '../groups/index.ts';
import type { GroupState } from '../groups/index.ts';
import { Backlog, TokenBucket } from '../groups/limits.ts';
import type { GroupLimits } from '../groups/limits.ts';
import type { Store, StoredEntry } from '../store/index.ts';
import { genPrefix, groupKey, SNAPSHOT } from './group-keys.ts';

/** State of groups this node serves, loaded from the log on first use after a ring change. */
export class GroupCache {
  #store: Store;
  #owns: (key: string) => boolean;
  #log: Logger;
  #cache = new Map<string, GroupState>();

  constructor(store: Store, owns: (key: string) => boolean, log: Logger) {
    this.#store = store;
    this.#owns = owns;
    this.#log = log;
  }

  async load(group: string): Promise<GroupState> {
    const have = this.#cache.get(group);
    if (have) return have;
    const store = this.#store;
    const key = groupKey(group);
    let rows: StoredEntry[];
    for (;;) {
      await store.flush();
      const seq = store.lastSeq(key);
      // The latest snapshot and the events after it: a bounded read however long the log.
      rows = await store.entriesByKey(key, genPrefix(store.acked(key, SNAPSHOT)));
      // A batch that began before a ring change cleared the cache may have appended meanwhile.
      if (store.lastSeq(key) === seq) break;
    }
    const s = emptyGroup();
    for (const r of rows) {
      const e = parseEvent(r.seq, r.ts, r.from, r.body);
      if (e) apply(s, e);
      else this.#log.warn({ group, seq: r.seq }, 'group log: an event this version does not know; skipped');
    }
    // Only kept while this node serves the group: another ring change may have come meanwhile.
    const now = this.#cache.get(group);
    if (now) return now;
    if (this.#owns(key)) this.#cache.set(group, s);
    return s;
  }

  /** Forgets the group's state: the next use reads it from the log again. */
  drop(group: string): void {
    this.#cache.delete(group);
  }

  clear(): void {
    this.#cache = new Map();
  }
}

/** Per group served here: its post and typing buckets and its fan-out backlog. */
export type Budget = { posts: TokenBucket; typing: TokenBucket; backlog: Backlog };

export class Budgets {
  #limits: GroupLimits;
  #now: () => number;
  #budgets = new Map<string, Budget>();

  constructor(limits: GroupLimits, now: () => number) {
    this.#limits = limits;
    this.#now = now;
  }

  get(group: string): Budget {
    let b = this.#budgets.get(group);
    if (!b) {
      const t = this.#now();
      const limits = this.#limits;
      if (this.#budgets.size >= 10_000) {
        for (const [g, x] of this.#budgets) if (x.backlog.empty && x.posts.full(t) && x.typing.full(t)) this.#budgets.delete(g);
      }
      b = { posts: new TokenBucket(limits.rate, limits.burst, t), typing: new TokenBucket(limits.typingFrames, 2 * limits.typingFrames, t), backlog: new Backlog() };
      this.#budgets.set(group, b);
    }
    return b;
  }

  /** The group's budget if it has one (nothing is created). */
  peek(group: string): Budget | undefined {
    return this.#budgets.get(group);
  }

  clear(): void {
    this.#budgets = new Map();
  }
}
