// One node: opens its data folder, store and peer transport, wires the roles (roles.ts), serves
// the client port, and owns the lifecycle (start, join, drain, stop). Wiring only: what each part
// does lives in its own folder (docs/ARCHITECTURE.md).
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createStore } from '../store/index.ts';
import type { Store } from '../store/index.ts';
import { createPresence } from '../presence/index.ts';
import { createMembership } from '../membership/index.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { keptFile, lockDataDir, prepareDataDir } from '../data-dir/index.ts';
import type { DataDirLock } from '../data-dir/index.ts';
import { randomNodeTag } from '../home/index.ts';
import { createPeerNet, generateSwarmKey } from '../transport/index.ts';
import type { PeerNet } from '../transport/index.ts';
import { createClientServer } from '../http/server.ts';
import type { HttpRoutes } from '../http/server.ts';
import { loadWebPages } from '../http/web.ts';
import { mintToken } from '../gateway/auth.ts';
import { advertisedHost, checkSecret, parseHostPort } from './config.ts';
import type { Config } from './config.ts';
import { createMetrics } from './metrics.ts';
import type { Metrics } from './metrics.ts';
import { wireCluster, wireRoles } from './roles.ts';
import type { CommitListener } from './roles.ts';
import { wireEdge } from './edge.ts';
import type { Gateway } from '../gateway/index.ts';
import type { NodeState } from './status.ts';

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

