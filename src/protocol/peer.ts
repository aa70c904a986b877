// Every peer message as a discriminated union on `t`, and the one validator for what arrives
// from other nodes: peer input is checked like client input, never trusted.
import type { ContactOp, MsgEvent, Request, ServerFrame } from './frames.ts';

export type Session = { user: string; device: string; gateway: string; conn: string };
export type Watcher = { gateway: string; conn: string; user?: string };
/** A timeline entry as it travels to a recipient's home (its seq is assigned there). */
export type Delivery = { user: string; mid: string; conv: string; from: string; to?: string; group?: string; body: string; ts: number };
/** One group message for the members one home node holds: each gets a copy (its seq assigned
 * there); the sender's own copy is keyed by `cid`, which makes it the sender's send-dedup entry. */
export type FanItem = { mid: string; conv: string; from: string; group: string; body: string; ts: number; users: string[]; cid?: string };
/** A group send as the sender's home hands it to the group's home (the mid is the sender home's). */
export type GroupPost = { from: string; cid: string; mid: string; body: string; ts: number };
export type GroupOp = 'create' | 'add' | 'remove' | 'leave' | 'info' | 'members';
/** What a group home relays to the other members' online devices. */
export type CastFrame = { kind: 'typing' } | { kind: 'receipt'; mid: string };
/** The answer of a group home to one post: the message's mid, or the client error for it. */
export type PostResult = { mid: string } | { code: 'not_found' | 'forbidden' | 'rate_limited' | 'unavailable'; message: string };

/**
 * The sending connection's lane and its epoch, on a send (gateway/lane.ts, home/fences.ts). `n`
 * numbers the lane's send attempts in the order it lets them go; `after` is the `n` of the
 * attempt this one was sent behind (the lane's latest earlier send still unanswered, on its way
 * to the same home), which must have reached that home first.
 */
export type LaneMark = { lane: string; epoch: number; n?: number; after?: number };

/** Calls on a key's home. `rv` is the caller's ring version, `hops` how often it was forwarded. */
export type HomeCall =
  | { fn: 'send'; from: string; to: string; cid: string; body: string; at?: LaneMark }
  | { fn: 'gsend'; from: string; group: string; cid: string; body: string; at?: LaneMark }
  /** On the group's home (key `g:<group>`): a membership op or a query by `actor`. */
  | { fn: 'group'; op: GroupOp; group: string; actor: string; members: string[] }
  /** On the group's home: posts from one sender's home, in the order its senders made them. */
  | { fn: 'gpost'; group: string; posts: GroupPost[] }
  /** On the group's home: relay a typing notice or a receipt of `from` to the other members. */
  | { fn: 'gcast'; group: string; from: string; frame: CastFrame }
  | { fn: 'login'; session: Session }
  | { fn: 'logout'; session: Session }
  | { fn: 'sync'; user: string; after: number; limit: number }
  | { fn: 'history'; user: string; conv: string; before?: number; limit: number }
  | { fn: 'ack'; user: string; device: string; seq: number }
  | { fn: 'read'; session: Session; conv: string; seq: number }
  | { fn: 'unread'; user: string }
  /** On the user's home: a change of the user's profile, status, privacy or contacts. */
  | { fn: 'social'; user: string; req: SocialCall }
  /** On the user's home: a page of the user's contacts. */
  | { fn: 'contacts'; user: string; after?: string; limit: number }
  /** On `user`'s home: whether it takes a direct message, typing, a request or a follow from `from`.
   * A request carries the relation's epoch as `from`'s home holds it: behind `user`'s, a change
   * of `user`'s is still on its way there, and the request waits for it (`unavailable`). */
  | { fn: 'admit'; user: string; from: string; kind: AdmitItem['kind']; epoch?: number };
/** The client requests `fn: 'social'` carries (validated as a client's). */
export type SocialCall = Extract<Request, { op: 'profile_set' | 'status' | 'privacy' | 'contact_lists' | ContactOp }>;
export type AdmitItem = { kind: 'dm' | 'typing' | 'request' | 'follow' };

