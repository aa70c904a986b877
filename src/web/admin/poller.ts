// The page's one loop: GET /admin/api/stats about every second, one request at a time (a slow
// answer, e.g. while a member times out, delays the next poll instead of piling requests up),
// backing off while the node does not answer; GET /admin/api/ring again whenever the ring's version
// changes. A 401 stops the loop until a token is given.
import { getJson, getToken, Unauthorized } from './api.ts';
import type { History, Peaks } from './history.ts';
import type { RingView, Stats } from './types.ts';

const EVERY_MS = 1000;
const MAX_BACKOFF_MS = 15_000;
/** /admin/api/stats waits up to 1.5 s per member (in parallel), so allow well over that. */
const TIMEOUT_MS = 8000;

export type View = {
  stats?: Stats;
  ring?: RingView;
  /** Set while the last poll failed: why, and when the next try is. */
  failure?: { message: string; retryAt: number };
  /** The node answered 401: the page shows the token form. */
  needToken: boolean;
  /** A token was sent and refused. */
  refused: boolean;
  /** When the last poll succeeded (browser clock). */
  updated?: number;
};

export type Poller = { /** Poll now (after a token was entered). */ now(): void; stop(): void };

export function startPoller(history: History, peaks: Peaks, onChange: (v: View) => void): Poller {
  let view: View = { needToken: false, refused: false };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let busy = false;
  let stopped = false;
  let failures = 0;
  const set = (patch: Partial<View>) => {
    view = { ...view, ...patch };
    onChange(view);
  };

  async function poll(): Promise<void> {
    if (busy || stopped) return;
    busy = true;
    clearTimeout(timer);
    const t0 = performance.now();
    const sentToken = getToken() !== null;
    try {
      const stats = await getJson<Stats>('stats', TIMEOUT_MS);
      const ring = view.ring?.version === stats.ring.version ? view.ring : await getJson<RingView>('ring', TIMEOUT_MS);
      history.add(stats.at, stats.nodes.filter((n) => n.reachable && n.cluster).map((n) => ({
        name: n.name,
        ...(n.cluster!.traffic ? { messages: n.cluster!.traffic.messages, peerIn: n.cluster!.traffic.peerBytesIn, peerOut: n.cluster!.traffic.peerBytesOut } : {}),
        ...(n.cluster!.connections !== undefined ? { connections: n.cluster!.connections } : {}),
      })));
      peaks.update(new Map(stats.nodes.flatMap((n) => Object.entries(n.cluster?.migrations?.replication ?? {}).map(([to, r]) => [`${n.name}>${to}`, r.behind] as const))));
      failures = 0;
      const { failure: _, ...rest } = view;
      view = rest;
      set({ stats, ring, needToken: false, refused: false, updated: Date.now() });
      schedule(Math.max(0, EVERY_MS - (performance.now() - t0)));
    } catch (e) {
      if (e instanceof Unauthorized) {
        // Wait for a token; polling on would only repeat the 401.
        set({ needToken: true, refused: sentToken });
      } else {
        failures++;
        const wait = Math.min(EVERY_MS * 2 ** failures, MAX_BACKOFF_MS);
        set({ failure: { message: why(e), retryAt: Date.now() + wait } });
        schedule(wait);
      }
    } finally {
      busy = false;
    }
  }

  function schedule(ms: number): void {
    if (!stopped) timer = setTimeout(() => void poll(), ms);
  }

  void poll();
  return {
    now: () => void poll(),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function why(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === 'TimeoutError') return 'no answer in time';
  // fetch's TypeError: refused, reset, DNS; the browser says no more than that.
  if (e.name === 'TypeError') return 'no connection';
  return e.message;
}
