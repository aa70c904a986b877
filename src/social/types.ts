// The social role's surface: what it takes from the node (SocialComponents) and what it offers
// (Social), with the names other folders use. No behaviour here.
import type { Logger } from 'pino';
import type { Limits, Refusal, SocialState } from '../contacts/index.ts';
import type { Contact, ContactOp, Profile, Request, ServerFrame, UserPresence } from '../protocol/frames.ts';
import type { Delivery } from '../protocol/peer.ts';
import type { Lookup, SessionRef, Watcher } from '../presence/index.ts';
import type { Store, StoredEntry } from '../store/index.ts';
import type { Clock } from '../clock/index.ts';

export const socialKey = (user: string): string => `s:${user}`;
export type SocialReq = Extract<Request, { op: 'profile_set' | 'status' | 'privacy' | 'contact_lists' | ContactOp }>;
export type AdmitKind = 'dm' | 'typing' | 'request' | 'follow';
/** What a contact entry shows of the contact, from the contact's home (left out when hidden). */
export type ContactInfo = { profile_version?: number; presence?: Contact['presence'] };
export type ContactsPage = { contacts: Contact[]; more: boolean; next?: string };

export type SocialComponents = {
  store: Store;
  /** Whether this node serves the key now (writes). */
  owns: (key: string) => boolean;
  replicated: (key: string) => Promise<void>;
  nextMid: () => string;
  midTime: (mid: string) => number;
  /** Hands a copy to its key's home through the outbox (the home's hand-over). */
  handOver: (sender: string, d: Delivery) => Promise<void>;
  /** Presence here, for users homed here. */
  lookup: (user: string) => Lookup;
  lastSeen: (user: string) => number | undefined;
  sessions: (user: string) => SessionRef[];
  watchers: (user: string) => Watcher[];
  push: (gateway: string, conn: string, frame: ServerFrame) => void;
  /** Pushes a frame to the online devices of users homed anywhere. */
  relay: (users: string[], frame: ServerFrame) => Promise<void>;
  /** Contact infos from the contacts' homes (this one included), as `viewer` may see them. */
  infoAnywhere: (viewer: string, users: string[]) => Promise<Record<string, ContactInfo>>;
  /** Asks `to`'s home whether it takes `kind` from `from`. */
  /** `epoch`: with a request, the relation's epoch as the asker's home holds it (see Reads.admit). */
  admitAt: (to: string, from: string, kind: AdmitKind, epoch?: number) => Promise<Refusal | undefined>;
  /** Tells every other node to forget what it admitted to these users (a block or a stricter rule). */
  revokeEverywhere: (users: string[]) => Promise<void>;
  limits: Limits;
  /** The time for the admission cache; without it, the clock's. */
  now?: () => number;
  /** Time and waits (the revocation's deadline); the system clock unless given. */
  clock?: Clock;
  /** The node's stop: ends the waits and the reads still looping. */
  signal?: AbortSignal;
  log: Logger;
};

export type Social = {
  /** A change by `user` (homed here): resolves once it is durable on every copy of the log. */
  op(user: string, req: SocialReq): Promise<void>;
  /** A page of `user`'s contacts, ordered by user id, after the cursor `after`. */
  contacts(user: string, after: string | undefined, limit: number): Promise<ContactsPage>;
  /** Profiles of users homed here, as `viewer` may see them (null: none, or hidden). */
  profiles(viewer: string, users: string[]): Promise<Record<string, Profile | null>>;
  info(viewer: string, users: string[]): Promise<Record<string, ContactInfo>>;
  /** Whether `to` (homed here) takes `kind` from `from`. */
  admit(to: string, from: string, kind: AdmitKind, epoch?: number): Promise<Refusal | undefined>;
  /** On the sender's home: `to`'s answer, from a cache of recent yeses (true) or asked (throws ForbiddenError). */
  gate(from: string, to: string, kind: AdmitKind): true | Promise<void>;
  /** Another node's `revokeEverywhere`. */
  revoke(users: string[]): void;
  /** A presence answer for `viewer`: hidden users look offline; status added. */
  presenceFor(user: string, viewer: string | undefined, p: UserPresence): Promise<UserPresence>;
  /** The user went online or offline here: tells the watchers who may see it. */
  presenceChanged(user: string, online: boolean): void;
  /** Loads the user's state (at login, so that later presence events need no read); no read
   * for a user who never wrote anything social. */
  load(user: string): Promise<SocialState>;
  /** The store committed these entries (social log entries are folded into the cached state). */
  committed(entries: StoredEntry[]): void;
  ringChanged(): void;
};
