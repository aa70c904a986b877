// One WebSocket to one node: requests matched to replies by id, pushed events to listeners.
// It uses only the standard WebSocket interface, so the same code runs in browsers and in Node
// (Node 22+ has a global WebSocket; the `ws` package can be passed in instead). ImSession builds
// the resilient session (reconnect, replay, resend) on top of it.
import { Emitter } from './emitter.ts';
import type {
  Contact, ContactOp, ContactsReply, ErrorCode, GroupReply, MsgEvent, MsgsReply, OkReply, PongReply, PresenceReply,
  PrivacySettings, ProfileFields, ProfilesReply, ReceiptsReply, ReqId, Request, SentReply, ServerFrame, StatusValue,
  UnreadReply, WelcomeReply,
} from '../protocol/frames.ts';

/** An error reply from the node (`code` as in the protocol), or a request that could not complete. */
export class ImError extends Error {
  override name = 'ImError';
  code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/** The connection closed (or could not open) before the reply came. */
export class ConnectionClosedError extends Error {
  override name = 'ConnectionClosedError';
  code: number;
  constructor(code: number, why = 'connection closed') {
    super(`${why} (${code})`);
    this.code = code;
  }
}

/** The part of the standard WebSocket interface this client uses (browsers, Node's global, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', fn: (ev: any) => void): void;
  removeEventListener(type: 'open' | 'message' | 'close' | 'error', fn: (ev: any) => void): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export type Reply = Exclude<ServerFrame, { op: 'error' }>;
/** A request as the caller writes it: the connection assigns the id. */
export type Out = Request extends infer R ? (R extends { id?: ReqId } ? Omit<R, 'id'> : never) : never;

export type ConnectionEvents = {
  /** Every frame received, replies included. */
  frame: [ServerFrame];
  msg: [MsgEvent];
  /** Every frame that is not a reply to a request of this connection. */
  event: [ServerFrame];
  close: [number, string];
};

export type ConnectOptions = {
  /** The WebSocket constructor; default the global one (browsers, Node 22+). */
  WebSocket?: WebSocketCtor;
  /** Give up opening after this long (default 5 s). */
  timeoutMs?: number;
};

const OPEN = 1;
const CONNECTING = 0;

/** Resolves with the connection once its socket is open (rejects on close or after the timeout). */
export function opened<C extends Connection>(conn: C, timeoutMs: number): Promise<C> {
  const ws = conn.ws;
  return new Promise<C>((resolve, reject) => {
    if (ws.readyState === OPEN) return resolve(conn);
    const timer = setTimeout(() => {
      done();
      conn.abort();
      reject(new ConnectionClosedError(1006, `could not connect to ${conn.url} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onOpen = () => {
      done();
      resolve(conn);
    };
    const onClose = (code: number) => {
      done();
      reject(new ConnectionClosedError(code, `could not connect to ${conn.url}${conn.lastError ? `: ${conn.lastError}` : ''}`));
    };
    const done = () => {
      clearTimeout(timer);
      ws.removeEventListener('open', onOpen);
      conn.off('close', onClose);
    };
    ws.addEventListener('open', onOpen);
    conn.on('close', onClose);
  });
}

/** A `contacts` request: `limit` is left to the node's default (500) when not given. */
export function contactsFrame(opts: { after?: string; limit?: number }): Out {
  return { op: 'contacts', ...(opts.after !== undefined ? { after: opts.after } : {}), ...(opts.limit ? { limit: opts.limit } : {}) } as Out;
}

/** Pages through `contacts` until `more` is false. A page that says more but gives no new cursor
 * ends it with an error rather than asking for the same page for ever. */
export async function* contactPages(page: (after: string | undefined) => Promise<ContactsReply>): AsyncGenerator<Contact> {
  let after: string | undefined;
  for (;;) {
    const r = await page(after);
    yield* r.contacts;
    if (!r.more) return;
    if (!r.next || r.next === after) throw new Error('contacts: more pages announced without a new cursor');
    after = r.next;
  }
}

function defaultWebSocket(): WebSocketCtor {
  const ctor = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (!ctor) throw new Error('no global WebSocket here: pass one (for example the `ws` package) as the WebSocket option');
  return ctor;
}

export class Connection extends Emitter<ConnectionEvents> {
  readonly ws: WebSocketLike;
  readonly url: string;
  private nextId = 0;
  private waiting = new Map<ReqId, { resolve(f: Reply): void; reject(e: Error): void }>();
  closed: { code: number; reason: string } | undefined;
  /** What the socket's last error event said (`ws` names the cause, e.g. ECONNREFUSED; browsers say nothing). */
  lastError: string | undefined;

  constructor(ws: WebSocketLike, url = '') {
    super();
    this.ws = ws;
    this.url = url;
    ws.addEventListener('message', (ev: { data: unknown }) => this.onData(ev.data));
    ws.addEventListener('close', (ev: { code?: number; reason?: string }) => this.onClose(ev.code ?? 1006, ev.reason ?? ''));
    ws.addEventListener('error', (ev: { message?: string; error?: { message?: string } }) => {
      this.lastError = ev.error?.message || ev.message || undefined; // surfaced through 'close'
    });
  }

  /** Opens a connection; rejects with ConnectionClosedError if it does not open within the timeout. */
  static connect(url: string, opts: ConnectOptions = {}): Promise<Connection> {
    const Ctor = opts.WebSocket ?? defaultWebSocket();
    return opened(new Connection(new Ctor(url), url), opts.timeoutMs ?? 5000);
  }

  get open(): boolean {
    return !this.closed && this.ws.readyState === OPEN;
  }

  private onData(data: unknown): void {
    if (typeof data !== 'string') return; // the protocol is text frames only
    let f: ServerFrame;
    try {
      f = JSON.parse(data) as ServerFrame;
    } catch {
      return;
    }
    if (typeof f !== 'object' || f === null) return;
    this.emit('frame', f);
    const id = 'id' in f ? f.id : undefined;
    const w = id !== undefined && id !== null ? this.waiting.get(id) : undefined;
    if (w && id !== undefined && id !== null) {
      this.waiting.delete(id);
      if (f.op === 'error') w.reject(new ImError(f.code, f.message));
      else w.resolve(f);
      return;
    }
    if (f.op === 'msg') this.emit('msg', f);
    this.emit('event', f);
  }

  private onClose(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = { code, reason };
    const err = new ConnectionClosedError(code);
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    this.emit('close', code, reason);
  }

  /** Sends a frame without an id (fire and forget); false if the connection is not open. */
  post(frame: Out | Record<string, unknown>): boolean {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a request with a fresh id; resolves with its reply, rejects with ImError on `error`. */
  request<T extends Reply = Reply>(frame: Out, timeoutMs?: number): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      if (this.closed || this.ws.readyState !== OPEN) return reject(new ConnectionClosedError(this.closed?.code ?? 1006));
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (timeoutMs) {
        timer = setTimeout(() => {
          this.waiting.delete(id);
          reject(new ConnectionClosedError(1006, `no reply to ${frame.op} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.waiting.set(id, {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** Requests waiting for their reply. */
  get inFlight(): number {
    return this.waiting.size;
  }

  /** `roster: true`: the node pushes the contacts as `roster` pages right after the welcome, then
   * the contacts' presence and profile changes without a watch. */
  login(l: { token?: string; user?: string; device?: string; since?: number; roster?: boolean }): Promise<WelcomeReply> {
    return this.request<WelcomeReply>({ op: 'login', ...l });
  }
  ping(): Promise<PongReply> {
    return this.request<PongReply>({ op: 'ping' });
  }
  send(to: string, cid: string, body: string): Promise<SentReply> {
    return this.request<SentReply>({ op: 'send', to, cid, body });
  }
  sendGroup(group: string, cid: string, body: string): Promise<SentReply> {
    return this.request<SentReply>({ op: 'send', group, cid, body });
  }
  /** group_create, group_add or group_remove. */
  group(op: 'create' | 'add' | 'remove', group: string, members: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: `group_${op}`, group, members });
  }
  groupLeave(group: string): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_leave', group });
  }
  groupInfo(group: string): Promise<GroupReply> {
    return this.request<GroupReply>({ op: 'group_info', group });
  }
  typing(target: { to: string } | { group: string }): Promise<OkReply> {
    return this.request<OkReply>({ op: 'typing', ...target });
  }
  receipts(conv: string): Promise<ReceiptsReply> {
    return this.request<ReceiptsReply>({ op: 'receipts', conv });
  }
  sync(after = 0, limit?: number): Promise<MsgsReply> {
    return this.request<MsgsReply>({ op: 'sync', after, ...(limit ? { limit } : {}) } as Out);
  }
  history(conv: string, before?: number, limit?: number): Promise<MsgsReply> {
    return this.request<MsgsReply>({ op: 'history', conv, ...(before !== undefined ? { before } : {}), ...(limit ? { limit } : {}) } as Out);
  }
  ack(seq: number): Promise<OkReply> {
    return this.request<OkReply>({ op: 'ack', seq });
  }
  read(conv: string, seq: number): Promise<OkReply> {
    return this.request<OkReply>({ op: 'read', conv, seq });
  }
  unread(): Promise<UnreadReply> {
    return this.request<UnreadReply>({ op: 'unread' });
  }
  presence(users: string[]): Promise<PresenceReply> {
    return this.request<PresenceReply>({ op: 'presence', users });
  }
  watch(users: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'watch', users });
  }
  unwatch(users: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'unwatch', users });
  }
  profileSet(profile: ProfileFields): Promise<OkReply> {
    return this.request<OkReply>({ op: 'profile_set', profile });
  }
  profiles(users: string[]): Promise<ProfilesReply> {
    return this.request<ProfilesReply>({ op: 'profiles', users });
  }
  /** One of the contact ops (contact_request, contact_accept, …, block, unblock) on a user. */
  contact(op: ContactOp, user: string, text?: string): Promise<OkReply> {
    return this.request<OkReply>({ op, user, ...(text !== undefined ? { text } : {}) });
  }
  contactRequest(user: string, text?: string): Promise<OkReply> {
    return this.contact('contact_request', user, text);
  }
  contactAccept(user: string): Promise<OkReply> {
    return this.contact('contact_accept', user);
  }
  contactDecline(user: string): Promise<OkReply> {
    return this.contact('contact_decline', user);
  }
  contactRemove(user: string): Promise<OkReply> {
    return this.contact('contact_remove', user);
  }
  follow(user: string): Promise<OkReply> {
    return this.contact('follow', user);
  }
  unfollow(user: string): Promise<OkReply> {
    return this.contact('unfollow', user);
  }
  block(user: string): Promise<OkReply> {
    return this.contact('block', user);
  }
  unblock(user: string): Promise<OkReply> {
    return this.contact('unblock', user);
  }
  contactLists(user: string, lists: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'contact_lists', user, lists });
  }
  /** One page of contacts, ordered by user id; pass the reply's `next` as `after` for the next one. */
  contacts(opts: { after?: string; limit?: number } = {}): Promise<ContactsReply> {
    return this.request<ContactsReply>(contactsFrame(opts));
  }
  /** Every contact, page after page until `more` is false. */
  allContacts(limit?: number): AsyncGenerator<Contact> {
    return contactPages((after) => this.contacts({ after, limit }));
  }
  status(status: StatusValue, text?: string): Promise<OkReply> {
    return this.request<OkReply>({ op: 'status', status, ...(text !== undefined ? { text } : {}) });
  }
  /** Changes the settings named (the others stay). */
  privacy(settings: Partial<PrivacySettings>): Promise<OkReply> {
    return this.request<OkReply>({ op: 'privacy', ...settings });
  }

