// HTTP and WebSocket on the one client port: /ws upgrades, /healthz, /cluster, /metrics, the web
// pages (/ and /admin with their assets), the cluster page's data (/admin/api/*) and, in insecure
// mode only, development tokens (/dev/token).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { WebPages } from './web.ts';

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
  wss.on('connection', (ws) => c.accept(ws));
  const json = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  // Every boundary handles its own errors: a handler that throws answers 500, a socket reset is
  // logged at debug, and nothing a client sends reaches the process's uncaught handler.
  const server: Server = createServer((req, res) => {
    res.on('error', () => undefined);
    try {
      handle(req, res);
    } catch (e) {
      c.onError(e as Error);
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.destroy();
    }
  });
  function handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
    const [path = '/', query = ''] = (req.url ?? '/').split('?');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    if (c.pages?.handle(req, res, path)) return;
    if (path === '/dev/token' && c.routes.devToken) return devToken(res, new URLSearchParams(query).get('user'));
    if (path === '/nodes' && c.routes.nodes) return json(res, 200, { nodes: c.routes.nodes() });
    if (path === '/healthz') {
      const h = c.routes.healthz();
      return json(res, h.status, h.body);
    }
    const admin = path.startsWith('/admin/api/') ? path.slice(11) : undefined;
    if ((path === '/cluster' || path === '/metrics' || admin !== undefined) && !admitted(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="im-node admin"');
      return json(res, 401, { error: 'unauthorized', message: 'this page needs Authorization: Bearer <admin token> (--admin-token)' });
    }
    if (path === '/cluster') return json(res, 200, c.routes.cluster());
    if (admin !== undefined) {
      const answer = c.routes.admin?.(admin);
      if (!answer) return json(res, 404, { error: 'not found' });
      answer.then((body) => json(res, 200, body), (e: Error) => {
        c.onError(e);
        json(res, 500, { error: 'internal error' });
      });
      return;
    }
    if (path === '/metrics') {
      c.routes.metrics().then(
        (m) => (m ? res.writeHead(200, { 'content-type': m.contentType }).end(m.body) : json(res, 503, { error: 'starting' })),
        (e: Error) => {
          c.onError(e);
          json(res, 500, { error: 'metrics failed' });
        });
      return;
    }
    json(res, 404, { error: 'not found', paths: ['/', '/admin', '/ws', '/healthz', '/nodes', '/cluster', '/metrics'] });
  }
  function devToken(res: import('node:http').ServerResponse, user: string | null): void {
    if (!user || !/^[A-Za-z0-9_.@-]{1,64}$/.test(user)) return json(res, 400, { error: 'bad_request', message: 'user= must be a user id (1 to 64 of A-Z a-z 0-9 _ . @ -)' });
    c.routes.devToken!(user).then((token) => {
      res.setHeader('cache-control', 'no-store');
      json(res, 200, { user, token, note: 'development only: this node is in insecure mode' });
    }, (e: Error) => {
      c.onError(e);
      json(res, 500, { error: 'internal error' });
    });
  }
  // Compares digests, so neither the token's bytes nor its length leak through timing.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const adminDigest = init.adminToken !== undefined ? digest(init.adminToken) : undefined;
  function admitted(req: import('node:http').IncomingMessage): boolean {
    if (!adminDigest) return true;
    const h = req.headers.authorization ?? '';
    if (h.slice(0, 7).toLowerCase() !== 'bearer ') return false;
    return timingSafeEqual(digest(h.slice(7).trim()), adminDigest);
  }
  server.on('upgrade', (req, socket, head) => {
    // Before anything is written: a reset from the client must not become an uncaught error.
    socket.on('error', () => socket.destroy());
    if ((req.url ?? '').split('?')[0] !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    try {
      wss.handleUpgrade(req, socket, head, (ws) => {
        // Listens from the first moment: a connection refused below still gets frames and resets.
        ws.on('error', () => undefined);
        wss.emit('connection', ws, req);
      });
    } catch (e) {
      c.onError(e as Error);
      socket.destroy();
    }
  });
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
