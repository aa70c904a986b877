// The cluster page's data (/admin/api/*): the ring as a circle of arcs, and one poll of every
// member's /cluster gathered by this node, so that a browser that reaches one node sees them all
// (members' client ports may not be reachable from the browser, and one origin needs no CORS).
import type { Ring, RingLayout } from '../ring/index.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';

export type AdminInit = {
  ring(): Ring;
  /** The members this node knows, with their client URLs (ws://host:port/ws). */
  members(): { name: string; url: string; state: string }[];
  /** This node's own /cluster body (answered without a request to itself). */
  self(): { node: string } & Record<string, unknown>;
  adminToken?: string;
  /** Per member request timeout (default 1.5 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** The time of a poll and of the answer (default: the system's). */
  clock?: Clock;
};

const MAX_MEMBERS_POLLED = 64;

export type RingView = { version: string; vnodes: number; replicas: number; members: readonly string[] } & RingLayout;

export function createAdminApi(init: AdminInit): (name: string) => Promise<unknown> | undefined {
  let cached: RingView | undefined;
  const ringView = (): RingView => {
    const r = init.ring();
    if (cached?.version !== r.version) {
      cached = { version: r.version, vnodes: r.vnodes, replicas: r.replicas, members: r.members, ...r.layout() };
    }
    return cached;
  };
  const doFetch = init.fetch ?? fetch;
  const clock = init.clock ?? systemClock;

  /** One member's /cluster, or why not. */
  async function poll(m: { name: string; url: string; state: string }): Promise<Record<string, unknown>> {
    const http = m.url.replace(/^ws(s?):/, 'http$1:').replace(/\/ws$/, '/cluster');
    const t0 = clock.now();
    try {
      const res = await doFetch(http, {
        headers: init.adminToken ? { authorization: `Bearer ${init.adminToken}` } : {},
        signal: AbortSignal.timeout(init.timeoutMs ?? 1500),
      });
      if (!res.ok) return { name: m.name, url: m.url, member: m.state, reachable: false, error: `HTTP ${res.status}` };
      return { name: m.name, url: m.url, member: m.state, reachable: true, ms: clock.now() - t0, cluster: await res.json() };
    } catch (e) {
      return { name: m.name, url: m.url, member: m.state, reachable: false, error: (e as Error).message };
    }
  }

  return (name) => {
    if (name === 'ring') return Promise.resolve(ringView());
    if (name === 'stats') {
      return (async () => {
        const self = init.self();
        const others = init.members().filter((m) => m.name !== self.node && m.state !== 'dead').slice(0, MAX_MEMBERS_POLLED);
        const me = init.members().find((m) => m.name === self.node);
        const nodes = [
          { name: self.node, url: me?.url ?? '', member: me?.state ?? 'up', reachable: true, ms: 0, cluster: self },
          ...(await Promise.all(others.map(poll))),
        ];
        return { at: clock.now(), via: self.node, ring: { version: init.ring().version }, nodes };
      })();
    }
    return undefined;
  };
}
