// A user's profile, status, privacy settings and contacts as a fold over the user's social log:
// the entries of the store key `s:<user>`, which the ring places on the user's own home, so it
// is replicated, moved and fenced like the user's timeline. Pure: no I/O.
//
// The relation between two users is held by both of their homes, each in its own log. Both
// copies converge because a relation is a join-semilattice: every change is an inflation, a home
// sends its whole copy to the other side after each change, and the other side joins it into
// its own. Joining is commutative, associative and idempotent, so a copy that arrives twice, late
// or out of order changes nothing it should not; crossing requests meet in `friend`.
//
//  - friendship: an epoch and two wants (mine, theirs). A request or an accept sets one's own
//    want in the current epoch; a decline, a remove or a block starts the next epoch with both
//    wants off. The higher epoch wins; in the same epoch the wants are or-ed. Friends: both want.
//  - each follow direction and each block direction: a flag with an epoch; setting it turns it on
//    in the current epoch, clearing it starts the next epoch off.
//  - lists are the owner's own labels and never leave its home.
import type { Contact, ContactOp, ContactState, PrivacySettings, Profile, ProfileFields, StatusValue } from '../protocol/frames.ts';

export type Flag = { e: number; on: boolean };
/** One relation as one side holds it: `m…` is this side (me), `t…` the other (them). */
export type Pair = {
  fe: number; fm: boolean; ft: boolean;
  /** The request texts that go with the wants. */
  mt: string; tt: string;
  /** Following: I follow them (wm), they follow me (wt); blocking likewise. */
  wm: Flag; wt: Flag; bm: Flag; bt: Flag;
  lists: string[];
};
/** A pair as it travels to the other side, from the sender's point of view (no lists). */
export type WirePair = Omit<Pair, 'lists'>;

export type SocialState = {
  /** The last log seq folded in. */
  seq: number;
  profile: Omit<Profile, 'version'>;
  /** The seq of the latest profile change (0: never set). */
  pver: number;
  status: StatusValue;
  stext: string;
  /** When the user went invisible (last_seen shown to others while invisible). */
  hiddenAt: number;
  privacy: PrivacySettings;
  pairs: Map<string, Pair>;
};

/** Log entry bodies. A `pair` entry is a side's copy of a relation with `u`, from that side's
 * point of view; the other side's home stores the very same entry (same mid, body and sender,
 * as a direct message's copy is the sender's entry), and tells it apart by its sender. */
export type SocialEvent =
  | { k: 'profile'; p: ProfileFields }
  | { k: 'status'; s: StatusValue; x: string }
  | { k: 'privacy'; p: Partial<PrivacySettings> }
  | { k: 'pair'; u: string; p: WirePair }
  | { k: 'lists'; u: string; l: string[] };

/** The other user of a `pair` entry in `owner`'s log, and whether it is that user's copy. */
export function pairOf(owner: string, from: string, e: Extract<SocialEvent, { k: 'pair' }>): { other: string; theirs: boolean } {
  return from === owner ? { other: e.u, theirs: false } : { other: from, theirs: true };
}

export type Refusal = { code: 'not_found' | 'conflict' | 'forbidden' | 'too_large' | 'bad_request'; message: string };

export const DEFAULT_PRIVACY: PrivacySettings = { presence: 'everyone', profile: 'everyone', dm: 'everyone' };

export function emptySocial(): SocialState {
  return {
    seq: 0, profile: { name: '', avatar: '', text: '', fields: {} }, pver: 0, status: 'available', stext: '', hiddenAt: 0,
    privacy: { ...DEFAULT_PRIVACY }, pairs: new Map(),
  };
}

const off = (): Flag => ({ e: 0, on: false });
export function emptyPair(): Pair {
  return { fe: 0, fm: false, ft: false, mt: '', tt: '', wm: off(), wt: off(), bm: off(), bt: off(), lists: [] };
}

const joinFlag = (a: Flag, b: Flag): Flag => (a.e > b.e ? a : b.e > a.e ? b : { e: a.e, on: a.on || b.on });

/** The other side's copy turned to this side's point of view. */
export function flip(w: WirePair): WirePair {
  return { fe: w.fe, fm: w.ft, ft: w.fm, mt: w.tt, tt: w.mt, wm: w.wt, wt: w.wm, bm: w.bt, bt: w.bm };
}

