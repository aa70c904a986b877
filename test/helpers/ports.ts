// Free TCP ports on 127.0.0.1 for tests that must name ports up front (scripts/cluster.sh takes
// a first port and counts up from it).
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Listens on port (0 = any) and closes again: the port it got, or null when it is taken. */
export function tryPort(port: number): Promise<number | null> {
  return new Promise((ok) => {
    const s = createServer();
    s.once('error', () => ok(null));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as AddressInfo).port;
      s.close(() => ok(got));
    });
  });
}

/** A port p such that p .. p+n-1 are all free, away from the ports in avoid (each with its own run of n). */
export async function freeRun(n: number, avoid: number[] = []): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = await tryPort(0);
    if (p === null || p + n > 65535 || avoid.some((a) => Math.abs(a - p) < n)) continue;
    let all = true;
    for (let k = 1; k < n && all; k++) all = (await tryPort(p + k)) !== null;
    if (all) return p;
  }
  throw new Error(`found no ${n} consecutive free ports`);
}
