// The gateway role: client connections (login, limits, timeouts, frames in and out, replay, the
// roster), the order of one connection's sends (the lane), token checks, and keeping its
// sessions and watches registered at their homes. It owns no data: timelines, sends and contacts
// are the homes' (src/home, src/social), reached through the Homes and Router it is given.
export { createGateway, CLOSE } from './gateway.ts';
export type { Gateway, GatewayComponents } from './gateway.ts';
export type { GatewayConfig } from './conn.ts';
export { AuthError, createAuth, mintToken } from './auth.ts';
export type { Auth, AuthInit } from './auth.ts';
export { Lane, LaneClosedError } from './lane.ts';
export type { LaneTurn } from './lane.ts';
export { createUpkeep } from './upkeep.ts';
export type { Upkeep, UpkeepComponents } from './upkeep.ts';
