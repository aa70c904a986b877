// The peer transport's whole public surface: one libp2p host per node in a private network, and
// JSON messages and requests between nodes over one long-lived, coalescing stream per peer.
// It checks envelopes, not what they carry: message types, membership, routing and which peer may
// ask what belong to src/cluster and the roles it dispatches to.
import { generateKey } from '@libp2p/pnet';
import type { Logger } from 'pino';
import type { Clock } from '../clock/index.ts';
import { createPeerNetImpl } from './peer-net.ts';
import type { QueueFull } from './peer-net.ts';
import type { LinkCounters } from './link.ts';

export { PEER_PROTOCOL } from './envelope.ts';
export { PeerBusyError, PeerGoneError, PeerMessageError, PeerRemoteError, PeerTimeoutError } from './errors.ts';
export { DEFAULT_HOST, DIAL_TIMEOUT_MS, MAX_FRAME_BYTES, MAX_QUEUE_BYTES, MAX_QUEUE_MSGS, PING_INTERVAL_MS, REQUEST_TIMEOUT_MS } from './peer-net.ts';
export type { QueueFull } from './peer-net.ts';

/** Any JSON-serialisable object with a type tag. */
export type PeerMsg = { t: string } & Record<string, unknown>;

export type PeerNetInit = {
  /** The identity is kept in dataDir/peer.key (Ed25519 protobuf, mode 600): same peer id after a restart. */
  dataDir: string;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** 0 = any free port. */
  port: number;
  /** Where peers should dial this node (a NAT's or the machine's address when listening on
   * 0.0.0.0): `addrs` then holds only this, with `port` or else the port listened on. */
  announce?: { host: string; port?: number };
  /** Contents of a libp2p swarm key file: only nodes with the same key connect (@libp2p/pnet). */
  psk: Uint8Array;
  /** Default 3000. Every dial has one: a dial to a node with another key may hang. */
  dialTimeoutMs?: number;
  /** Default 5000. */
  requestTimeoutMs?: number;
  /** Default 4 MiB. An incoming frame larger than this aborts its stream. */
  maxFrameBytes?: number;
  /** Connection monitor ping interval and timeout; default 1000 (a hung peer is dropped in ~2 s). */
  pingIntervalMs?: number;
  /** Bounds of the send queue per peer (default 65,536 envelopes and 32 MiB): past either, a
   * request waits for room (within its timeout, then PeerBusyError) and a one-way message is dropped. */
  maxQueueMsgs?: number;
  maxQueueBytes?: number;
};

/** Per peer: the link's counters (frames, bytes, envelopes, drops, bad frames, stalls) and its queues now. */
export type PeerStats = LinkCounters & {
  peer: string;
  /** Characters of encoded envelopes waiting in our queue for this peer. */
  queued: number;
  /** Bytes in libp2p's stream write buffers now. */
  buffered: number;
};

export type PeerNet = {
  readonly peerId: string;
  /** What this node tells peers to dial, including /p2p/<id>, e.g. /ip4/127.0.0.1/tcp/9001/p2p/12D3…:
   * the announce address when one is set, else the listen multiaddrs. */
  readonly addrs: string[];
  /** The listen multiaddrs (with /p2p/<id>); for logs. */
  readonly listening: string[];
  /** Connects (within dialTimeoutMs) and resolves the remote peer id; remembers the address. */
  dial(addr: string, signal?: AbortSignal): Promise<string>;
  /** Where a peer listens, so that send/request can dial it lazily. */
  addAddrs(peer: string, addrs: string[]): void;
  connected(peer: string): boolean;
  /** One-way, ordered per peer, coalesced per tick; dials lazily; never throws (drops, logs, counts;
   * also when the send queue is full). */
  send(peer: string, msg: PeerMsg): void;
  /** Rejects with PeerTimeoutError, PeerGoneError, PeerRemoteError, PeerMessageError or PeerBusyError (or the signal's reason). */
  request(peer: string, msg: PeerMsg, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<PeerMsg>;
  /** msg is parsed JSON, not validated: the handler validates it. */
  onMessage(h: (from: string, msg: unknown) => void): void;
  /** A throw or rejection becomes a PeerRemoteError, with its message, at the caller. */
  onRequest(h: (from: string, msg: unknown) => Promise<PeerMsg>): void;
  /** libp2p peer:connect / peer:disconnect (the latter when the last connection closes). */
  onPeer(h: (ev: { peer: string; up: boolean }) => void): void;
  stats(): PeerStats[];
  /** Aborts work in flight, rejects pending requests with PeerGoneError, stops libp2p. */
  stop(): Promise<void>;
};

export type PeerNetComponents = {
  log: Logger;
  /** The send queue to a peer was full: a request waited, a request failed after waiting, a message was dropped. */
  onQueueFull?: (kind: QueueFull) => void;
  /** Times request timeouts, waits for room in a send queue and rate-limited warnings; default systemClock.
   * Dials and libp2p's own timers (ping, stream timeouts) keep real time. */
  clock?: Clock;
  /** Aborting it is stop(). The node needs its peers until it has left the cluster and handed its
   * users off, so this is a signal that aborts at the end of its shutdown, not at the start. */
  signal?: AbortSignal;
};

export function createPeerNet(init: PeerNetInit, components: PeerNetComponents): Promise<PeerNet> {
  return createPeerNetImpl(init, components);
}

/** A new swarm key file's contents: "/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>" (95 bytes). */
export function generateSwarmKey(): Uint8Array {
  const key = new Uint8Array(95);
  generateKey(key);
  return key;
}
