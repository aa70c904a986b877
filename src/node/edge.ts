// Wiring of what faces outwards and what runs on its own: the client gateway and its session
// upkeep, the peer handlers of the data moves, the reactions to cluster events, the routes of the
// client port, the node's timers, and the order of a graceful drain.
import type { Logger } from 'pino';
import type { Presence } from '../presence/index.ts';
import type { Store } from '../store/index.ts';
import type { Clock } from '../clock/index.ts';
import type { Cluster } from '../cluster/index.ts';
import { createAuth } from '../gateway/auth.ts';
import { createGateway } from '../gateway/gateway.ts';
import type { Gateway } from '../gateway/gateway.ts';
import { createUpkeep } from '../gateway/upkeep.ts';
import type { Upkeep } from '../gateway/upkeep.ts';
import type { HttpRoutes } from '../http/server.ts';
import { createAdminApi } from '../http/admin.ts';
import type { PeerNet } from '../transport/index.ts';
import type { Config } from './config.ts';
import type { Metrics } from './metrics.ts';
import { connectionsWithin } from './open-files.ts';
import type { Roles } from './roles.ts';
import { clusterView, healthz, scrape } from './status.ts';
import type { NodeState, StatusDeps } from './status.ts';

/** How often copies a crash kept from other homes are handed over again. */
const OUTBOX_REPLAY_MS = 10_000;
const STATS_LOG_MS = 60_000;

export type EdgeDeps = {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  secret: string;
  clock: Clock;
  /** The node's stop signal (aborted after the drain). */
  signal: AbortSignal;
  url: string;
  store: Store;
  presence: Presence;
  net: PeerNet;
  cluster: Cluster;
  roles: Roles;
  life: { state: NodeState; routes?: HttpRoutes };
  accepted: () => number;
};

export type Edge = {
  gateway: Gateway;
  startTimers(): void;
  /** Leaves the cluster handing everything over, and sends clients to the other members. */
  drain(): Promise<void>;
};

/** The client URLs of the live members other than this node. */
const othersUp = (d: EdgeDeps) => () => d.cluster.members().filter((m) => m.name !== d.cfg.name && m.state === 'up').map((m) => m.url);

/** Cut off from the majority: clients go where they can be served (the members it cannot hear,
 * which are on the other side), rather than wait here for unavailable answers. */
const unheard = (d: EdgeDeps) => (): string[] => {
  const others = d.cluster.members().filter((m) => m.name !== d.cfg.name && m.state !== 'dead');
  const far = others.filter((m) => m.state === 'suspect');
  return (far.length ? far : others).map((m) => m.url);
};

function wireGateway(d: EdgeDeps): { gateway: Gateway; upkeep: Upkeep } {
  const { cfg, roles, cluster } = d;
  const maxConnections = connectionsWithin(cfg.maxConnections);
  if (maxConnections < cfg.maxConnections) d.log.warn({ wanted: cfg.maxConnections, limit: maxConnections }, 'client connections capped below the open-file limit (raise ulimit -n to hold more)');
  const homes = { ...roles.router, group: roles.fan.group, typing: roles.fan.typing, receipts: roles.fan.receipts };
  const gateway = createGateway({
    name: cfg.name, config: { ...cfg, maxConnections }, homes, social: roles.router, auth: createAuth({
      secret: d.secret, insecure: cfg.insecure, maxTokenLifeS: cfg.maxTokenLifeS,
      ...(cfg.tokenAudience !== undefined ? { audience: cfg.tokenAudience } : {}),
      ...(cfg.tokenIssuer !== undefined ? { issuer: cfg.tokenIssuer } : {}),
    }),
    metrics: d.metrics, log: d.log.child({ component: 'gateway' }), clock: d.clock, signal: d.signal, others: othersUp(d),
    turnAway: () => (cluster.cutOff() ? { reason: 'minority', nodes: unheard(d)() } : undefined),
  });
  const upkeep = createUpkeep({
    self: cfg.name, ring: () => (cluster.joined() ? cluster.ring() : undefined), peerOf: cluster.peerOf,
    request: (peer, msg) => d.net.request(peer, msg), home: roles.home, homes, sessions: gateway.sessions, watches: gateway.watches, catchUp: gateway.catchUp,
    log: d.log.child({ component: 'upkeep' }),
  });
  return { gateway, upkeep };
}

/** The data moves peers ask of this node, and the one-way pushes to its connections. */
function wirePeerHandlers(d: EdgeDeps, gateway: Gateway): void {
  const { cluster, roles, cfg } = d;
  // A node cut off from the majority may hold stale data: it hands none to a (re)joining node.
  cluster.dispatch.on('handoff', async (_name, req) => (cluster.lease() ? roles.handoff.serve(req)
    : { t: 'fail', code: 'unavailable', message: `${cfg.name} cannot hear a majority of the cluster` }));
  cluster.dispatch.on('absorb', (_name, req) => roles.handoff.absorb(req.page));
  cluster.dispatch.on('holding', (_name, req) => roles.handoff.holding(req.users));
  cluster.dispatch.on('replicate', (name, req) => roles.replicator.apply(name, req.page));
  cluster.onMessage((_fromName, msg) => {
    if (msg.t === 'push') gateway.push(msg.conn, msg.frame);
    else if (msg.t === 'pushmsg') for (const [conn, seq] of msg.to) gateway.push(conn, { op: 'msg', seq, ...msg.msg });
  });
}

