// The client SDK's public entry: the same code for browsers and Node (22+, or any WebSocket
// passed in). ImSession is what apps use; Connection is one raw connection to one node.
export { ImSession } from './session.ts';
export type { SessionOptions, SessionEvents, SessionState, StateInfo, PendingSend, SendTarget } from './session.ts';
export { Connection, ImError, ConnectionClosedError } from './connection.ts';
export type { ConnectOptions, ConnectionEvents, WebSocketLike, WebSocketCtor } from './connection.ts';
export { Emitter } from './emitter.ts';
export { dmConv, parseConv, isId, STATUSES } from '../protocol/frames.ts';
export type * from '../protocol/frames.ts';