export type PeerRequest =
  | { t: 'call'; key: string; rv: string; hops: number; call: HomeCall }
  | { t: 'deliver'; rv: string; items: Delivery[] }
  /** A group home hands group messages to the members this node is home of. */
  | { t: 'fanout'; rv: string; items: FanItem[] }
  /** Push a typing notice or receipt to the online devices of these users (their home). */
  | { t: 'relay'; users: string[]; frame: ServerFrame }
  /** The newest mid each of these users has read in `conv` (their home answers). */
  | { t: 'readmarks'; conv: string; users: string[] }
  | { t: 'presence'; users: string[]; viewer?: string }
  /** Profile versions and presence of users homed at the receiver, as `viewer` may see them. */
  | { t: 'cinfo'; viewer: string; users: string[] }
  | { t: 'profiles'; viewer: string; users: string[] }
  /** Forget admissions cached for these users (one of them blocked someone or got stricter). */
  | { t: 'revoke'; users: string[] }
  | { t: 'watch'; watcher: Watcher; users: string[]; on: boolean }
  | { t: 'register'; sessions: Session[] }
  /** A gateway's heartbeat: renews its sessions on these connections; the reply lists the
   * connections the home holds no session for (the gateway registers those again). */
  | { t: 'renew'; gateway: string; conns: string[] }
  | { t: 'join'; entries: unknown[] }
  | { t: 'probe'; target: string }
  | { t: 'ping' }
  /** The member table, without joining it (a newcomer copies data before it joins). */
  | { t: 'members' }
  /** A newcomer `target` copies the users it will own in the ring of `members` from their home:
   * one export page after `after` (seqs it holds); with `freeze`, the home first stops writing
   * those users (until its ring includes the target, or a timeout) so the copy is final. */
  | { t: 'handoff'; target: string; members: string[]; from: string; to: string | null; after: Record<string, number>; freeze: boolean; limit: number;
      /** Resumes in the middle of a large snapshot: users from `at.user` on (not after `from`),
       * leaving out the first `at.rows` rows of its snapshot (the part's `next`). */
      at?: { user: string; rows: number };
      /** Instead of a page: [user, seq, digest] of what the target holds (store.prefixDigests);
       * the answer is `{ same, differ }`: among the users whose home this node is, those whose
       * timeline here has the same digest up to that seq (the target then copies only what
       * follows) and those with another one (the target drops its copy and copies them whole).
       * A node of before 2026-12-03 answers the `same` list alone, as an array. */
      prove?: Array<[string, number, string]> }
  /** A leaving node pushes one export page of users the receiver will own once it is gone. */
  | { t: 'absorb'; page: Page }
  /** What the receiver holds of `users`: [user, seq, digest] (store.prefixDigests at its
   * committed seq) for each it holds entries of. A leaving home asks the replica that will be
   * home next, and pushes it only what follows a seq whose digest it finds the same. */
  | { t: 'holding'; users: string[] }
  /** A home sends its users' new entries and state to one of their replicas. */
  | { t: 'replicate'; page: Page };

export type PeerOneWay =
  | { t: 'gossip'; entries: unknown[] }
  | { t: 'push'; conn: string; frame: ServerFrame }
  /** One message pushed to many connections of the receiving gateway, each with its own seq. */
  | { t: 'pushmsg'; msg: Omit<MsgEvent, 'op' | 'seq'>; to: [string, number][] };

/** Replies: `done` carries the call's value; `fail` a client error code the caller may pass on. */
export type PeerReply =
  | { t: 'done'; value?: unknown }
  | { t: 'fail'; code: FailCode; message: string };
export type FailCode = 'not_owner' | 'unavailable' | 'forbidden' | 'bad_request' | 'internal' | 'not_found' | 'conflict' | 'too_large' | 'rate_limited';

/** An export page (see the store's ExportPage), as it travels between nodes in a handoff. */
export type PageSnapshot = {
  user: string; seq: number; lastSeen?: number;
  convs: { conv: string; lastSeq: number; ocum: number; readSeq: number; readCum: number }[];
  cursors: { device: string; acked: number }[];
  /** Outbox rows (copies of the user's messages not yet with `dest`'s home; `item` a Delivery)
   * and rows handed over since. */
  outbox?: { mid: string; dest: string; item: unknown }[];
  cleared?: { mid: string; dest: string }[];
  /** A part of a larger snapshot: the row where the next part starts. */
  next?: number;
};
export type PageEntry = Delivery & { seq: number; dkey: string; ocum: number };
export type Page = { users: PageSnapshot[]; entries: PageEntry[] };
/** A page on the wire: entries that share a mid (the copies of one group message) may travel as
 * one `copies` item, the message once and per copy its user, seq, dedup key and ocum. */
export type WirePage = Page & { copies?: { msg: Omit<Delivery, 'user'>; rows: [string, number, string, number][] }[] };

// The validators and helpers live by concern in peer-fields.ts (field readers), peer-pages.ts
// (export pages, batch sizes), peer-requests.ts (requests and replies) and peer-push.ts (pushes
// to gateways); this file keeps the module's surface.
export { isKey, PeerFrameError, validateDelivery } from './peer-fields.ts';
export { chunkByChars, entryWireChars, GROUP_EVENT_MEMBERS, packPage, PEER_BUDGET_CHARS, validatePage } from './peer-pages.ts';
export { contactOf, parsePeerOneWay, PUSH_OPS, pushFrame } from './peer-push.ts';
export { MAX_PROOFS, parsePeerReply, parsePeerRequest } from './peer-requests.ts';
