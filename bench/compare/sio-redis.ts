// Socket.IO with Redis: one redis-server (Debian's; no persistence) and N Socket.IO nodes
// (sio-node.ts, @socket.io/redis-adapter's classic adapter). A send's ack is the emit's ack
// callback, which the sender's node calls right after the broadcast: the publish to Redis is
// handed to its client, not awaited.
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { freePort, removeDir, runDir, startServer, stopServer, waitOutput, waitPort } from './procs.ts';
import type { Server } from './procs.ts';
import type { Adapter, Hooks, Link, Started, StartCtx, UserCtx } from './systems.ts';

const READY_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;

async function start(ctx: StartCtx): Promise<Started> {
  const dir = runDir('sio');
  const servers: Server[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    for (const s of servers.reverse()) await stopServer(s);
    removeDir(dir);
  })());
  try {
    const rp = await freePort();
    const redis = startServer('redis', 'redis-server', [
      '--port', String(rp), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--loglevel', 'warning',
    ]);
    servers.push(redis);
    await waitPort(rp, READY_TIMEOUT_MS);
    const endpoints: string[] = [];
    for (let i = 0; i < ctx.nodes; i++) {
      const port = await freePort();
      servers.push(startServer(`sio${i + 1}`, process.execPath, [join(import.meta.dirname, 'sio-node.ts'), String(port), `redis://127.0.0.1:${rp}`]));
      endpoints.push(`http://127.0.0.1:${port}`);
    }
    await Promise.all(servers.slice(1).map((s) => waitOutput(s, /^ready$/m, READY_TIMEOUT_MS)));
    return { endpoints, procs: servers.map((s) => ({ name: s.name, pid: s.pid })), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

function connect(u: UserCtx, hooks: Hooks): Promise<Link> {
  return new Promise((resolve, reject) => {
    const s = io(u.endpoint, {
      transports: ['websocket'], forceNew: true, multiplex: false, reconnection: false,
      timeout: CONNECT_TIMEOUT_MS, auth: { uid: String(u.uid) },
    });
    const to = String(u.partner);
    const ack = () => hooks.onAck();
    s.on('m', (body: string) => hooks.onBody(body));
    s.once('connect', () => {
      s.on('disconnect', (why) => hooks.onClose(why));
      resolve({ send: (body) => void s.emit('m', to, body, ack), close: () => void s.close() });
    });
    s.once('connect_error', (e) => reject(new Error(`user ${u.uid} at ${u.endpoint}: ${e.message}`)));
  });
}

export const sioRedis: Adapter = {
  about: 'Socket.IO 4 nodes with the Redis adapter, one redis-server without persistence: the ack right after the broadcast is handed to Redis; nothing stored',
  start,
  connect,
};
