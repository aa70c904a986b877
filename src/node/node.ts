// One node: wires store, presence, home, router, cluster (membership over libp2p), gateway and
// the client server, and owns their lifecycle (start, join, drain, stop).
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createStore } from '../store/index.ts';
import type { Store } from '../store/index.ts';
import { createPresence } from '../presence/index.ts';
import { createMembership } from '../membership/index.ts';
import type { Delivery } from '../protocol/peer.ts';
import { createAuth, mintToken } from '../gateway/auth.ts';
import { createAdminApi } from '../http/admin.ts';
import { loadWebPages } from '../http/web.ts';
import { advertisedHost, checkSecret, parseHostPort } from './config.ts';
import type { Config } from './config.ts';
import { keptFile, lockDataDir, prepareDataDir } from '../data-dir/index.ts';
import type { DataDirLock } from '../data-dir/index.ts';
import { createCluster } from '../cluster/cluster.ts';
import { createGateway } from '../gateway/gateway.ts';
import type { Gateway } from '../gateway/gateway.ts';
import { createHome, pushCommitted } from '../home/home.ts';
import { Unconfirmed } from '../home/unconfirmed.ts';
import type { Push } from '../home/home.ts';
import { createMidGenerator, midTime, randomNodeTag } from '../home/ids.ts';
import { createMetrics } from './metrics.ts';
import { createPeerNet, generateSwarmKey } from '../transport/index.ts';
import { createRouter } from '../cluster/router.ts';
import { createGroups } from '../group-home/groups.ts';
import { createSocial, socialKey } from '../social/social.ts';
import type { Social } from '../social/social.ts';
import { createFanout } from '../group-home/fanout.ts';
import type { Fanout } from '../group-home/fanout.ts';
import type { Router } from '../cluster/router.ts';
import { createClientServer } from '../http/server.ts';
import { createUpkeep } from '../gateway/upkeep.ts';
import { connectionsWithin } from './open-files.ts';
import { createPushes } from '../home/pushes.ts';
import { createHandoff } from '../replica/handoff.ts';
import { createReplicator } from '../replica/replicator.ts';
import { createCustody } from '../replica/custody.ts';
import type { Replicator } from '../replica/replicator.ts';
import type { Handoff } from '../replica/handoff.ts';

const REJOIN_ALONE_AFTER_MS = 15_000;

export type ImNode = {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
};

/** The token secret: the configured one, else one generated once and kept in the data folder.
 * A kept secret shorter than 32 bytes (written by hand or by an older version) is a ConfigError. */
export async function loadSecret(cfg: Config, log: Logger): Promise<string> {
  if (cfg.secret) return cfg.secret;
  const file = join(cfg.data, 'secret');
  const s = (await keptFile(file, () => randomBytes(32).toString('hex') + '\n', log, 'a token secret (set IM_SECRET to share one)')).toString('utf8').trim();
  checkSecret(s, `the secret in ${file}`);
  return s;
}

async function nodeTag(store: Store): Promise<string> {
  let tag = await store.getMeta('node_tag');
  if (!tag) {
    const b = randomBytes(8);
    let i = 0;
    tag = randomNodeTag(() => b[i++]! / 256);
    await store.setMeta('node_tag', tag);
  }
  return tag;
}

export async function startNode(cfg: Config, log: Logger, onFatal: (e: Error) => void): Promise<ImNode> {
  await prepareDataDir(cfg.data, log);
  // First of all: a second process on this folder stops here, before it touches a file.
  const lock = await lockDataDir(cfg.data, log);
  try {
    return await startLocked(cfg, log, onFatal, lock);
  } catch (e) {
    await lock.release();
    throw e;
  }
}

