// The client port's HTTP side: the server that upgrades /ws to the gateway and answers /healthz,
// /nodes, /cluster, /metrics and /dev/token, the built web pages, and the cluster page's data.
// It owns no node state: every answer comes from the routes the node gives it.
export { createClientServer } from './server.ts';
export type { ClientServer, ClientServerInit, HttpRoutes } from './server.ts';
export { loadWebPages } from './web.ts';
export type { WebPages } from './web.ts';
export { createAdminApi } from './admin.ts';
export type { AdminInit, RingView } from './admin.ts';
