// The group-home role: the logs of the groups the ring gives this node (membership and messages
// in one order, with their limits), the pump that hands each group's messages to the members'
// homes, and the cluster-wide fan-out, typing and receipt relays. It does not own the members'
// timelines (src/home), group state folding (src/groups), nor routing calls to a group's home
// (src/cluster/router.ts).
export { createGroups, GROUP_LIMITS, groupKey, SNAPSHOT_EVERY } from './groups.ts';
export type { GroupInfo, Groups, GroupsComponents } from './groups.ts';
export { createFanout, REQUEST_COPIES } from './fanout.ts';
export type { Fanout, FanoutComponents } from './fanout.ts';
