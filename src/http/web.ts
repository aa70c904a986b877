// The pages a node serves on its client port: the chat app at `/`, the cluster page at `/admin`,
// and their bundled assets (built into dist/web by scripts/build.ts). Files are read once into
// memory (a few hundred KiB), gzipped once, and served with the right type and caching: the
// hashed assets are immutable for a year, the pages are revalidated on every load (ETag), so a
// rebuilt app reaches browsers at the next reload.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';

type File = { body: Buffer; gz?: Buffer; type: string; etag: string; cache: string; mtimeMs: number };

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.woff2': 'font/woff2',
};
const PAGES: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html', '/admin': 'admin.html', '/admin/': 'admin.html' };
const MAX_FILE = 8 * 1024 * 1024;
// The app talks to every node's /ws (a session reconnects to others), fetches only its own node.
const CSP = [
  "default-src 'self'", "connect-src 'self' ws: wss:", "img-src 'self' data: https:", "style-src 'self' 'unsafe-inline'",
  "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
].join('; ');

export type WebPages = {
  /** Answers the request if it names a page or an asset; false if it is not for us. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
  /** Whether the pages are built (the node logs a hint when they are not). */
  readonly built: boolean;
};

/** The files of `dir` (dist/web) in memory; `clock` (default: the system's) paces the reloads. */
export function loadWebPages(dir: string, opts: { clock?: Clock } = {}): WebPages {
  const files = new PageFiles(dir, opts.clock ?? systemClock);
  return {
    get built() {
      return files.has('index.html');
    },
    handle(req, res, path) {
      if (path === '/favicon.ico') {
        // Browsers ask every origin for one; the pages name none, so say "nothing" without a 404.
        res.writeHead(204, { 'cache-control': 'public, max-age=86400' }).end();
        return true;
      }
      const page = PAGES[path];
      const rel = page ?? (path.startsWith('/assets/') && /^\/assets\/[A-Za-z0-9._-]+$/.test(path) ? path.slice(1) : undefined);
      if (!rel) return false;
      const f = files.find(rel);
      if (!f) {
        if (!page) return false;
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
        res.end('The web pages are not built. Run `npm run build` (npm install and npm start do it), then reload.\n');
        return true;
      }
      serveFile(req, res, f, page !== undefined);
      return true;
    },
  };
}

/** The built files, read and gzipped once, and read again after a rebuild. */
class PageFiles {
  readonly #dir: string;
  readonly #clock: Clock;
  readonly #files = new Map<string, File>();
  #lastReload = 0;

  constructor(dir: string, clock: Clock) {
    this.#dir = dir;
    this.#clock = clock;
    this.#load();
  }

  has(rel: string): boolean {
    return this.#files.has(rel);
  }

  // A rebuild while the node runs (new asset names, new pages): look again, at most once a second,
  // when a file is missing or a page on disk is newer than the one in memory.
  find(rel: string): File | undefined {
    let f = this.#files.get(rel);
    if (this.#clock.now() - this.#lastReload > 1000) {
      if (this.#stale(rel, f)) {
        this.#load();
        f = this.#files.get(rel);
      }
      this.#lastReload = this.#clock.now();
    }
    return f;
  }

  #stale(rel: string, f: File | undefined): boolean {
    if (!f) return true;
    if (rel.startsWith('assets/')) return false;
    try {
      return statSync(join(this.#dir, rel)).mtimeMs !== f.mtimeMs;
    } catch {
      return true;
    }
  }

  #load(): void {
    this.#files.clear();
    if (!existsSync(this.#dir)) return;
    for (const rel of walk(this.#dir, '')) {
      const full = join(this.#dir, rel);
      const st = statSync(full);
      if (st.size > MAX_FILE) continue;
      const body = readFileSync(full);
      const ext = extname(rel);
      const type = TYPES[ext] ?? 'application/octet-stream';
      const hashed = rel.startsWith('assets/');
      this.#files.set(rel, {
        body,
        gz: /text|json|svg/.test(type) && body.length > 1024 ? gzipSync(body) : undefined,
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        cache: hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
        mtimeMs: st.mtimeMs,
      });
    }
  }
}

/** One file, gzipped when the client takes it, 304 when its ETag is the client's. */
function serveFile(req: IncomingMessage, res: ServerResponse, f: File, page: boolean): void {
  const headers: Record<string, string> = {
    'content-type': f.type, 'cache-control': f.cache, etag: f.etag, 'x-content-type-options': 'nosniff', vary: 'accept-encoding',
  };
  if (page) Object.assign(headers, { 'content-security-policy': CSP, 'referrer-policy': 'no-referrer' });
  if (req.headers['if-none-match'] === f.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  const gzip = f.gz && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  if (gzip) headers['content-encoding'] = 'gzip';
  const body = gzip ? f.gz! : f.body;
  headers['content-length'] = String(body.length);
  res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : body);
}

function* walk(dir: string, prefix: string): Generator<string> {
  for (const name of readdirSync(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(join(dir, rel)).isDirectory()) yield* walk(dir, rel);
    else yield rel;
  }
}
