// The social role's public surface. It owns each user's social log (`s:<user>`: profile, status,
// privacy, contacts) on the user's home: changes, their copies for the other sides' homes, what
// each viewer may see and send. It does not own the relation model (src/contacts), the outbox and
// delivery of copies (src/home), routing calls to other homes (src/cluster) or presence itself.
export { createSocial, socialKey } from './social.ts';
export type { AdmitKind, ContactInfo, ContactsPage, Social, SocialComponents, SocialReq } from './social.ts';
