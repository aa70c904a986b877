// The home role's public surface: a user's (or a group member's) timeline at the node the ring
// names its home, the send pipeline that writes it, sessions and presence, the outbox that hands
// copies to other homes, and the commit hook that pushes what every copy holds. It does not route
// (src/cluster/), hold connections (src/gateway/) or replicate (src/replica/).
export { createHome, toMsg } from './home.ts';
export { createCommitPush, pushCommitted } from './commits.ts';
export { createMidGenerator, midTime, randomNodeTag } from './ids.ts';
export { Unconfirmed } from './unconfirmed.ts';
export { createPushes } from './pushes.ts';
export type { Home, HomeComponents, Homes, Page, Push, SendResult, Watcher } from './types.ts';
