// Requests to this node's admin endpoints with the admin token (when one is needed), and where the
// token lives: sessionStorage (gone with the tab), taken once from `#token=<t>` in the address so
// that a link can carry it, and then removed from the address bar (and from the history entry).

const KEY = 'imring-admin-token';

export class Unauthorized extends Error {
  constructor() {
    super('the admin token was refused');
    this.name = 'Unauthorized';
  }
}

/** Moves `#token=<t>` from the address into sessionStorage; call once at load. */
export function adoptTokenFromUrl(): void {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return;
  const t = decodeURIComponent(m[1]!).trim();
  if (t) setToken(t);
  history.replaceState(history.state, '', location.pathname + location.search);
}

// Where storage is disabled the token lives only as long as the page (asked again after a reload).
let memoryToken: string | null = null;

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

export function setToken(t: string): void {
  memoryToken = t;
  try {
    sessionStorage.setItem(KEY, t);
  } catch {
    // kept in memory only
  }
}

/** GET /admin/api/<name>: the JSON body; Unauthorized on 401, Error on anything else. */
export async function getJson<T>(name: string, timeoutMs: number): Promise<T> {
  const token = getToken();
  const res = await fetch(`/admin/api/${name}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    cache: 'no-store',
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()) as T;
}
