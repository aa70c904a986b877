// The session's requests other than sends, as a base class of ImSession: one method per op of the
// protocol, and a queue that holds requests while no connection is logged in (bounded) and sends
// again, on the next connection, those lost with theirs when repeating them is safe.
import { ConnectionClosedError, ImError, contactPages, contactsFrame } from './connection.ts';
import { Emitter } from './emitter.ts';
import type { Connection, Out, Reply } from './connection.ts';
import type {
  Contact, ContactOp, ContactsReply, GroupReply, MsgsReply, OkReply, PresenceReply, PrivacySettings, ProfileFields,
  ProfilesReply, ReceiptsReply, StatusValue, UnreadReply,
} from '../protocol/frames.ts';

/** Changes that may have been applied when their connection went, and whose repeat would not
 * answer the same (a second contact_accept finds nothing pending: not_found): the caller is told
 * instead. A repeated contact_request, follow, unfollow, block or unblock answers ok again. */
const ONCE = new Set(['contact_accept', 'contact_decline', 'contact_remove']);
function repeatable(op: string): boolean {
  if (op.startsWith('group_')) return op === 'group_info';
  return !ONCE.has(op);
}

const MAX_QUEUED_REQUESTS = 1000;

type Queued = { frame: Out; resolve(r: Reply): void; reject(e: Error): void; retry: boolean };

export abstract class Requests<E extends { [K in keyof E]: unknown[] }> extends Emitter<E> {
  #queued: Queued[] = [];

  /** The logged-in connection, if any. */
  protected abstract connection(): Connection | undefined;
  /** Why requests are refused now (the session closed), or undefined. */
  protected abstract closedReason(): string | undefined;
  protected abstract get requestTimeoutMs(): number;
  /** Something was written to the connection (for the idle ping). */
  protected abstract wrote(): void;

  /**
   * Sends any request of the protocol once logged in (waiting for a login if there is none) and
   * resolves with its reply. If the connection goes first, reads and other requests that are safe
   * to repeat go again on the next connection; a group change, contact_accept, contact_decline
   * or contact_remove rejects with ConnectionClosedError (it may have been applied: group_info or
   * contacts says).
   */
  request<T extends Reply = Reply>(frame: Out): Promise<T> {
    const closed = this.closedReason();
    if (closed) return Promise.reject(new Error(`session closed: ${closed}`));
    const retry = repeatable(frame.op);
    return new Promise<T>((resolve, reject) => {
      const q: Queued = { frame, resolve: resolve as (r: Reply) => void, reject, retry };
      const conn = this.connection();
      if (conn) return this.#issue(conn, q);
      if (this.#queued.length >= MAX_QUEUED_REQUESTS) return reject(new ImError('rate_limited', 'too many requests waiting for a connection'));
      this.#queued.push(q);
    });
  }

  #issue(conn: Connection, q: Queued): void {
    this.wrote();
    conn.request(q.frame, this.requestTimeoutMs).then(q.resolve, (e: Error) => {
      if (e instanceof ConnectionClosedError && q.retry && !this.closedReason()) {
        const now = this.connection();
        if (conn === now && conn.open) conn.abort();
        if (now && now !== conn) return this.#issue(now, q);
        if (this.#queued.length < MAX_QUEUED_REQUESTS) return void this.#queued.push(q);
      }
      q.reject(e);
    });
  }

  /** A login: what waited goes now. */
  protected flushRequests(): void {
    const conn = this.connection();
    if (!conn) return;
    for (const q of this.#queued.splice(0)) this.#issue(conn, q);
  }

  protected failRequests(err: Error): void {
    for (const q of this.#queued.splice(0)) q.reject(err);
  }

  history(conv: string, opts: { before?: number; limit?: number } = {}): Promise<MsgsReply> {
    return this.request<MsgsReply>({ op: 'history', conv, ...opts } as Out);
  }
  sync(after: number, limit?: number): Promise<MsgsReply> {
    return this.request<MsgsReply>({ op: 'sync', after, ...(limit ? { limit } : {}) } as Out);
  }
  read(conv: string, seq: number): Promise<OkReply> {
    return this.request<OkReply>({ op: 'read', conv, seq });
  }
  unread(): Promise<UnreadReply> {
    return this.request<UnreadReply>({ op: 'unread' });
  }
  receipts(conv: string): Promise<ReceiptsReply> {
    return this.request<ReceiptsReply>({ op: 'receipts', conv });
  }
  presence(users: string[]): Promise<PresenceReply> {
    return this.request<PresenceReply>({ op: 'presence', users });
  }
  groupCreate(group: string, members: string[] = []): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_create', group, members });
  }
  groupAdd(group: string, members: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_add', group, members });
  }
  groupRemove(group: string, members: string[]): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_remove', group, members });
  }
  groupLeave(group: string): Promise<OkReply> {
    return this.request<OkReply>({ op: 'group_leave', group });
  }
  groupInfo(group: string): Promise<GroupReply> {
    return this.request<GroupReply>({ op: 'group_info', group });
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
}
