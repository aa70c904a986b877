// The social role: profiles, status, privacy and contacts of the users this node is home of,
// kept in each user's social log (store key `s:<user>`, placed by the ring on the user's home;
// src/contacts/index.ts is the model). A change is appended to the log and made durable on every
// copy before `ok`; a change of a relation is also handed to the other user's home through the
// outbox, exactly as a direct message's copy is, so it survives a crash of either home and is
// joined there once whatever the retries. The role also decides what others may see (presence
// and profile) and receive (direct messages, typing, requests) from a user homed here.
//
// This file is the factory; the parts live beside it: states.ts (the folded state per user),
// writes.ts (changes, batches, outbox copies), gate.ts (admission and its cache), presence.ts
// (what each viewer sees), reads.ts (contact pages, profiles, admit), role.ts (the wiring).
import { SocialRole } from './role.ts';
import type { Social, SocialComponents } from './types.ts';

export { socialKey } from './types.ts';
export type { AdmitKind, ContactInfo, ContactsPage, Social, SocialComponents, SocialReq } from './types.ts';

export function createSocial(c: SocialComponents): Social {
  const r = new SocialRole(c);
  return {
    load: (user) => r.states.state(user),
    op: (user, req) => r.writes.op(user, req),
    contacts: (user, after, limit) => r.reads.contacts(user, after, limit),
    profiles: (viewer, users) => r.reads.profiles(viewer, users),
    info: (viewer, users) => r.reads.info(viewer, users),
    admit: (to, from, kind, epoch) => r.reads.admit(to, from, kind, epoch),
    gate: (from, to, kind) => r.gates.gate(from, to, kind),
    revoke: (users) => r.gates.revoke(users),
    presenceFor: (user, viewer, p) => r.presence.presenceFor(user, viewer, p),
    presenceChanged: (user, online) => r.presence.presenceChanged(user, online),
    committed: (entries) => r.committed(entries),
    ringChanged: () => r.states.clear(),
  };
}
