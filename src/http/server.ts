// HTTP and WebSocket on the one client port: /ws upgrades, /healthz, /cluster, /metrics, the web
// pages (/ and /admin with their assets), the cluster page's data (/admin/api/*) and, in insecure
// mode only, development tokens (/dev/token).
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { WebPages } from './web.ts';
import { adminGate, serve } from './routes.ts';
import type { RouteContext } from './routes.ts';

export type HttpRoutes = {
  healthz(): { status: number; body: unknown };
  cluster(): unknown;
  /** undefined while the node is starting (answered 503). */
  metrics(): Promise<{ contentType: string; body: string } | undefined>;
  /** The client URLs of the members that are up (public: clients may connect to any of them). */
  nodes?(): string[];
  /** The cluster page's data: `/admin/api/<name>` (behind the admin token like /cluster). */
  admin?(name: string): Promise<unknown> | undefined;
  /** A development token for a user; only given in insecure mode. */
  devToken?(user: string): Promise<string>;
};

export type ClientServer = {
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
};

export type ClientServerInit = {
  maxFrame: number;
  /** When set, /cluster and /metrics answer only `Authorization: Bearer <adminToken>`; /healthz stays open. */
  adminToken?: string;
};

export function createClientServer(init: ClientServerInit, c: { routes: HttpRoutes; pages?: WebPages; accept(ws: WebSocket): void; onError(e: Error): void }): ClientServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: init.maxFrame, perMessageDeflate: false });
  wss.on('connection', (ws: WebSocket) => c.accept(ws));
  const x: RouteContext = { routes: c.routes, ...(c.pages ? { pages: c.pages } : {}), onError: (e) => c.onError(e), admitted: adminGate(init.adminToken) };
  const server: Server = createServer((req, res) => serve(x, req, res));
  server.on('upgrade', (req, socket, head) => upgrade(wss, c.onError, req, socket, head));
  server.on('clientError', (_e, socket) => socket.destroy());
  return {
    listen: (host, port) =>
      new Promise((ok, ko) => {
        server.once('error', ko);
        server.listen(port, host, () => {
          server.off('error', ko);
          const addr = server.address();
          ok(typeof addr === 'object' && addr ? addr.port : port);
        });
      }),
    close: () =>
      new Promise((ok) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

/** A WebSocket upgrade: only /ws, and every error of the socket handled here. The listeners left
 * on a connection for its life are module functions, not closures of this call: a closure would
 * keep the upgrade request (headers and all, about 1.5 KiB) alive as long as the connection. */
function upgrade(wss: WebSocketServer, onError: (e: Error) => void, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  // Before anything is written: a reset from the client must not become an uncaught error.
  socket.on('error', destroySocket);
  if ((req.url ?? '').split('?')[0] !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
    return;
  }
  try {
    wss.handleUpgrade(req, socket, head, (ws) => {
      // Listens from the first moment: a connection refused below still gets frames and resets.
      ws.on('error', ignore);
      wss.emit('connection', ws);
    });
  } catch (e) {
    onError(e as Error);
    socket.destroy();
  }
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

function ignore(): void {}
