// Wiring of the roles one node runs, from the inside out: what keeps copies (replica), what
// routes (cluster), the home roles that route through it (home, group-home, social), and the
// client edge (gateway). Each role gets only what it uses; the one cycle (routing reaches the home
// roles when the ring says "here", and they send through routing) is closed by LocalRoles, set
// once right after the home roles exist.
import type { Logger } from 'pino';
import type { Presence } from '../presence/index.ts';
import type { Membership } from '../membership/index.ts';
import type { Changed, ExportedEntry, Store } from '../store/index.ts';
import type { Clock } from '../clock/index.ts';
import { createCluster, createRouter, LocalRoles } from '../cluster/index.ts';
import type { Cluster, Router } from '../cluster/index.ts';
import { createCommitPush, createHome, createMidGenerator, createPushes, midTime, Unconfirmed } from '../home/index.ts';
import type { Home, Push } from '../home/index.ts';
import { createFanout, createGroups } from '../group-home/index.ts';
import type { Fanout, Groups } from '../group-home/index.ts';
import { createSocial } from '../social/index.ts';
import type { Social } from '../social/index.ts';
import { createCustody, createHandoff, createReplicator } from '../replica/index.ts';
import type { Custody, Handoff, Replicator } from '../replica/index.ts';
import type { PeerNet } from '../transport/index.ts';
import type { Config } from './config.ts';
import type { Metrics } from './metrics.ts';

/** What every role is built on: settings, logs, time, the stop signal, and the node's parts that
 * exist before any role (the store, presence, the peer transport and the cluster glue). */
export type Base = {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  clock: Clock;
  signal: AbortSignal;
  store: Store;
  presence: Presence;
  net: PeerNet;
  cluster: Cluster;
  nodeTag: string;
  /** Delivers to a connection this node's gateway holds (set by the gateway once it exists). */
  pushLocal: (conn: string, frame: Parameters<Push>[2]) => void;
  /** Called once per new message accepted here as the sender's home. */
  onAccepted: () => void;
};

/** Hears every commit of the store, in the order the listeners were added. */
export type CommitListener = (entries: ExportedEntry[], changed: Changed) => void;

export type Roles = {
  custody: Custody;
  replicator: Replicator;
  handoff: Handoff;
  router: Router;
  fan: Fanout;
  home: Home;
  groups: Groups;
  social: Social;
  unconfirmed: Unconfirmed;
  /** Delivers a frame to a connection held by any gateway of the cluster. */
  push: Push;
};

/** The cluster glue, before any role: membership over the peer transport, joining through
 * `seeds` (the node's handoff is given at start, once the roles exist). */
export function wireCluster(cfg: Config, log: Logger, metrics: Metrics, net: PeerNet, membership: Membership,
  join: { seeds: string[]; aloneAfterMs: number | undefined }, clock: Clock, signal: AbortSignal): Cluster {
  return createCluster(
    { seeds: join.seeds, aloneAfterMs: join.aloneAfterMs, vnodes: cfg.vnodes, replicas: cfg.replicas, maxBody: cfg.maxBody },
    {
      net, membership, log: log.child({ component: 'cluster' }), clock, signal,
      onEvent: (type) => metrics.membership.inc({ type }),
      onInvalidFrame: () => metrics.invalidPeerFrames.inc(),
      onRefused: (type, reason) => metrics.peerRefused.inc({ type, reason }),
    },
  );
}

/** Serves a user: its home, holding the write lease (hears a majority), with a complete copy. */
function serving(b: Base, custody: Custody) {
  const { cluster, cfg } = b;
  const owns = (user: string) => cluster.joined() && cluster.ring().owner(user) === cfg.name;
  const whyNot = (user: string): string => {
    if (!cluster.joined()) return 'this node is not a joined member of the cluster (joining, or rejoining after it was cut off)';
    if (cluster.ring().owner(user) !== cfg.name) return `${user} is moving to another node`;
    if (!cluster.lease()) return 'this node cannot hear a majority of the cluster: it confirms no write and serves no read until it does; use another node';
    if (!custody.complete(user)) return `every node that held ${user} completely is unreachable: ${user} is unavailable until one of them is back`;
    return `${user} is moving to another node`;
  };
  return { owns: (user: string) => owns(user) && cluster.lease() && custody.complete(user), whyNot };
}