/** The least upper bound of two copies of one relation (lists are this side's, kept from `a`). */
export function join(a: Pair, b: WirePair): Pair {
  const out: Pair = { ...a, wm: joinFlag(a.wm, b.wm), wt: joinFlag(a.wt, b.wt), bm: joinFlag(a.bm, b.bm), bt: joinFlag(a.bt, b.bt) };
  if (b.fe > a.fe) Object.assign(out, { fe: b.fe, fm: b.fm, ft: b.ft, mt: b.mt, tt: b.tt });
  else if (b.fe === a.fe) {
    out.fm = a.fm || b.fm;
    out.ft = a.ft || b.ft;
    out.mt = a.mt || b.mt;
    out.tt = a.tt || b.tt;
  }
  return out;
}

export const wire = (p: Pair): WirePair => {
  const { lists: _lists, ...w } = p;
  return w;
};

export function stateOf(p: Pair): ContactState {
  if (p.fm && p.ft) return 'friend';
  if (p.fm) return 'requested';
  if (p.ft) return 'pending';
  return 'none';
}

/** Whether the relation shows in `contacts`: a state other than none, a follow either way, a block. */
export const listed = (p: Pair): boolean => p.fm || p.ft || p.wm.on || p.wt.on || p.bm.on;
/** Counts against the friends-and-follows limit: friends, requests made, follows. */
export const counted = (p: Pair): boolean => p.fm || p.wm.on;
/** An incoming request not answered yet (counts against the pending limit). */
export const pendingIn = (p: Pair): boolean => p.ft && !p.fm;
export const friends = (p: Pair | undefined): boolean => !!p && p.fm && p.ft;

/** The contact entry as this side sees it (without the other side's presence and profile). */
export function view(user: string, p: Pair): Contact {
  const state = stateOf(p);
  const c: Contact = { user, state, following: p.wm.on, follows_me: p.wt.on, blocked: p.bm.on, lists: [...p.lists] };
  if (state === 'pending' && p.tt) c.text = p.tt;
  return c;
}

export function sameView(a: Contact, b: Contact): boolean {
  return a.state === b.state && a.following === b.following && a.follows_me === b.follows_me && a.blocked === b.blocked &&
    a.lists.length === b.lists.length && a.lists.every((l, i) => l === b.lists[i]) && (a.text ?? '') === (b.text ?? '');
}

export type Limits = { maxContacts: number; maxPending: number };

/** A contact op by this side on its copy `p`: the new copy, `same` when nothing changes, or the
 * refusal. `count`: how many relations of this side count against maxContacts now. */
export function applyOp(p: Pair, op: ContactOp, other: string, text: string, count: number, limits: Limits): Pair | 'same' | Refusal {
  const state = stateOf(p);
  const bump = (f: Flag): Flag => ({ e: f.e + 1, on: false });
  const reset = (q: Pair): Pair => ({ ...q, fe: q.fe + 1, fm: false, ft: false, mt: '', tt: '' });
  const full = (): Refusal => ({ code: 'too_large', message: `at most ${limits.maxContacts} friends, requests and follows per user` });
  switch (op) {
    case 'contact_request':
      if (p.bm.on) return { code: 'conflict', message: `you block ${other}; unblock first` };
      if (p.bt.on) return { code: 'forbidden', message: `${other} does not take requests from you` };
      if (state === 'friend') return { code: 'conflict', message: `${other} is already a friend` };
      if (state === 'requested') return 'same';
      if (!counted(p) && count >= limits.maxContacts) return full();
      return { ...p, fm: true, mt: text };
    case 'contact_accept':
    case 'contact_decline':
      if (state !== 'pending') return { code: 'not_found', message: `no request from ${other} is pending` };
      if (op === 'contact_decline') return reset(p);
      if (!counted(p) && count >= limits.maxContacts) return full();
      return { ...p, fm: true };
    case 'contact_remove':
      if (state === 'none') return { code: 'not_found', message: `${other} is not a friend and no request is open` };
      return reset(p);
    case 'follow':
      if (p.bm.on) return { code: 'conflict', message: `you block ${other}; unblock first` };
      if (p.bt.on) return { code: 'forbidden', message: `${other} cannot be followed by you` };
      if (p.wm.on) return 'same';
      if (!counted(p) && count >= limits.maxContacts) return full();
      return { ...p, wm: { e: p.wm.e, on: true } };
    case 'unfollow':
      return p.wm.on ? { ...p, wm: bump(p.wm) } : 'same';
    case 'block':
      if (p.bm.on) return 'same';
      // Ends the friendship (or request) and the follows both ways.
      return { ...reset(p), wm: bump(p.wm), wt: bump(p.wt), bm: { e: p.bm.e, on: true } };
    case 'unblock':
      return p.bm.on ? { ...p, bm: bump(p.bm) } : 'same';
  }
}

