// One node: wires store, presence, home, gateway, ring and the client server, and owns their
// lifecycle (start, drain, stop).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createStore } from '../store/index.ts';
import type { Store } from '../store/index.ts';
import { createPresence } from '../presence/index.ts';
import { createRing } from '../ring/index.ts';
import { createAuth } from './auth.ts';
import type { Config } from './config.ts';
import { createGateway } from './gateway.ts';
import { createHome, pushCommitted } from './home.ts';
import type { Push } from './home.ts';
import { createMidGenerator, midTime, randomNodeTag } from './ids.ts';
import { createMetrics } from './metrics.ts';
import { createClientServer } from './server.ts';

export type ImNode = {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
};

/** The token secret: the configured one, else one generated once and kept in the data folder. */
export async function loadSecret(cfg: Config, log: Logger): Promise<string> {
  if (cfg.secret) return cfg.secret;
  const file = join(cfg.data, 'secret');
  try {
    const s = (await readFile(file, 'utf8')).trim();
    if (s) return s;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const s = randomBytes(32).toString('hex');
  await writeFile(file, s + '\n', { mode: 0o600 });
  log.info({ file }, 'generated a token secret (set IM_SECRET to share one)');
  return s;
}

async function nodeTag(store: Store): Promise<string> {
  let tag = await store.getMeta('node_tag');
  if (!tag) {
    tag = randomNodeTag((() => {
      const b = randomBytes(8);
      let i = 0;
      return () => b[i++]! / 256;
    })());
    await store.setMeta('node_tag', tag);
  }
  return tag;
}

export async function startNode(cfg: Config, log: Logger, onFatal: (e: Error) => void): Promise<ImNode> {
  await mkdir(cfg.data, { recursive: true });
  const secret = await loadSecret(cfg, log);
  const metrics = createMetrics(cfg.name);
  const now = () => Date.now();

  // Pushes go to gateways; with one node every gateway is this node's own.
  let deliver: Push = () => undefined;
  const push: Push = (gateway, conn, frame) => deliver(gateway, conn, frame);
  const presence = createPresence({ ttlMs: cfg.presenceTimeoutMs }, { clock: { now } });

  let accepted = 0;
  const t0 = performance.now();
  const store = await createStore({ file: join(cfg.data, 'store.db'), sync: cfg.sync }, {
    onCommit: (entries) => void pushCommitted(entries, presence, push),
    onBatch: ({ rows, ms }) => {
      metrics.storeCommit.observe(ms / 1000);
      metrics.storeBatch.observe(rows);
    },
    onFatal,
  });
  let known = 0;
  for (const _ of store.knownUsers()) known++;
  log.info({ file: join(cfg.data, 'store.db'), users: known, ms: Math.round(performance.now() - t0) }, 'store opened');

  const nextMid = createMidGenerator(await nodeTag(store), now);
  const home = createHome({
    store, presence, nextMid, midTime, now, push, log: log.child({ component: 'home' }),
    onSent: (dup) => {
      if (dup) metrics.messagesDup.inc();
      else {
        metrics.messagesIn.inc();
        accepted++;
      }
    },
  });
  const gateway = createGateway({
    name: cfg.name, config: cfg, homes: home, auth: createAuth({ secret, insecure: cfg.insecure }),
    metrics, log: log.child({ component: 'gateway' }), now,
  });
  deliver = (gw, conn, frame) => {
    if (gw === cfg.name) gateway.push(conn, frame);
  };

  const ring = createRing([cfg.name]);
  let state: 'starting' | 'serving' | 'draining' = 'starting';
  let url = '';
  const server = createClientServer({ maxFrame: cfg.maxFrame }, {
    accept: (ws) => gateway.accept(ws),
    onError: (e) => log.error({ err: e }, 'http handler failed'),
    routes: {
      healthz: () => ({ status: state === 'serving' ? 200 : 503, body: { ok: state === 'serving', node: cfg.name, state } }),
      cluster: () => {
        let owned = 0;
        for (const u of store.knownUsers()) if (ring.owner(u) === cfg.name) owned++;
        return {
          node: cfg.name,
          members: [{ name: cfg.name, peer: null, url, state: 'up' }],
          ring: { version: ring.version, vnodes: ring.vnodes, replicas: ring.replicas },
          owned,
          connections: gateway.size(),
          sessions: presence.sessionCount(),
          online: presence.users(),
        };
      },
      metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
    },
  });
  const port = await server.listen(cfg.host, cfg.port);
  url = cfg.publicUrl ?? `ws://${cfg.host === '0.0.0.0' ? '127.0.0.1' : cfg.host}:${port}/ws`;

  const sweepMs = Math.max(50, Math.min(1000, cfg.loginTimeoutMs / 4, cfg.idleTimeoutMs / 4));
  const sweeper = setInterval(() => gateway.sweep(), sweepMs);
  const ticker = setInterval(() => {
    home.renew(cfg.name);
    home.tick();
  }, Math.max(100, cfg.presenceTimeoutMs / 3));
  // One line a minute while there is traffic, so a log shows what the node is doing.
  let lastAccepted = 0;
  const stats = setInterval(() => {
    if (accepted === lastAccepted && gateway.size() === 0) return;
    log.info({ connections: gateway.size(), online: presence.users(), accepted: accepted - lastAccepted, perSecond: Math.round((accepted - lastAccepted) / 60) }, 'stats (last minute)');
    lastAccepted = accepted;
  }, 60_000);
  stats.unref();
  state = 'serving';
  if (cfg.insecure) log.warn('INSECURE MODE: logins are accepted without a token. For local development only.');
  log.info({ url, port, name: cfg.name }, 'listening');

  return {
    url,
    port,
    async stop() {
      if (state === 'draining') return;
      state = 'draining';
      log.info({ connections: gateway.size() }, 'draining: sending goaway to clients');
      clearInterval(sweeper);
      clearInterval(ticker);
      clearInterval(stats);
      await gateway.shutdown([], 2000);
      await server.close();
      await store.close();
      log.info('stopped');
    },
  };
}
