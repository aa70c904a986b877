// The process's open-file limit, which bounds how many client connections a node can hold
// (each is a socket, beside the peer links, the database and the log).
import { readFileSync } from 'node:fs';

/** File descriptors kept for everything but client sockets. */
export const RESERVED_FDS = 1000;

/** The soft limit on open files (Linux /proc), or undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** `wanted` connections, or fewer when the open-file limit could not hold them. */
export function connectionsWithin(wanted: number, limit = openFileLimit()): number {
  if (limit === undefined) return wanted;
  return Math.max(1, Math.min(wanted, limit - RESERVED_FDS));
}
