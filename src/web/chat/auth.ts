// Who the tab is and how it logs in: the node's mode (/healthz), development tokens (/dev/token),
// the login remembered in sessionStorage (a reload stays logged in, closing the tab forgets it) and
// the device id. Each tab is its own device: two tabs of one user both get every push, and neither
// replaces the other's connection.
import { isId } from '../../client/index.ts';

export type Health = { ok: boolean; node: string; state: string; insecure?: boolean };

/** What a login needs. `dev`: the token came from /dev/token, so it can be fetched again when it expires. */
export type Login = { user: string; token?: string; dev?: boolean };

const LOGIN_KEY = 'im.login';
const DEVICE_KEY = 'im.device';

/** A GET of this node's JSON that gives up after a while (a request stuck in the browser or the node must not hang the app). */
async function getJson(path: string, timeoutMs = 5000): Promise<{ ok: boolean; body: unknown }> {
  const r = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
  return { ok: r.ok, body: await r.json() };
}

/** The node's health (a 503 answers JSON too: `state` says why), asked up to three times. */
export async function health(): Promise<Health> {
  for (let i = 1; ; i++) {
    try {
      return (await getJson('/healthz')).body as Health;
    } catch (e) {
      if (i >= 3) throw e;
    }
  }
}

/** The client URLs of the members that are up (empty if the node cannot say). */
export async function nodeUrls(): Promise<string[]> {
  try {
    const r = await getJson('/nodes');
    if (!r.ok) return [];
    const j = r.body as { nodes?: unknown };
    return Array.isArray(j.nodes) ? j.nodes.filter((u): u is string => typeof u === 'string') : [];
  } catch {
    return [];
  }
}

/** The WebSocket URL of the node that served this page. */
export function ownWsUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/** A development token from a node in insecure mode, or undefined when there is none to get. */
export async function devToken(user: string): Promise<string | undefined> {
  try {
    const r = await getJson(`/dev/token?user=${encodeURIComponent(user)}`);
    if (!r.ok) return undefined;
    const j = r.body as { token?: unknown };
    return typeof j.token === 'string' ? j.token : undefined;
  } catch {
    return undefined;
  }
}

/** The claims of a JWT, read without checking it (the node checks it; we only want `sub` and `exp`). */
export function jwtClaims(token: string): { sub?: string; exp?: number } | undefined {
  const part = token.trim().split('.')[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json) as unknown;
    return claims && typeof claims === 'object' ? (claims as { sub?: string; exp?: number }) : undefined;
  } catch {
    return undefined;
  }
}

/** A pasted token's user id, or an error for people. */
export function tokenUser(token: string): { user: string } | { error: string } {
  const c = jwtClaims(token);
  if (!c) return { error: 'That is not a JWT (three base64url parts separated by dots).' };
  if (!isId(c.sub)) return { error: 'The token has no valid user id in its "sub".' };
  if (typeof c.exp === 'number' && c.exp * 1000 < Date.now()) return { error: 'The token has expired.' };
  return { user: c.sub };
}

/**
 * The token the session logs in with, each time it (re)connects. A development token is fetched
 * again when it is about to expire; if the node that served the page is gone by then, the old one
 * is used (another node may still take it, and a refusal shows the login screen).
 */
export function tokenSource(login: Login): (() => Promise<string>) | undefined {
  if (!login.token) return undefined;
  let token = login.token;
  return async () => {
    const exp = jwtClaims(token)?.exp;
    if (login.dev && typeof exp === 'number' && exp * 1000 - Date.now() < 5 * 60_000) {
      const fresh = await devToken(login.user);
      if (fresh) token = fresh;
    }
    return token;
  };
}

export function savedLogin(): Login | undefined {
  try {
    const v = JSON.parse(sessionStorage.getItem(LOGIN_KEY) ?? 'null') as Login | null;
    return v && isId(v.user) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function saveLogin(l: Login | undefined): void {
  if (l) sessionStorage.setItem(LOGIN_KEY, JSON.stringify(l));
  else sessionStorage.removeItem(LOGIN_KEY);
}

/** This tab's device id, made once per tab. `fresh` makes a new one (after another tab took this one over). */
export function deviceId(fresh = false): string {
  let d = fresh ? null : sessionStorage.getItem(DEVICE_KEY);
  if (!d || !isId(d)) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    d = `web-${Array.from(bytes, (b) => (b % 36).toString(36)).join('')}`;
    sessionStorage.setItem(DEVICE_KEY, d);
  }
  return d;
}