/** Folds one entry of `owner`'s log, written by `from`, into the state (entries in seq order; a
 * seq already folded is skipped). */
export function applyEntry(s: SocialState, seq: number, ts: number, body: string, owner = '', from = owner): boolean {
  if (seq <= s.seq) return false;
  s.seq = seq;
  const e = parseEvent(body);
  if (!e) return false;
  switch (e.k) {
    case 'profile':
      s.profile = { ...s.profile, ...e.p, fields: e.p.fields ?? s.profile.fields };
      s.pver = seq;
      return true;
    case 'status':
      if (e.s === 'invisible' && s.status !== 'invisible') s.hiddenAt = ts;
      s.status = e.s;
      s.stext = e.x;
      return true;
    case 'privacy':
      s.privacy = { ...s.privacy, ...e.p };
      return true;
    case 'pair': {
      const { other, theirs } = pairOf(owner, from, e);
      const have = s.pairs.get(other) ?? emptyPair();
      s.pairs.set(other, join(have, theirs ? flip(e.p) : e.p));
      return true;
    }
    case 'lists':
      s.pairs.set(e.u, { ...(s.pairs.get(e.u) ?? emptyPair()), lists: e.l });
      return true;
  }
}

const isFlag = (v: unknown): v is Flag => {
  const f = v as Flag;
  return !!f && typeof f === 'object' && Number.isSafeInteger(f.e) && f.e >= 0 && typeof f.on === 'boolean';
};
export function isWirePair(v: unknown): v is WirePair {
  const p = v as WirePair;
  return !!p && typeof p === 'object' && Number.isSafeInteger(p.fe) && p.fe >= 0 && typeof p.fm === 'boolean' && typeof p.ft === 'boolean' &&
    typeof p.mt === 'string' && p.mt.length <= 280 && typeof p.tt === 'string' && p.tt.length <= 280 &&
    isFlag(p.wm) && isFlag(p.wt) && isFlag(p.bm) && isFlag(p.bt);
}

/** A log entry's event; undefined for anything else (a body written by a newer version). */
export function parseEvent(body: string): SocialEvent | undefined {
  let o: SocialEvent;
  try {
    o = JSON.parse(body) as SocialEvent;
  } catch {
    return undefined;
  }
  if (!o || typeof o !== 'object') return undefined;
  if (o.k === 'pair' && typeof o.u === 'string' && isWirePair(o.p)) return o;
  if (o.k === 'lists' && typeof o.u === 'string' && Array.isArray(o.l) && o.l.every((x) => typeof x === 'string')) return o;
  if (o.k === 'profile' && o.p && typeof o.p === 'object') return o;
  if (o.k === 'status' && typeof o.s === 'string' && typeof o.x === 'string') return o;
  if (o.k === 'privacy' && o.p && typeof o.p === 'object') return o;
  return undefined;
}

export type Counts = { contacts: number; pending: number };
export function counts(s: SocialState): Counts {
  let contacts = 0;
  let pending = 0;
  for (const p of s.pairs.values()) {
    if (counted(p)) contacts++;
    if (pendingIn(p)) pending++;
  }
  return { contacts, pending };
}

export type Aspect = 'presence' | 'profile';
/** Whether `viewer` may see this user's presence or profile. */
export function visible(owner: string, s: SocialState, viewer: string | undefined, aspect: Aspect): boolean {
  if (viewer === owner) return true;
  const p = viewer === undefined ? undefined : s.pairs.get(viewer);
  if (p?.bm.on) return false;
  if (aspect === 'presence' && s.status === 'invisible') return false;
  const rule = s.privacy[aspect];
  return rule === 'everyone' || (rule === 'contacts' && friends(p));
}

/** Whether `from` may send this user a direct message (or typing, or a request when `dmRule` is off). */
export function admits(s: SocialState, from: string, kind: 'dm' | 'typing' | 'request' | 'follow'): Refusal | undefined {
  const p = s.pairs.get(from);
  if (p?.bm.on) return { code: 'forbidden', message: 'this user does not accept this from you' };
  if ((kind === 'dm' || kind === 'typing') && s.privacy.dm === 'contacts' && !friends(p)) {
    return { code: 'forbidden', message: 'this user takes direct messages from contacts only' };
  }
  return undefined;
}

export const profileOf = (s: SocialState): Profile => ({ ...s.profile, fields: { ...s.profile.fields }, version: s.pver });
