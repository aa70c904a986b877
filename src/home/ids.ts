// Message ids: unique across nodes by construction and sortable by creation time.
// Layout (Crockford base32): 10 chars of ms time, 4 chars of a per-ms counter, 8 chars of node tag.

const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function b32(n: number, width: number): string {
  let s = '';
  for (let i = 0; i < width; i++) {
    s = B32[n % 32] + s;
    n = Math.floor(n / 32);
  }
  return s;
}

/** A fresh random node tag: 8 base32 chars (40 bits), kept in the node's store. */
export function randomNodeTag(rand: () => number = Math.random): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += B32[Math.floor(rand() * 32)];
  return s;
}

const COUNTER_MAX = 32 ** 4;

/**
 * Returns a generator of ids. Time never goes backwards within one generator (a clock step back
 * keeps the last time), and a counter overflow borrows the next millisecond, so ids are strictly
 * increasing per node; the node tag makes them distinct across nodes.
 */
export function createMidGenerator(nodeTag: string, now: () => number = Date.now): () => string {
  if (!/^[0-9A-HJKMNP-TV-Z]{8}$/.test(nodeTag)) throw new Error(`bad node tag ${nodeTag}`);
  let lastMs = 0;
  let counter = 0;
  return () => {
    const t = now();
    if (t > lastMs) {
      lastMs = t;
      counter = 0;
    } else if (++counter >= COUNTER_MAX) {
      lastMs++;
      counter = 0;
    }
    return b32(lastMs, 10) + b32(counter, 4) + nodeTag;
  };
}

/** The creation time (ms) encoded in an id. */
export function midTime(mid: string): number {
  let n = 0;
  for (const ch of mid.slice(0, 10)) n = n * 32 + B32.indexOf(ch);
  return n;
}