export async function startNode(cfg: Config, log: Logger, onFatal: (e: Error) => void, clock: Clock = systemClock): Promise<ImNode> {
  await prepareDataDir(cfg.data, log);
  // First of all: a second process on this folder stops here, before it touches a file.
  const lock = await lockDataDir(cfg.data, log);
  try {
    return await startLocked(cfg, log, onFatal, lock, clock);
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/** The client port, listening first (answering 503 until `routes` are set) so that the node knows
 * its URL for membership. */
async function listen(cfg: Config, log: Logger, secret: string, clock: Clock, life: { state: NodeState; routes?: HttpRoutes; accept?: (ws: import('ws').WebSocket) => void }) {
  // Insecure mode shows in /healthz and /cluster (only when on, so a normal node's bodies are unchanged).
  const flagged = cfg.insecure ? { insecure: true } : {};
  const pages = loadWebPages(fileURLToPath(new URL('../../dist/web', import.meta.url)), { clock });
  if (!pages.built) log.warn('the web pages are not built (npm run build): / and /admin answer 503');
  const server = createClientServer({ maxFrame: cfg.maxFrame, ...(cfg.adminToken ? { adminToken: cfg.adminToken } : {}) }, {
    pages,
    accept: (ws) => (life.accept && life.state === 'serving' ? life.accept(ws) : ws.close(1013, 'starting or draining')),
    onError: (e) => log.error({ err: e }, 'http handler failed'),
    routes: {
      healthz: () => life.routes?.healthz() ?? { status: 503, body: { ok: false, node: cfg.name, state: life.state, ...flagged } },
      cluster: () => life.routes?.cluster() ?? { node: cfg.name, state: life.state, ...flagged },
      // While starting, metrics are not wired yet: 503, like /healthz.
      metrics: () => (life.routes ? life.routes.metrics() : Promise.resolve(undefined)),
      admin: (name) => life.routes?.admin?.(name),
      nodes: () => life.routes?.nodes?.() ?? [],
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
  return { server, port, url };
}

async function openNet(cfg: Config, log: Logger, metrics: Metrics, clock: Clock, signal: AbortSignal): Promise<PeerNet> {
  const psk = cfg.pskFile
    ? await readFile(cfg.pskFile)
    : await keptFile(join(cfg.data, 'swarm.key'), generateSwarmKey, log, 'a private network key (nodes that join need the same file: --psk-file)');
  // Peers dial the announce address; by default the p2p listen host, or for 0.0.0.0 this machine's.
  const announce = cfg.announce ? parseHostPort(cfg.announce, '--announce') : { host: advertisedHost(cfg.p2pHost) };
  const net = await createPeerNet(
    { dataDir: cfg.data, host: cfg.p2pHost, announce, port: cfg.p2pPort, psk, maxQueueMsgs: cfg.peerQueueMsgs, maxQueueBytes: cfg.peerQueueBytes },
    { log: log.child({ component: 'peer' }), onQueueFull: (kind) => metrics.peerQueueFull.inc({ kind }), clock, signal },
  );
  log.info({ peer: net.peerId, listening: net.listening, addrs: net.addrs }, 'peer host listening');
  return net;
}

async function openStore(cfg: Config, log: Logger, metrics: Metrics, commits: CommitListener[], onFatal: (e: Error) => void): Promise<Store> {
  const t0 = performance.now();
  const store = await createStore({ file: join(cfg.data, 'store.db'), sync: cfg.sync }, {
    onCommit: (entries, changed) => {
      for (const f of commits) f(entries, changed);
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
  return store;
}

async function startLocked(cfg: Config, log: Logger, onFatal: (e: Error) => void, lock: DataDirLock, clock: Clock): Promise<ImNode> {
  const secret = await loadSecret(cfg, log);
  const metrics = createMetrics(cfg.name);
  metrics.insecure.set(cfg.insecure ? 1 : 0);
  // Aborted last in stop(): every retry loop of every role ends with it.
  const stopping = new AbortController();
  const life: Parameters<typeof listen>[4] = { state: 'starting' };
  const { server, port, url } = await listen(cfg, log, secret, clock, life);
  const net = await openNet(cfg, log, metrics, clock, stopping.signal);
  const presence = createPresence({ ttlMs: cfg.presenceTimeoutMs }, { clock });
  const commits: CommitListener[] = [];
  const store = await openStore(cfg, log, metrics, commits, onFatal);
  const membership = createMembership(
    { name: cfg.name, peer: net.peerId, addrs: net.addrs, url, incarnation: clock.now() },
    { suspectAfterMs: cfg.suspectAfterMs, confirmTimeoutMs: cfg.confirmTimeoutMs },
    { clock },
  );
  // A node restarted without --join rejoins the members it knew (kept in its store), rather than
  // starting a cluster of its own that would claim every key; if none answers for a while, it
  // starts alone (logged loudly). Given seeds come first; the remembered ones help when those
  // seeds are gone.
  const remembered = (JSON.parse((await store.getMeta('peers')) ?? '[]') as string[]).filter((a) => !cfg.join.includes(a));
  if (remembered.length) log.info({ seeds: remembered }, 'rejoining the members this node knew before its restart');
  const seeds = { seeds: [...cfg.join, ...remembered], aloneAfterMs: cfg.join.length ? undefined : REJOIN_ALONE_AFTER_MS };
  const cluster = wireCluster(cfg, log, metrics, net, membership, seeds, clock, stopping.signal);
  let accepted = 0;
  // The gateway is made last (it calls the homes through routing), yet the home roles push to
  // the connections it holds: `own` takes those pushes, dropped until the gateway exists, when
  // it holds no connection yet anyway (the client port refuses them while starting).
  const own: { gateway?: Gateway } = {};
  const roles = wireRoles({
    cfg, log, metrics, clock, signal: stopping.signal, store, presence, net, cluster, nodeTag: await nodeTag(store),
    pushLocal: (conn, frame) => own.gateway?.push(conn, frame), onAccepted: () => void accepted++,
  }, commits);
  const edge = wireEdge({ cfg, log, metrics, secret, clock, signal: stopping.signal, url, store, presence, net, cluster, roles, life, accepted: () => accepted });
  own.gateway = edge.gateway;
  life.accept = (ws) => edge.gateway.accept(ws);
  cluster.start(async (members, inPlace) => {
    const r = await roles.handoff.acquire(members, inPlace);
    // What it holds now is the members' complete copies, or its own where they had none.
    roles.custody.reset();
    log.info(r, 'handoff: this node now holds what it will own');
  });
  edge.startTimers();
  life.state = 'serving';
  if (cfg.insecure) log.warn('INSECURE MODE: logins are accepted without a token. For local development only.');
  log.info({ url, port, name: cfg.name, p2p: net.addrs }, 'listening');

  return {
    url,
    port,
    async stop() {
      if (life.state === 'draining') return;
      life.state = 'draining';
      await edge.drain();
      await server.close();
      // Every role's retries end here: after the handoff and the goodbyes, which still needed them.
      stopping.abort(new Error('stopping'));
      cluster.stop();
      await net.stop();
      await store.close();
      await lock.release();
      log.info('stopped');
    },
  };
}
