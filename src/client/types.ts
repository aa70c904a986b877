// The session's public types: its states, options, events and the sends it keeps.
import type { WebSocketCtor } from './connection.ts';
import type { ImError } from './connection.ts';
import type {
  Contact, ContactEvent, Entry, GoawayEvent, PresenceEvent, ProfileEvent, ReadEvent, ReceiptEvent, RosterEvent, SentReply,
  ServerFrame, StatusValue, TypingEvent, WelcomeReply,
} from '../protocol/frames.ts';

export type SessionState =
  /** first connection being opened or logged in */
  | 'connecting'
  /** logged in; the node is pushing what was missed (up to `welcome.seq`) */
  | 'replaying'
  /** logged in and caught up: pushes are live */
  | 'live'
  /** the connection went; waiting (backoff) or connecting to another node */
  | 'reconnecting'
  /** stopped for good: close() was called, the login was refused, or another login replaced it */
  | 'closed';

export type StateInfo = {
  state: SessionState;
  /** The node's URL (while connected) and name (once logged in). */
  url?: string;
  node?: string;
  /** Failed connection attempts since the last login. */
  attempt: number;
  /** When state is 'reconnecting' or 'closed': why. */
  reason?: string;
  /** While replaying: the seq the replay runs to. */
  replayTo?: number;
};

export type SendTarget = { to: string } | { group: string };

export type PendingSend = {
  cid: string;
  to?: string;
  group?: string;
  body: string;
  /** queued: not sent yet; sending: on the wire; resending: being sent again after a lost
   * connection or a retryable refusal; sent: confirmed; failed: refused for good. */
  state: 'queued' | 'sending' | 'resending' | 'sent' | 'failed';
  attempts: number;
  /** The `sent` reply once confirmed (`dup: true` when a resend found it already stored). */
  sent?: SentReply;
  /** The node's refusal: the final one when failed; while resending, the retryable one
   * (unavailable, rate_limited) the send waits out, until it goes on the wire again. */
  error?: ImError;
};

export type SessionEvents = {
  state: [StateInfo];
  welcome: [WelcomeReply];
  /** A timeline entry, in seq order with no gap and no repeat across reconnects. */
  message: [Entry];
  /** A watched user's or (with `roster`) a contact's presence changed; `status`/`text` when online. */
  presence: [PresenceEvent];
  /** One page of the roster pushed after a login with `roster: true` (`more: false` on the last). */
  roster: [RosterEvent];
  /** A contact's entry changed (a request, an accept, a follow, a block, …): the whole entry. */
  contact: [ContactEvent];
  /** A friend's, a followed user's or the user's own profile changed. */
  profile: [ProfileEvent];
  /** The session's `roster` map changed: a whole roster came in, or a contact or presence event changed an entry. */
  contacts: [ReadonlyMap<string, Contact>];
  /** This session set the user's status: the app through `status()`, or auto-away (`auto: true`). */
  status: [{ status: StatusValue; text?: string; auto: boolean }];
  typing: [TypingEvent];
  receipt: [ReceiptEvent];
  /** Another device of this user read a conversation up to a seq. */
  read: [ReadEvent];
  goaway: [GoawayEvent];
  /** A send changed state (queued, resending, sent, failed). */
  send: [PendingSend];
  /** Something the app may want to log: a failed connection attempt, a refused login. */
  error: [Error];
  /** Any other frame pushed by the node (events added by newer nodes). */
  event: [ServerFrame];
};

export type SessionOptions = {
  /** Client URLs of any nodes (ws://host:port/ws); the session learns more from goaway frames. */
  urls: string[];
  /** A login token, or a function that returns a fresh one for each login. */
  token?: string | (() => string | Promise<string>);
  /** The user id, for a node in insecure (development) mode, which takes logins without a token. */
  user?: string;
  /** The device id (default `default`); one session per device. */
  device?: string;
  /** Where the first replay starts: a seq, 'acked' (the device's acked cursor, the default), or
   * 'latest' (nothing old: only entries after login). Later logins continue from the last seq delivered. */
  since?: number | 'acked' | 'latest';
  /** Acknowledge delivered seqs automatically (default true), batched over ackDelayMs (default 200). */
  autoAck?: boolean;
  ackDelayMs?: number;
  /** Sends on the wire at once (default 32; the node serves at most 64 requests of a connection). */
  window?: number;
  /** Sends waiting at most (default 10,000): more are refused at once with rate_limited. */
  maxOutbox?: number;
  /** Reconnect backoff: full jitter between 0 and min(max, min * 2^attempt) (default 100 ms, 5 s). */
  backoffMs?: { min: number; max: number };
  connectTimeoutMs?: number;
  /** A request with no reply for this long drops the connection (default 20 s). */
  requestTimeoutMs?: number;
  /** A ping when nothing was sent for this long (default 20 s; the node closes idle connections at 60 s). */
  pingEveryMs?: number;
  /** Out-of-order pushes kept while a gap is repaired (default 5,000). */
  maxAhead?: number;
  /** Log in with `roster: true` (default false): the node pushes the contacts after each welcome
   * (kept in `session.roster`), and their presence and profile changes without a watch. */
  roster?: boolean;
  /** Contacts kept at most in `session.roster` (default 20,000; the node caps a user's far lower). */
  maxContacts?: number;
  /** Auto-away (default 0: off): after this long without `activity()`, an 'available' user is set
   * 'away', and back to 'available' at the next activity. */
  idleAwayMs?: number;
  /** Which URL the first connection tries: a random one (default, spreads clients over the
   * nodes), or the first of `urls` (a page served by a node may prefer that node). */
  start?: 'random' | 'first';
  /** The WebSocket constructor (default the global one: browsers and Node 22+). */
  WebSocket?: WebSocketCtor;
  /** Randomness for backoff and cids (tests pass a seeded one). */
  random?: () => number;
};