/** What a ring change, a death and a lost majority mean for each role. */
function wireClusterEvents(d: EdgeDeps, gateway: Gateway, upkeep: Upkeep, replayOutbox: () => void): void {
  const { cluster, roles, cfg, log } = d;
  // First of the ring listeners: the others ask custody which users this node may serve.
  cluster.onRingChanged((ring, prev, died) => {
    roles.custody.changed(prev, ring, died);
    if (died.length) log.warn({ died }, 'members died: the users only they held stay unavailable until one of them is back');
  });
  cluster.onMemberGone((name) => roles.home.dropGateway(name));
  cluster.onMajority((majority) => {
    if (majority) return;
    const nodes = unheard(d)();
    const n = gateway.goaway('minority', nodes);
    log.warn({ clients: n, nodes }, 'minority: clients sent to the members this node cannot hear');
  });
  const owns = (user: string) => cluster.joined() && cluster.ring().owner(user) === cfg.name;
  cluster.onRingChanged(() => {
    const peers = cluster.members().filter((m) => m.name !== cfg.name && m.state !== 'dead').flatMap((m) => m.addrs.slice(0, 1));
    if (peers.length) void d.store.setMeta('peers', JSON.stringify(peers)).catch(() => undefined);
    void roles.handoff.ringChanged(cluster.ring());
    roles.replicator.ringChanged();
    roles.groups.ringChanged();
    roles.social.ringChanged();
    const dropped = d.presence.forget(owns);
    if (dropped) log.info({ users: dropped }, 'presence of users now homed elsewhere dropped here');
    void upkeep.ringChanged();
  });
  cluster.onRingChanged(() => replayOutbox());
}

/** Hands over the outbox once joined, then now and then; never two replays at once. */
function outboxReplayer(d: EdgeDeps): () => void {
  let replaying = false;
  return () => {
    if (replaying || !d.cluster.joined() || d.life.state === 'draining') return;
    replaying = true;
    d.roles.home.replayOutbox().then(
      (r) => (r.delivered || r.failed ? d.log.info(r, 'outbox replayed') : undefined),
      (e: Error) => d.log.warn({ err: e.message }, 'outbox replay failed'),
    ).finally(() => (replaying = false));
  };
}

function routes(d: EdgeDeps, gateway: Gateway): HttpRoutes {
  const { cluster, roles, cfg } = d;
  const s: StatusDeps = {
    name: cfg.name, insecure: cfg.insecure, peerId: d.net.peerId, state: () => d.life.state, accepted: d.accepted,
    cluster, custody: roles.custody, knownUsers: () => d.store.knownUsers(), replicator: roles.replicator, handoff: roles.handoff,
    groups: roles.groups, connections: () => gateway.size(), presence: d.presence, peerStats: () => d.net.stats(), now: () => d.clock.now(), metrics: d.metrics,
  };
  return {
    healthz: () => healthz(s),
    cluster: () => clusterView(s),
    nodes: () => cluster.members().filter((m) => m.state === 'up').map((m) => m.url),
    admin: createAdminApi({
      ring: () => cluster.ring(),
      members: () => cluster.members(),
      clock: d.clock,
      self: () => clusterView(s) as { node: string },
      ...(cfg.adminToken ? { adminToken: cfg.adminToken } : {}),
    }),
    metrics: () => scrape(s),
  };
}

export function wireEdge(d: EdgeDeps): Edge {
  const { cfg, log } = d;
  const { gateway, upkeep } = wireGateway(d);
  const replayOutbox = outboxReplayer(d);
  wirePeerHandlers(d, gateway);
  wireClusterEvents(d, gateway, upkeep, replayOutbox);
  d.life.routes = routes(d, gateway);
  const timers: NodeJS.Timeout[] = [];
  return {
    gateway,
    startTimers() {
      const sweepMs = Math.max(50, Math.min(1000, cfg.loginTimeoutMs / 4, cfg.idleTimeoutMs / 4));
      timers.push(setInterval(() => gateway.sweep(), sweepMs));
      timers.push(setInterval(() => void upkeep.renew(), Math.max(100, cfg.presenceTimeoutMs / 3)));
      timers.push(setInterval(replayOutbox, OUTBOX_REPLAY_MS));
      // One line a minute while there is traffic, so a log shows what the node is doing.
      let last = 0;
      const stats = setInterval(() => {
        const accepted = d.accepted();
        if (accepted === last && gateway.size() === 0) return;
        log.info({ connections: gateway.size(), online: d.presence.users(), accepted: accepted - last, perSecond: Math.round((accepted - last) / 60) }, 'stats (last minute)');
        last = accepted;
      }, STATS_LOG_MS);
      stats.unref();
      timers.push(stats);
    },
    async drain() {
      const others = othersUp(d)();
      log.info({ connections: gateway.size(), others: others.length }, 'draining: leaving the cluster, sending goaway to clients');
      for (const t of timers) clearInterval(t);
      // Hand every user this node owns or replicates to its next holders around leaving the ring.
      let announced = false;
      const announce = async () => {
        announced = true;
        await d.cluster.leave();
      };
      try {
        await d.roles.handoff.release(announce);
      } catch (e) {
        // The whole cluster stopping at once (no other member up any more) is no failure: the
        // users stay on this node's disk and come back with it.
        if (othersUp(d)().length === 0) log.warn({ err: (e as Error).message }, 'leave: no other member is up to take the users; they stay on this node\'s disk');
        else log.error({ err: (e as Error).message }, 'leave: handoff failed; the users it did not reach stay on this node\'s disk');
      }
      if (!announced) await d.cluster.leave();
      await gateway.shutdown(others, 2000);
    },
  };
}