  /** Resolves with the first incoming frame (reply or event) that matches, within the timeout. */
  waitFor<T extends ServerFrame = ServerFrame>(match: (f: ServerFrame) => boolean, timeoutMs = 5000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('frame', on);
        reject(new Error(`no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (f: ServerFrame) => {
        if (!match(f)) return;
        clearTimeout(timer);
        this.off('frame', on);
        resolve(f as T);
      };
      this.on('frame', on);
    });
  }

  /** Resolves once the connection is closed, with its close code. */
  closedWith(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('close', on);
        reject(new Error(`still open after ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (code: number, reason: string) => {
        clearTimeout(timer);
        resolve({ code, reason });
      };
      this.once('close', on);
    });
  }

  close(code?: number): void {
    if (this.ws.readyState === OPEN || this.ws.readyState === CONNECTING) this.ws.close(code);
  }

  /**
   * Drops the connection now, without a closing handshake where the WebSocket allows it (`ws`'s
   * terminate), and settles everything waiting on it at once: a client that has given up on a
   * node must not wait for a dead TCP connection to time out.
   */
  abort(): void {
    const t = (this.ws as { terminate?: () => void }).terminate;
    if (t) t.call(this.ws);
    else this.close();
    this.onClose(1006, 'aborted');
  }
}
