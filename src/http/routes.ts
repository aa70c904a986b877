// The HTTP routes of the client port: the web pages, /dev/token (insecure mode), /nodes, /healthz,
// and behind the admin token /cluster, /metrics and the cluster page's data (/admin/api/*).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpRoutes } from './server.ts';
import type { WebPages } from './web.ts';

export type RouteContext = {
  routes: HttpRoutes;
  pages?: WebPages;
  onError(e: Error): void;
  /** Whether the request may see the admin pages. */
  admitted(req: IncomingMessage): boolean;
};

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

/** One HTTP request. */
export function serve(x: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  // Every boundary handles its own errors: a handler that throws answers 500, a socket reset is
  // logged at debug, and nothing a client sends reaches the process's uncaught handler.
  res.on('error', () => undefined);
  try {
    handle(x, req, res);
  } catch (e) {
    x.onError(e as Error);
    if (!res.headersSent) json(res, 500, { error: 'internal error' });
    else res.destroy();
  }
}

function handle(x: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  const [path = '/', query = ''] = (req.url ?? '/').split('?');
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
  if (x.pages?.handle(req, res, path)) return;
  if (path === '/dev/token' && x.routes.devToken) return devToken(x, res, new URLSearchParams(query).get('user'));
  if (path === '/nodes' && x.routes.nodes) return json(res, 200, { nodes: x.routes.nodes() });
  if (path === '/healthz') {
    const h = x.routes.healthz();
    return json(res, h.status, h.body);
  }
  const admin = path.startsWith('/admin/api/') ? path.slice(11) : undefined;
  if ((path === '/cluster' || path === '/metrics' || admin !== undefined) && !x.admitted(req)) {
    res.setHeader('www-authenticate', 'Bearer realm="im-node admin"');
    return json(res, 401, { error: 'unauthorized', message: 'this page needs Authorization: Bearer <admin token> (--admin-token)' });
  }
  if (path === '/cluster') return json(res, 200, x.routes.cluster());
  if (admin !== undefined) return adminApi(x, res, admin);
  if (path === '/metrics') return metrics(x, res);
  json(res, 404, { error: 'not found', paths: ['/', '/admin', '/ws', '/healthz', '/nodes', '/cluster', '/metrics'] });
}

function adminApi(x: RouteContext, res: ServerResponse, name: string): void {
  const answer = x.routes.admin?.(name);
  if (!answer) return json(res, 404, { error: 'not found' });
  answer.then((body) => json(res, 200, body), (e: Error) => {
    x.onError(e);
    json(res, 500, { error: 'internal error' });
  });
}

function metrics(x: RouteContext, res: ServerResponse): void {
  x.routes.metrics().then(
    (m) => (m ? res.writeHead(200, { 'content-type': m.contentType }).end(m.body) : json(res, 503, { error: 'starting' })),
    (e: Error) => {
      x.onError(e);
      json(res, 500, { error: 'metrics failed' });
    });
}

function devToken(x: RouteContext, res: ServerResponse, user: string | null): void {
  if (!user || !/^[A-Za-z0-9_.@-]{1,64}$/.test(user)) return json(res, 400, { error: 'bad_request', message: 'user= must be a user id (1 to 64 of A-Z a-z 0-9 _ . @ -)' });
  x.routes.devToken!(user).then((token) => {
    res.setHeader('cache-control', 'no-store');
    json(res, 200, { user, token, note: 'development only: this node is in insecure mode' });
  }, (e: Error) => {
    x.onError(e);
    json(res, 500, { error: 'internal error' });
  });
}

/** Admits requests with `Authorization: Bearer <adminToken>`; every request when there is none. */
export function adminGate(adminToken: string | undefined): (req: IncomingMessage) => boolean {
  // Compares digests, so neither the token's bytes nor its length leak through timing.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const adminDigest = adminToken !== undefined ? digest(adminToken) : undefined;
  return (req) => {
    if (!adminDigest) return true;
    const h = req.headers.authorization ?? '';
    if (h.slice(0, 7).toLowerCase() !== 'bearer ') return false;
    return timingSafeEqual(digest(h.slice(7).trim()), adminDigest);
  };
}