/** Replication and custody: what this node holds of others' keys, and copies of its own. */
function wireReplica(b: Base): Pick<Roles, 'custody' | 'replicator'> {
  const { cfg, cluster, metrics, net } = b;
  const custody = createCustody(cfg.name, () => cluster.ring().replicas);
  const replicator = createReplicator({
    self: cfg.name, store: b.store, ring: cluster.ring, joined: cluster.joined, peerOf: cluster.peerOf,
    request: (peer, msg, o) => net.request(peer, msg, o), ringChange: cluster.ringChange,
    log: b.log.child({ component: 'replicator' }), clock: b.clock, signal: b.signal,
    lease: cluster.lease, complete: (u) => custody.complete(u), onFilled: (u) => custody.filled(u),
    onBatch: (_to, entries) => metrics.replicatedEntries.inc(entries),
    onUrgentExpired: () => metrics.replicationUrgentExpired.inc(),
  });
  return { custody, replicator };
}

/** Routing to homes and the cluster-wide fan-out, reaching this node's home roles through `locals`. */
function wireRouting(b: Base, locals: LocalRoles): { router: Router; fan: Fanout } {
  const { cfg, cluster, metrics, net } = b;
  const router = createRouter({
    self: cfg.name, ring: cluster.ring, joined: cluster.joined, locals, peerOf: cluster.peerOf,
    link: { request: (peer, msg, o) => net.request(peer, msg, o) }, log: b.log.child({ component: 'router' }),
    ringChange: cluster.ringChange, onForward: (kind) => metrics.forwards.inc({ kind }), dispatch: cluster.dispatch, clock: b.clock, signal: b.signal,
  });
  const fan = createFanout({
    self: cfg.name, ring: cluster.ring, joined: cluster.joined, locals, router, peerOf: cluster.peerOf,
    request: (peer, msg, o) => net.request(peer, msg, o), ringChange: cluster.ringChange, clock: b.clock, signal: b.signal,
    onRequest: () => metrics.fanoutRequests.inc(), gate: (from, to, kind) => locals.social.gate(from, to, kind),
  });
  return { router, fan };
}

type HomeDeps = { b: Base; push: Push; router: Router; fan: Fanout; replicator: Replicator; unconfirmed: Unconfirmed; serve: ReturnType<typeof serving>; nextMid: () => string };

