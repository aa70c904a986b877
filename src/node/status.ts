// What a node shows of itself: /healthz for load balancers, /cluster for operators and the
// cluster page, and the gauges refreshed at each /metrics scrape. Read-only views over the roles.
import type { Ring } from '../ring/index.ts';
import type { MemberView } from '../membership/index.ts';
import type { PeerStats } from '../transport/index.ts';
import type { Metrics } from './metrics.ts';

export type NodeState = 'starting' | 'serving' | 'draining';

export type StatusDeps = {
  name: string;
  insecure: boolean;
  peerId: string;
  state: () => NodeState;
  /** Sends accepted here as the sender's home since start. */
  accepted: () => number;
  cluster: {
    joined(): boolean; cutOff(): boolean; hasMajority(): boolean; lease(): boolean; ring(): Ring;
    members(): MemberView[]; nameOf(peer: string): string | undefined;
  };
  custody: { view(): { deaths: number } & Record<string, unknown> };
  knownUsers: () => Iterable<string>;
  replicator: { pending(): number; behind(): number; progress(): unknown };
  handoff: { outgoing(): unknown[]; copying(): unknown };
  groups: { progress(): { fanoutBehind: number } & Record<string, unknown> };
  connections: () => number;
  presence: { sessionCount(): number; users(): number };
  peerStats: () => PeerStats[];
  now: () => number;
  metrics: Metrics;
};

/** Insecure mode shows in /healthz and /cluster (only when on, so a normal node's bodies are unchanged). */
const flag = (insecure: boolean) => (insecure ? { insecure: true } : {});

export function healthz(s: Pick<StatusDeps, 'name' | 'insecure' | 'state' | 'cluster'>): { status: number; body: unknown } {
  const state = s.state();
  // Cut off from the majority it serves nothing: a load balancer should send clients elsewhere.
  const minority = s.cluster.joined() && s.cluster.cutOff();
  const ok = state === 'serving' && s.cluster.joined() && !minority;
  const shown = state !== 'serving' || ok ? state : minority ? 'minority' : 'joining';
  return { status: ok ? 200 : 503, body: { ok, node: s.name, state: shown, ...flag(s.insecure) } };
}

export function clusterView(s: StatusDeps): Record<string, unknown> {
  const { cluster } = s;
  const ring = cluster.ring();
  let owned = 0;
  for (const u of s.knownUsers()) if (ring.owner(u) === s.name) owned++;
  return {
    node: s.name,
    ...flag(s.insecure),
    peer: s.peerId,
    joined: cluster.joined(),
    majority: cluster.hasMajority(),
    lease: cluster.lease(),
    custody: s.custody.view(),
    members: cluster.members().map((m) => ({ name: m.name, peer: m.peer, url: m.url, addrs: m.addrs, state: m.state, incarnation: m.incarnation })),
    ring: { version: ring.version, vnodes: ring.vnodes, replicas: ring.replicas, members: ring.members },
    owned,
    // Work in flight that operators may want to see finish before the next change.
    migrations: {
      replicationQueued: s.replicator.pending(), replicationBehind: s.replicator.behind(),
      replication: s.replicator.progress(), handoffsOut: s.handoff.outgoing(), copying: s.handoff.copying() ?? null,
    },
    groups: s.groups.progress(),
    connections: s.connections(),
    sessions: s.presence.sessionCount(),
    online: s.presence.users(),
    // Counters since start, for rates: messages accepted here as the sender's home, peer bytes.
    traffic: peerTraffic(s.peerStats(), s.accepted(), s.now()),
  };
}

function peerTraffic(stats: PeerStats[], messages: number, at: number) {
  let bytesIn = 0;
  let bytesOut = 0;
  for (const s of stats) {
    bytesIn += s.bytesIn;
    bytesOut += s.bytesOut;
  }
  return { at, messages, peerBytesIn: bytesIn, peerBytesOut: bytesOut };
}

/** The Prometheus text, with the gauges that are read rather than counted refreshed first. */
export async function scrape(s: StatusDeps): Promise<{ contentType: string; body: string }> {
  const { metrics, cluster } = s;
  metrics.lease.set(cluster.lease() ? 1 : 0);
  metrics.custodyDeaths.set(s.custody.view().deaths);
  metrics.handoffsInFlight.set(s.handoff.outgoing().length + (s.handoff.copying() ? 1 : 0));
  metrics.replicationQueued.set(s.replicator.pending());
  metrics.replicationBehind.set(s.replicator.behind());
  metrics.groupFanoutBehind.set(s.groups.progress().fanoutBehind);
  for (const p of s.peerStats()) {
    const name = cluster.nameOf(p.peer) ?? p.peer;
    metrics.peerFrames.set({ peer: name, dir: 'out' }, p.framesOut);
    metrics.peerFrames.set({ peer: name, dir: 'in' }, p.framesIn);
    metrics.peerBytes.set({ peer: name, dir: 'out' }, p.bytesOut);
    metrics.peerBytes.set({ peer: name, dir: 'in' }, p.bytesIn);
    metrics.peerMsgs.set({ peer: name, dir: 'out' }, p.msgsOut);
    metrics.peerMsgs.set({ peer: name, dir: 'in' }, p.msgsIn);
  }
  return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
}