async function startLocked(cfg: Config, log: Logger, onFatal: (e: Error) => void, lock: DataDirLock): Promise<ImNode> {
  const secret = await loadSecret(cfg, log);
  const psk = cfg.pskFile
    ? await readFile(cfg.pskFile)
    : await keptFile(join(cfg.data, 'swarm.key'), generateSwarmKey, log, 'a private network key (nodes that join need the same file: --psk-file)');
  const metrics = createMetrics(cfg.name);
  metrics.insecure.set(cfg.insecure ? 1 : 0);
  const now = () => Date.now();
  let accepted = 0;

  let gateway: Gateway | undefined;
  let state: 'starting' | 'serving' | 'draining' = 'starting';

  // Insecure mode shows in /healthz and /cluster (only when on, so a normal node's bodies are unchanged).
  const flagged = cfg.insecure ? { insecure: true } : {};
  // The client port listens first (answering 503) so that the node knows its URL for membership.
  let routes: Parameters<typeof createClientServer>[1]['routes'] | undefined;
  const pages = loadWebPages(fileURLToPath(new URL('../../dist/web', import.meta.url)));
  if (!pages.built) log.warn('the web pages are not built (npm run build): / and /admin answer 503');
  const server = createClientServer({ maxFrame: cfg.maxFrame, ...(cfg.adminToken ? { adminToken: cfg.adminToken } : {}) }, {
    pages,
    accept: (ws) => (gateway && state === 'serving' ? gateway.accept(ws) : ws.close(1013, 'starting or draining')),
    onError: (e) => log.error({ err: e }, 'http handler failed'),
    routes: {
      healthz: () => routes?.healthz() ?? { status: 503, body: { ok: false, node: cfg.name, state, ...flagged } },
      cluster: () => routes?.cluster() ?? { node: cfg.name, state, ...flagged },
      // While starting, metrics are not wired yet: 503, like /healthz.
      metrics: () => (routes ? routes.metrics() : Promise.resolve(undefined)),
      admin: (name) => routes?.admin?.(name),
      nodes: () => routes?.nodes?.() ?? [],
      // Insecure mode only: a token for anyone, so the web app logs in the way production does.
      ...(cfg.insecure ? {
        devToken: (user: string) => mintToken(secret, user, {
          expiresIn: '1h',
          ...(cfg.tokenAudience !== undefined ? { audience: cfg.tokenAudience } : {}),
          ...(cfg.tokenIssuer !== undefined ? { issuer: cfg.tokenIssuer } : {}),
        }),
      } : {}),
    },
  });
  const port = await server.listen(cfg.host, cfg.port);
  const clientHost = advertisedHost(cfg.host);
  const url = cfg.publicUrl ?? `ws://${clientHost.includes(':') ? `[${clientHost}]` : clientHost}:${port}/ws`;
  // Peers dial the announce address; by default the p2p listen host, or for 0.0.0.0 this machine's.
  const announce = cfg.announce ? parseHostPort(cfg.announce, '--announce') : { host: advertisedHost(cfg.p2pHost) };

  const net = await createPeerNet(
    { dataDir: cfg.data, host: cfg.p2pHost, announce, port: cfg.p2pPort, psk, maxQueueMsgs: cfg.peerQueueMsgs, maxQueueBytes: cfg.peerQueueBytes },
    { log: log.child({ component: 'peer' }), onQueueFull: (kind) => metrics.peerQueueFull.inc({ kind }) },
  );
  log.info({ peer: net.peerId, listening: net.listening, addrs: net.addrs }, 'peer host listening');
  const presence = createPresence({ ttlMs: cfg.presenceTimeoutMs }, { clock: { now } });

  const unconfirmed = new Unconfirmed();
  const t0 = performance.now();
  const store = await createStore({ file: join(cfg.data, 'store.db'), sync: cfg.sync }, {
    onCommit: (entries, changed) => {
      // Commits come only from the home, which serves after the replicator below exists.
      replicator!.committed(entries, changed);
      social?.committed(entries);
      // Pushed once on every copy, not at the home's commit: a device must never see an entry
      // that a crash of the home could take back (its seq then given to another message).
      const byUser = new Map<string, typeof entries>();
      for (const e of entries) {
        const l = byUser.get(e.user);
        if (l) l.push(e);
        else byUser.set(e.user, [e]);
      }
      for (const [u, es] of byUser) {
        // Not replicated (no longer home): not pushed; the device gets what survives by sync.
        const acked = replicator!.wait(u);
        unconfirmed.track(u, es[0]!.seq, acked);
        acked.then(() => pushCommitted(es, presence, push), () => undefined);
      }
    },
    onBatch: ({ rows, ms }) => {
      metrics.storeCommit.observe(ms / 1000);
      metrics.storeBatch.observe(rows);
    },
    onFatal,
  });
  let known = 0;
  for (const _ of store.knownUsers()) known++;
  log.info({ file: join(cfg.data, 'store.db'), users: known, ms: Math.round(performance.now() - t0) }, 'store opened');
  const membership = createMembership(
    { name: cfg.name, peer: net.peerId, addrs: net.addrs, url, incarnation: Date.now() },
    { suspectAfterMs: cfg.suspectAfterMs, confirmTimeoutMs: cfg.confirmTimeoutMs },
    { clock: { now } },
  );
  // A node restarted without --join rejoins the members it knew (kept in its store), rather than
  // starting a cluster of its own that would claim every key; if none answers for a while, it
  // starts alone (logged loudly).
  // Given seeds come first; the remembered ones help when those seeds are gone.
  const remembered = (JSON.parse((await store.getMeta('peers')) ?? '[]') as string[]).filter((a) => !cfg.join.includes(a));
  if (remembered.length) log.info({ seeds: remembered }, 'rejoining the members this node knew before its restart');
  const cluster = createCluster(
    {
      seeds: [...cfg.join, ...remembered], aloneAfterMs: cfg.join.length ? undefined : REJOIN_ALONE_AFTER_MS,
      vnodes: cfg.vnodes, replicas: cfg.replicas, maxBody: cfg.maxBody,
      beforeJoin: async (members, inPlace) => {
        const r = await handoff!.acquire(members, inPlace);
        // What it holds now is the members' complete copies, or its own where they had none.
        custody.reset();
        log.info(r, 'handoff: this node now holds what it will own');
      },
    },
    {
      net, membership, log: log.child({ component: 'cluster' }),
      onEvent: (type) => metrics.membership.inc({ type }),
      onInvalidFrame: () => metrics.invalidPeerFrames.inc(),
      onRefused: (type, reason) => metrics.peerRefused.inc({ type, reason }),
    },
  );

  // First of the ring listeners: the others ask it which users this node may serve.
  const custody = createCustody(cfg.name, () => cluster.ring().replicas);
  cluster.onRingChanged((ring, prev, died) => {
    custody.changed(prev, ring, died);
    if (died.length) log.warn({ died }, 'members died: the users only they held stay unavailable until one of them is back');
  });

  // Pushes go to the gateway that holds the connection: this node's own, or a peer's.
  const pushRemote = createPushes((peer, msg) => net.send(peer, msg));
  const push: Push = (gw, conn, frame) => {
    if (gw === cfg.name) return gateway?.push(conn, frame);
    const peer = cluster.peerOf(gw);
    if (peer) pushRemote(peer, conn, frame);
  };

  let handoff: Handoff | undefined;
  let replicator: Replicator | undefined;
  const owns = (user: string) => cluster.joined() && cluster.ring().owner(user) === cfg.name;
  // Serves a user: its home, holding the write lease (hears a majority), with a complete copy.
  const serving = (user: string) => owns(user) && cluster.lease() && custody.complete(user);
  const whyNot = (user: string): string => {
    if (!cluster.joined()) return 'this node is not a joined member of the cluster (joining, or rejoining after it was cut off)';
    if (cluster.ring().owner(user) !== cfg.name) return `${user} is moving to another node`;
    if (!cluster.lease()) return 'this node cannot hear a majority of the cluster: it confirms no write and serves no read until it does; use another node';
    if (!custody.complete(user)) return `every node that held ${user} completely is unreachable: ${user} is unavailable until one of them is back`;
    return `${user} is moving to another node`;
  };
  let deliverRemote: ((d: Delivery) => Promise<void>) | undefined;
  // Created below; the home and the group home reach the cluster through them.
  let router: Router | undefined;
  let fan: Fanout | undefined;
  const nextMid = createMidGenerator(await nodeTag(store), now);
  let social: Social | undefined;
  const home = createHome({
    social: {
      presenceFor: (user, viewer, p) => social!.presenceFor(user, viewer, p),
      presenceChanged: (user, online) => social!.presenceChanged(user, online),
      load: (user) => social!.load(user),
      gate: (from, to, kind) => social!.gate(from, to, kind),
    },
    store, presence, nextMid, midTime, now, push, owns: serving, whyNot,
    deliverRemote: (d) => deliverRemote!(d),
    postGroup: (group, posts) => router!.postGroup(group, posts),
    relayRemote: (users, frame) => fan!.relay(users, frame),
    castGroup: (group, from, frame) => router!.castGroup(group, from, frame),
    replicated: (user) => replicator!.wait(user),
    replicating: () => cluster.ring().members.length > 1 && cfg.replicas > 1,
    readable: (user) => unconfirmed.limit(user),
    maxReadBytes: cfg.maxReadBytes, maxDevices: cfg.maxDevices, onLimit: (what) => metrics.limits.inc({ limit: what }),
    log: log.child({ component: 'home' }),
    onSent: (dup) => {
      if (dup) metrics.messagesDup.inc();
      else {
        metrics.messagesIn.inc();
        accepted++;
      }
    },
  });
  const groups = createGroups({
    store, owns: (key) => home.serves(key), replicated: (key) => replicator!.wait(key), readable: (key) => unconfirmed.limit(key), nextMid, midTime,
    maxMembers: cfg.maxMembers, fanout: (items, still) => fan!.fanout(items, still), ringChange: cluster.ringChange, relay: (users, frame) => fan!.relay(users, frame),
    limits: { rate: cfg.groupRate, burst: cfg.groupBurst, backlog: cfg.groupBacklog, backlogBytes: cfg.groupBacklogBytes, typingFrames: cfg.groupTypingFrames },
    snapshotEvery: cfg.groupSnapshotEvents, onLimited: (reason) => metrics.groupLimited.inc({ reason }), onSnapshot: () => metrics.groupSnapshots.inc(),
    log: log.child({ component: 'groups' }),
  });
  social = createSocial({
    store, owns: (key) => home.serves(key), replicated: (key) => replicator!.wait(key), nextMid, midTime, now,
    handOver: (sender, d) => home.handOver(sender, d),
    lookup: (user) => presence.lookup(user), lastSeen: (user) => store.lastSeen(user), sessions: (user) => presence.sessions(user),
    watchers: (user) => presence.watchers(user), push, relay: (users, frame) => fan!.relay(users, frame),
    infoAnywhere: (viewer, users) => router!.info(viewer, users),
    admitAt: (to, from, kind) => router!.admitAt(to, from, kind),
    revokeEverywhere: (users) => router!.revokeEverywhere(users),
    limits: { maxContacts: cfg.maxContacts, maxPending: cfg.maxPendingRequests },
    log: log.child({ component: 'social' }),
  });
  router = createRouter({
    self: cfg.name, ring: cluster.ring, joined: cluster.joined, local: home, groups, social, peerOf: cluster.peerOf,
    link: { request: (peer, msg, o) => net.request(peer, msg, o) }, log: log.child({ component: 'router' }),
    ringChange: cluster.ringChange, onForward: (kind) => metrics.forwards.inc({ kind }),
  });
  deliverRemote = router.deliverRemote;
  fan = createFanout({
    self: cfg.name, ring: cluster.ring, joined: cluster.joined, local: home, router, peerOf: cluster.peerOf,
    request: (peer, msg, o) => net.request(peer, msg, o), ringChange: cluster.ringChange,
    onRequest: () => metrics.fanoutRequests.inc(), gate: (from, to, kind) => social!.gate(from, to, kind),
  });
  const homes = { ...router, group: fan.group, typing: fan.typing, receipts: fan.receipts };
  const maxConnections = connectionsWithin(cfg.maxConnections);
  if (maxConnections < cfg.maxConnections) log.warn({ wanted: cfg.maxConnections, limit: maxConnections }, 'client connections capped below the open-file limit (raise ulimit -n to hold more)');
  const gw = createGateway({
    name: cfg.name, config: { ...cfg, maxConnections }, homes, social: router, auth: createAuth({
      secret, insecure: cfg.insecure, maxTokenLifeS: cfg.maxTokenLifeS,
      ...(cfg.tokenAudience !== undefined ? { audience: cfg.tokenAudience } : {}),
      ...(cfg.tokenIssuer !== undefined ? { issuer: cfg.tokenIssuer } : {}),
    }),
    metrics, log: log.child({ component: 'gateway' }), now,
    others: () => cluster.members().filter((m) => m.name !== cfg.name && m.state === 'up').map((m) => m.url),
    turnAway: () => (cluster.cutOff() ? { reason: 'minority', nodes: unheard() } : undefined),
  });
  gateway = gw;

  cluster.onRequest((fromName, req) => {
    // A node cut off from the majority may hold stale data: it hands none to a (re)joining node.
    if (req.t === 'handoff') return cluster.lease() ? handoff!.serve(req) : Promise.resolve({ t: 'fail', code: 'unavailable', message: `${cfg.name} cannot hear a majority of the cluster` });
    if (req.t === 'absorb') return handoff!.absorb(req.page);
    if (req.t === 'replicate') return replicator!.apply(fromName, req.page);
    return router!.handle(fromName, req);
  });
  cluster.onMessage((_fromName, msg) => {
    if (msg.t === 'push') gw.push(msg.conn, msg.frame);
    else if (msg.t === 'pushmsg') for (const [conn, seq] of msg.to) gw.push(conn, { op: 'msg', seq, ...msg.msg });
  });
  cluster.onMemberGone((name) => home.dropGateway(name));
  // Cut off from the majority: clients go where they can be served (the members it cannot hear,
  // which are on the other side), rather than wait here for unavailable answers.
  const unheard = () => {
    const others = cluster.members().filter((m) => m.name !== cfg.name && m.state !== 'dead');
    const far = others.filter((m) => m.state === 'suspect');
    return (far.length ? far : others).map((m) => m.url);
  };
  cluster.onMajority((majority) => {
    if (majority) return;
    const nodes = unheard();
    const n = gw.goaway('minority', nodes);
    log.warn({ clients: n, nodes }, 'minority: clients sent to the members this node cannot hear');
  });

  replicator = createReplicator({
    self: cfg.name, store, ring: cluster.ring, joined: cluster.joined, peerOf: cluster.peerOf,
    request: (peer, msg, o) => net.request(peer, msg, o), ringChange: cluster.ringChange,
    log: log.child({ component: 'replicator' }),
    lease: cluster.lease, complete: (u) => custody.complete(u), onFilled: (u) => custody.filled(u),
    onBatch: (_to, entries) => metrics.replicatedEntries.inc(entries),
    onUrgentExpired: () => metrics.replicationUrgentExpired.inc(),
  });
  handoff = createHandoff({
    self: cfg.name, store, home, ring: cluster.ring, request: (peer, msg, o) => net.request(peer, msg, o),
    peerOf: cluster.peerOf, maxBody: cfg.maxBody, log: log.child({ component: 'handoff' }), vnodes: cfg.vnodes, replicas: cfg.replicas,
    complete: (k) => custody.complete(k),
    onProgress: (entries, users) => {
      metrics.handoffEntries.inc(entries);
      metrics.handoffUsers.inc(users);
    },
  });
  const upkeep = createUpkeep({
    self: cfg.name, ring: () => (cluster.joined() ? cluster.ring() : undefined), peerOf: cluster.peerOf,
    request: (peer, msg) => net.request(peer, msg), home, homes, sessions: gw.sessions, watches: gw.watches,
    log: log.child({ component: 'upkeep' }),
  });
  cluster.onRingChanged(() => {
    const peers = cluster.members().filter((m) => m.name !== cfg.name && m.state !== 'dead').flatMap((m) => m.addrs.slice(0, 1));
    if (peers.length) void store.setMeta('peers', JSON.stringify(peers)).catch(() => undefined);
    void handoff!.ringChanged(cluster.ring());
    replicator!.ringChanged();
    groups.ringChanged();
    social!.ringChanged();
    const dropped = presence.forget(owns);
    if (dropped) log.info({ users: dropped }, 'presence of users now homed elsewhere dropped here');
    void upkeep.ringChanged();
  });

  // Copies a crash kept from reaching other homes: hand them over once joined, then now and then.
  let replaying = false;
  const replayOutbox = async () => {
    if (replaying || !cluster.joined() || state === 'draining') return;
    replaying = true;
    try {
      const r = await home.replayOutbox();
      if (r.delivered || r.failed) log.info(r, 'outbox replayed');
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'outbox replay failed');
    } finally {
      replaying = false;
    }
  };
  cluster.onRingChanged(() => void replayOutbox());

  routes = {
    healthz: () => {
      // Cut off from the majority it serves nothing: a load balancer should send clients elsewhere.
      const minority = cluster.joined() && cluster.cutOff();
      const ok = state === 'serving' && cluster.joined() && !minority;
      const shown = state !== 'serving' || ok ? state : minority ? 'minority' : 'joining';
      return { status: ok ? 200 : 503, body: { ok, node: cfg.name, state: shown, ...flagged } };
    },
    cluster: () => {
      const ring = cluster.ring();
      let owned = 0;
      for (const u of store.knownUsers()) if (ring.owner(u) === cfg.name) owned++;
      return {
        node: cfg.name,
        ...flagged,
        peer: net.peerId,
        joined: cluster.joined(),
        majority: cluster.hasMajority(),
        lease: cluster.lease(),
        custody: custody.view(),
        members: cluster.members().map((m) => ({ name: m.name, peer: m.peer, url: m.url, addrs: m.addrs, state: m.state, incarnation: m.incarnation })),
        ring: { version: ring.version, vnodes: ring.vnodes, replicas: ring.replicas, members: ring.members },
        owned,
        // Work in flight that operators may want to see finish before the next change.
        migrations: {
          replicationQueued: replicator!.pending(), replicationBehind: replicator!.behind(),
          replication: replicator!.progress(), handoffsOut: handoff!.outgoing(), copying: handoff!.copying() ?? null,
        },
        groups: groups.progress(),
        connections: gw.size(),
        sessions: presence.sessionCount(),
        online: presence.users(),
        // Counters since start, for rates: messages accepted here as the sender's home, peer bytes.
        traffic: peerTraffic(accepted),
      };
    },
    nodes: () => cluster.members().filter((m) => m.state === 'up').map((m) => m.url),
    admin: createAdminApi({
      ring: () => cluster.ring(),
      members: () => cluster.members(),
      self: () => routes!.cluster() as { node: string },
      ...(cfg.adminToken ? { adminToken: cfg.adminToken } : {}),
    }),
    metrics: async () => {
      metrics.lease.set(cluster.lease() ? 1 : 0);
      metrics.custodyDeaths.set(custody.view().deaths);
      metrics.handoffsInFlight.set(handoff!.outgoing().length + (handoff!.copying() ? 1 : 0));
      metrics.replicationQueued.set(replicator!.pending());
      metrics.replicationBehind.set(replicator!.behind());
      metrics.groupFanoutBehind.set(groups.progress().fanoutBehind);
      for (const s of net.stats()) {
        const name = cluster.nameOf(s.peer) ?? s.peer;
        metrics.peerFrames.set({ peer: name, dir: 'out' }, s.framesOut);
        metrics.peerFrames.set({ peer: name, dir: 'in' }, s.framesIn);
        metrics.peerBytes.set({ peer: name, dir: 'out' }, s.bytesOut);
        metrics.peerBytes.set({ peer: name, dir: 'in' }, s.bytesIn);
        metrics.peerMsgs.set({ peer: name, dir: 'out' }, s.msgsOut);
        metrics.peerMsgs.set({ peer: name, dir: 'in' }, s.msgsIn);
      }
      return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
    },
  };

  function peerTraffic(messages: number) {
    let bytesIn = 0;
    let bytesOut = 0;
    for (const s of net.stats()) {
      bytesIn += s.bytesIn;
      bytesOut += s.bytesOut;
    }
    return { at: Date.now(), messages, peerBytesIn: bytesIn, peerBytesOut: bytesOut };
  }

  cluster.start();
  const sweepMs = Math.max(50, Math.min(1000, cfg.loginTimeoutMs / 4, cfg.idleTimeoutMs / 4));
  const sweeper = setInterval(() => gw.sweep(), sweepMs);
  const ticker = setInterval(() => void upkeep.renew(), Math.max(100, cfg.presenceTimeoutMs / 3));
  const outboxTimer = setInterval(() => void replayOutbox(), 10_000);
  // One line a minute while there is traffic, so a log shows what the node is doing.
  let lastAccepted = 0;
  const stats = setInterval(() => {
    if (accepted === lastAccepted && gw.size() === 0) return;
    log.info({ connections: gw.size(), online: presence.users(), accepted: accepted - lastAccepted, perSecond: Math.round((accepted - lastAccepted) / 60) }, 'stats (last minute)');
    lastAccepted = accepted;
  }, 60_000);
  stats.unref();
  state = 'serving';
  if (cfg.insecure) log.warn('INSECURE MODE: logins are accepted without a token. For local development only.');
  log.info({ url, port, name: cfg.name, p2p: net.addrs }, 'listening');

  return {
    url,
    port,
    async stop() {
      if (state === 'draining') return;
      state = 'draining';
      const others = cluster.members().filter((m) => m.name !== cfg.name && m.state === 'up').map((m) => m.url);
      log.info({ connections: gw.size(), others: others.length }, 'draining: leaving the cluster, sending goaway to clients');
      clearInterval(sweeper);
      clearInterval(ticker);
      clearInterval(outboxTimer);
      clearInterval(stats);
      // Hand every user this node owns or replicates to its next holders around leaving the ring.
      let announced = false;
      const announce = async () => {
        announced = true;
        await cluster.leave();
      };
      try {
        await handoff!.release(announce);
      } catch (e) {
        log.error({ err: (e as Error).message }, 'leave: handoff failed; the users it did not reach stay on this node\'s disk');
      }
      if (!announced) await cluster.leave();
      await gw.shutdown(others, 2000);
      await server.close();
      cluster.stop();
      await net.stop();
      await store.close();
      await lock.release();
      log.info('stopped');
    },
  };
}
