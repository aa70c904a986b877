// A small typed client SDK: one WebSocket, request/reply by id, pushed events to listeners.
// It depends only on the protocol types and `ws`.
import { EventEmitter, once } from 'node:events';
import WebSocket from 'ws';
import type {
  ErrorCode, GroupReply, MsgEvent, MsgsReply, OkReply, PresenceReply, ReceiptsReply, ReqId, Request, SentReply, ServerFrame,
  UnreadReply, WelcomeReply,
} from '../protocol/frames.ts';

export class ImError extends Error {
  override name = 'ImError';
  code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

type Reply = Exclude<ServerFrame, { op: 'error' }>;
// A request as the caller writes it: the client assigns the id.
type Out = Request extends infer R ? (R extends { id?: ReqId } ? Omit<R, 'id'> : never) : never;

export type ClientEvents = {
  frame: [ServerFrame];
  msg: [MsgEvent];
  event: [ServerFrame];
  close: [number, string];
};

export class ImClient extends EventEmitter<ClientEvents> {
  readonly ws: WebSocket;
  private nextId = 0;
  private waiting = new Map<ReqId, { resolve(f: Reply): void; reject(e: Error): void }>();
  closed: { code: number; reason: string } | undefined;

  constructor(ws: WebSocket) {
    super();
    this.ws = ws;
    ws.on('message', (data, binary) => {
      if (binary) return;
      let f: ServerFrame;
      try {
        f = JSON.parse(data.toString()) as ServerFrame;
      } catch {
        return;
      }
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
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.waiting.values()) w.reject(new Error(`connection closed (${code})`));
      this.waiting.clear();
      this.emit('close', code, reason.toString());
    });
    ws.on('error', () => undefined); // surfaced through 'close'
  }

  static async connect(url: string, opts: { timeoutMs?: number } = {}): Promise<ImClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: opts.timeoutMs ?? 5000 });
    const client = new ImClient(ws);
    await once(ws, 'open');
    return client;
  }

  /** Sends a frame without an id (fire and forget). */
  post(frame: Out | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends a request with a fresh id; resolves with its reply, rejects with ImError on `error`. */
  request<T extends Reply = Reply>(frame: Out): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      if (this.closed) return reject(new Error(`connection closed (${this.closed.code})`));
      this.waiting.set(id, { resolve: resolve as (f: Reply) => void, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  login(l: { token?: string; user?: string; device?: string; since?: number }): Promise<WelcomeReply> {
    return this.request<WelcomeReply>({ op: 'login', ...l });
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
  async closedWith(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return this.closed;
    const [code, reason] = (await Promise.race([
      once(this, 'close'),
      new Promise((_, ko) => setTimeout(() => ko(new Error(`still open after ${timeoutMs} ms`)), timeoutMs).unref()),
    ])) as [number, string];
    return { code, reason };
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}
