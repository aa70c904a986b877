// The consistent-hash ring: an immutable member set mapped to key owners (home + replicas).
// Pure: no I/O, no clock; membership builds a new ring and swaps it in.
import { createHash } from 'node:crypto';
import HashRing from 'hashring';

// Virtual nodes per member, in hashring's sense (its 'vnode count'): one md5 digest per vnode,
// cut into 4 points on the circle, so 160 vnodes are 640 points per member. At 160 points the
// spread of owned keys reaches 1.32 (max/min) for some member counts; at 640 it stays under 1.15.
export const DEFAULT_VNODES = 160;
export const DEFAULT_REPLICAS = 2;
const POINTS_PER_VNODE = 4;
const MEMO_MAX = 100_000;

export type RingInit = {
  vnodes?: number;
  replicas?: number; // R: the home plus R-1 replicas
};

export type Ring = {
  // First 16 hex of sha256 over the sorted members and vnodes: equal sets give equal versions.
  readonly version: string;
  readonly members: readonly string[];
  readonly vnodes: number;
  readonly replicas: number;
  owner(key: string): string | undefined;
  // The home first, then distinct successors clockwise; at most min(n ?? replicas, members.length).
  owners(key: string, n?: number): readonly string[];
  has(member: string): boolean;
  /** The circle for display: arcs as [start, end, member] over 0..2^32 (a key hashing into
   * (start, end] belongs to member), neighbouring points of one member merged, plus each member's
   * share of the key space. Computed on first call. */
  layout(): RingLayout;
};

export type RingLayout = { arcs: [number, number, string][]; share: Record<string, number> };

export function ringVersion(members: readonly string[], vnodes: number): string {
  return createHash('sha256').update(JSON.stringify([vnodes, members])).digest('hex').slice(0, 16);
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

export function createRing(members: Iterable<string>, init: RingInit = {}): Ring {
  const vnodes = positiveInt(init.vnodes, DEFAULT_VNODES, 'vnodes');
  const replicas = positiveInt(init.replicas, DEFAULT_REPLICAS, 'replicas');
  // Sorted so that points tied on the same 32-bit value resolve the same way on every node.
  const sorted: readonly string[] = Object.freeze([...new Set(members)].sort());
  const memberSet = new Set(sorted);

  // Each member states its own vnodes and the default is 0: otherwise hashring derives the
  // count as floor(1/n * vnodes * n), which loses a point for some n (7 members at 160 get
  // 159 each), so a join would also move keys between the members that stayed.
  // 'max cache size' must stay >= 1 (0 crashes); the cache is never read (see owners).
  const hashRing = sorted.length === 0
    ? undefined
    : new HashRing(
      Object.fromEntries(sorted.map((m) => [m, { vnodes }])),
      'md5',
      { 'vnode count': 0, replicas: POINTS_PER_VNODE, 'max cache size': 1 },
    );

  // range() hashes the key on every call; the ring never changes, so remember answers (Maps,
  // safe for any key; one per count, so a lookup builds no string), and start afresh when they
  // grow large. Answers are frozen and shared: callers on the hot path (every send asks several
  // times) get them without a copy.
  const memos = new Map<number, Map<string, readonly string[]>>();
  let memoSize = 0;
  function owners(key: string, n: number = replicas): readonly string[] {
    const count = Math.min(Math.floor(n), sorted.length);
    if (hashRing === undefined || !(count >= 1)) return [];
    // A user's social log (`s:<user>`) lives with the user: its presence needs the user's privacy.
    if (key.charCodeAt(0) === 115 && key.startsWith('s:')) key = key.slice(2);
    let memo = memos.get(count);
    if (memo === undefined) memos.set(count, (memo = new Map()));
    let hit = memo.get(key);
    if (hit === undefined) {
      if (memoSize >= MEMO_MAX) {
        memos.clear();
        memos.set(count, (memo = new Map()));
        memoSize = 0;
      }
      // range(), never get(): get's LRU cache is a plain object, so a key such as 'toString'
      // reads and writes Object.prototype and can answer with a stale or foreign owner.
      hit = Object.freeze(hashRing.range(key, count, true));
      memo.set(key, hit);
      memoSize++;
    }
    return hit;
  }

  let layout: RingLayout | undefined;
  function computeLayout(): RingLayout {
    // hashring keeps its points sorted in `ring` ({value, server}); not in its typings.
    const points = ((hashRing as unknown as { ring?: { value: number; server: string }[] } | undefined)?.ring ?? []);
    const arcs: [number, number, string][] = [];
    const share: Record<string, number> = Object.fromEntries(sorted.map((m) => [m, 0]));
    const SPACE = 2 ** 32;
    points.forEach((p, i) => {
      const start = i === 0 ? points[points.length - 1]!.value - SPACE : points[i - 1]!.value;
      share[p.server] = (share[p.server] ?? 0) + (p.value - start) / SPACE;
      const last = arcs[arcs.length - 1];
      if (last && last[2] === p.server) last[1] = p.value;
      else arcs.push([start, p.value, p.server]);
    });
    return { arcs, share };
  }

  return Object.freeze({
    layout: () => (layout ??= computeLayout()),
    version: ringVersion(sorted, vnodes),
    members: sorted,
    vnodes,
    replicas,
    owner: (key: string): string | undefined => owners(key, 1)[0],
    owners,
    has: (member: string): boolean => memberSet.has(member),
  });
}
