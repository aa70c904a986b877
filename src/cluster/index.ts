// The cluster role: membership over the peer transport and the ring it yields, who may ask this
// node for what (peer-auth), the one table of peer request handlers, and the router that runs
// each call on its key's home. It does not own the data (home, group-home, social, replica) nor
// the transport (src/transport/): it routes to them.
export { createCluster } from './cluster.ts';
export type { Cluster, ClusterComponents, ClusterInit } from './cluster.ts';
export { createRouter } from './router.ts';
export type { PeerLink, Router, RouterComponents } from './router.ts';
export { createPeerDispatch } from './dispatch.ts';
export type { PeerDispatch, PeerHandler } from './dispatch.ts';
export { HOME_CALLS, keyOfCall } from './home-calls.ts';
export type { HomeSide } from './home-calls.ts';
export { LocalRoles } from './locals.ts';
export type { AuthView, RefuseReason, Verdict } from './peer-auth.ts';