/** The home roles: timelines, groups and contacts of the users and groups this node is home of. */
function wireHomeRoles(d: HomeDeps): Pick<Roles, 'home' | 'groups' | 'social'> {
  const { b, push, router, fan, replicator, unconfirmed, nextMid } = d;
  const { cfg, metrics, store, presence } = b;
  const replicated = (key: string) => replicator.wait(key);
  const social = createSocial({
    store, owns: (key) => home.serves(key), replicated, nextMid, midTime, clock: b.clock, signal: b.signal,
    handOver: (sender, dl) => home.handOver(sender, dl),
    lookup: (user) => presence.lookup(user), lastSeen: (user) => store.lastSeen(user), sessions: (user) => presence.sessions(user),
    watchers: (user) => presence.watchers(user), push, relay: (users, frame) => fan.relay(users, frame),
    infoAnywhere: (viewer, users) => router.info(viewer, users),
    admitAt: (to, from, kind, epoch) => router.admitAt(to, from, kind, epoch),
    revokeEverywhere: (users) => router.revokeEverywhere(users),
    limits: { maxContacts: cfg.maxContacts, maxPending: cfg.maxPendingRequests },
    log: b.log.child({ component: 'social' }),
  });
  const home: Home = createHome({
    social, store, presence, nextMid, midTime, now: () => b.clock.now(), clock: b.clock, signal: b.signal, push, owns: d.serve.owns, whyNot: d.serve.whyNot,
    deliverRemote: (dl) => router.deliverRemote(dl), postGroup: (group, posts) => router.postGroup(group, posts),
    relayRemote: (users, frame) => fan.relay(users, frame), castGroup: (group, from, frame) => router.castGroup(group, from, frame),
    replicated, replicating: () => b.cluster.ring().members.length > 1 && cfg.replicas > 1, readable: (user) => unconfirmed.limit(user),
    maxReadBytes: cfg.maxReadBytes, maxDevices: cfg.maxDevices, onLimit: (what) => metrics.limits.inc({ limit: what }),
    log: b.log.child({ component: 'home' }),
    onSent: (dup) => {
      if (dup) metrics.messagesDup.inc();
      else {
        metrics.messagesIn.inc();
        b.onAccepted();
      }
    },
  });
  const groups = createGroups({
    store, owns: (key) => home.serves(key), replicated, readable: (key) => unconfirmed.limit(key), nextMid, midTime, clock: b.clock, signal: b.signal,
    maxMembers: cfg.maxMembers, fanout: (items, still) => fan.fanout(items, still), ringChange: b.cluster.ringChange, relay: (users, frame) => fan.relay(users, frame),
    limits: { rate: cfg.groupRate, burst: cfg.groupBurst, backlog: cfg.groupBacklog, backlogBytes: cfg.groupBacklogBytes, typingFrames: cfg.groupTypingFrames },
    snapshotEvery: cfg.groupSnapshotEvents, onLimited: (reason) => metrics.groupLimited.inc({ reason }), onSnapshot: () => metrics.groupSnapshots.inc(),
    log: b.log.child({ component: 'groups' }),
  });
  return { home, groups, social };
}

/** Every role of the node but the client edge; `commits` is where the store's commits go. */
export function wireRoles(b: Base, commits: CommitListener[]): Roles {
  const { cfg, cluster, net } = b;
  const { custody, replicator } = wireReplica(b);
  // Pushes go to the gateway that holds the connection: this node's own, or a peer's.
  const pushRemote = createPushes((peer, msg) => net.send(peer, msg));
  const push: Push = (gw, conn, frame) => {
    if (gw === cfg.name) return b.pushLocal(conn, frame);
    const peer = cluster.peerOf(gw);
    if (peer) pushRemote(peer, conn, frame);
  };
  const locals = new LocalRoles();
  const { router, fan } = wireRouting(b, locals);
  const unconfirmed = new Unconfirmed();
  const nextMid = createMidGenerator(b.nodeTag, () => b.clock.now());
  const { home, groups, social } = wireHomeRoles({ b, push, router, fan, replicator, unconfirmed, serve: serving(b, custody), nextMid });
  locals.set({ local: home, groups, social });
  // Commits come only from the home, which serves once this is wired: the replicator first (it
  // queues what `wait` then waits for), then the contacts cache, then the pushes.
  const pushes = createCommitPush({ presence: b.presence, push, unconfirmed, replicated: (u) => replicator.wait(u) });
  commits.push((entries, changed) => replicator.committed(entries, changed), (entries) => social.committed(entries), (entries) => pushes(entries));
  const handoff = createHandoff({
    self: cfg.name, store: b.store, home, ring: cluster.ring, request: (peer, msg, o) => net.request(peer, msg, o),
    peerOf: cluster.peerOf, maxBody: cfg.maxBody, log: b.log.child({ component: 'handoff' }), vnodes: cfg.vnodes, replicas: cfg.replicas,
    complete: (k) => custody.complete(k), clock: b.clock, signal: b.signal,
    onProgress: (entries, users) => {
      b.metrics.handoffEntries.inc(entries);
      b.metrics.handoffUsers.inc(users);
    },
  });
  return { custody, replicator, handoff, router, fan, home, groups, social, unconfirmed, push };
}
